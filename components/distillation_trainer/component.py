"""DistillationTrainer: TFX's Trainer, with the inputs distillation needs.

Beside the standard Trainer inputs (transformed examples, transform graph, schema) it takes
the raw item corpus (random negatives), the scenario mapping (part of the model) and,
optionally, a teacher from an earlier run; beside the model and model_run outputs it
writes the teacher it trained (or reused). The training itself is the `run_fn` in
models/trainer.py; it gets the dataset spec and the transform, model, distillation and
training sections of the config through custom_config (core/config.py).
"""

import json
from typing import Optional

from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.proto import trainer_pb2
from tfx.types import channel
from tfx.types import component_spec
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs

from components import artifacts
from components.distillation_trainer import executor
from core import config as configs
from core import dataset_spec as ds
from core import layout
from models import build


class DistillationTrainerSpec(component_spec.ComponentSpec):
  PARAMETERS = dict(standard_component_specs.TrainerSpec.PARAMETERS)
  INPUTS = {
      'examples': component_spec.ChannelParameter(type=standard_artifacts.Examples),
      'transform_graph': component_spec.ChannelParameter(
          type=standard_artifacts.TransformGraph),
      'schema': component_spec.ChannelParameter(type=standard_artifacts.Schema),
      'item_corpus': component_spec.ChannelParameter(type=standard_artifacts.Examples),
      'scenario_mapping': component_spec.ChannelParameter(type=artifacts.ScenarioMapping),
      'teacher': component_spec.ChannelParameter(type=artifacts.TeacherModel,
                                                 optional=True),
  }
  OUTPUTS = {
      'model': component_spec.ChannelParameter(type=standard_artifacts.Model),
      'model_run': component_spec.ChannelParameter(type=standard_artifacts.ModelRun),
      'teacher_model': component_spec.ChannelParameter(type=artifacts.TeacherModel),
  }


class DistillationTrainer(base_component.BaseComponent):
  """Trains the teacher, then the student with distillation; exports the towers.

  Refuses a config that names an unregistered student or teacher (models/build.py) when
  the pipeline is defined, before anything runs.
  """

  SPEC_CLASS = DistillationTrainerSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, examples, transform_graph, schema, item_corpus, scenario_mapping,
               run_fn: str, dataset_spec: ds.DatasetSpec, config: configs.PipelineConfig,
               code_fingerprint: str, teacher: Optional[channel.BaseChannel] = None):
    build.check(config.model, config.distillation)
    custom_config = configs.to_custom_config(
        dataset_spec, config.transform, config.model, config.distillation, config.training,
        code_fingerprint=code_fingerprint)
    super().__init__(spec=DistillationTrainerSpec(
        examples=examples, transform_graph=transform_graph, schema=schema,
        item_corpus=item_corpus, scenario_mapping=scenario_mapping, teacher=teacher,
        run_fn=run_fn, custom_config=json.dumps(custom_config),
        train_args=trainer_pb2.TrainArgs(splits=[layout.TRAIN]),
        eval_args=trainer_pb2.EvalArgs(splits=[layout.EVAL]),
        model=channel.Channel(type=standard_artifacts.Model),
        model_run=channel.Channel(type=standard_artifacts.ModelRun),
        teacher_model=channel.Channel(type=artifacts.TeacherModel)))
