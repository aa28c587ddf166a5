"""RankerTrainer: the ranking stage's Trainer (TFX's Trainer with a ranker's output type).

Inputs: the transformed examples (train split to train, validation split to stop early:
every exposure with the dataset spec's task labels), the transform graph, the schema and
the scenario mapping; for a refit, the evaluated ranker (schedule_model) whose kept epochs
it trains on every day (split all, the refit Transform's vocabularies of the last event),
without validation. Output: a RankerModel (Format-Serving: the SavedModel from raw
features, one probability per task; training_summary.json). The training is the `run_fn`
(training/ranking.py); it gets the dataset spec and the transform and ranker sections of
the config, and the seed, through custom_config.
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
from components.ranker_trainer import executor
from core import config as configs
from core import dataset_spec as ds
from core import layout


class RankerTrainerSpec(component_spec.ComponentSpec):
  PARAMETERS = standard_component_specs.TrainerSpec.PARAMETERS
  INPUTS = {
      'examples': component_spec.ChannelParameter(type=standard_artifacts.Examples),
      'transform_graph': component_spec.ChannelParameter(
          type=standard_artifacts.TransformGraph),
      'schema': component_spec.ChannelParameter(type=standard_artifacts.Schema),
      'scenario_mapping': component_spec.ChannelParameter(type=artifacts.ScenarioMapping),
      # A refit: the evaluated ranker whose kept epochs it trains.
      'schedule_model': component_spec.ChannelParameter(type=artifacts.RankerModel,
                                                        optional=True),
  }
  OUTPUTS = {
      'model': component_spec.ChannelParameter(type=artifacts.RankerModel),
      'model_run': component_spec.ChannelParameter(type=standard_artifacts.ModelRun),
  }


class RankerTrainer(base_component.BaseComponent):
  """Trains `config.ranker` on the train split, early stopping on the validation split;
  with schedule_model (a refit), on split all for the epochs that model kept.

  Refuses, when the pipeline is defined, a dataset spec without ranking tasks
  (logs.tasks)."""

  SPEC_CLASS = RankerTrainerSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, examples, transform_graph, schema, scenario_mapping, run_fn: str,
               dataset_spec: ds.DatasetSpec, config: configs.PipelineConfig,
               code_fingerprint: str,
               schedule_model: Optional[channel.BaseChannel] = None):
    if not dataset_spec.logs.task_names:
      raise configs.ConfigError(
          f'ranker.enabled needs ranking tasks, and the dataset spec {dataset_spec.name} '
          f'names none: list them under logs.tasks (task: label column), or set '
          f'ranker.enabled=false')
    custom_config = configs.to_custom_config(dataset_spec, config.transform, config.ranker,
                                             code_fingerprint=code_fingerprint)
    custom_config[layout.RANKER_SEED] = str(config.training.seed)
    train, evaluate = ((layout.ALL, layout.ALL) if schedule_model is not None else
                       (layout.TRAIN, layout.VALIDATION))
    super().__init__(spec=RankerTrainerSpec(
        examples=examples, transform_graph=transform_graph, schema=schema,
        scenario_mapping=scenario_mapping, schedule_model=schedule_model, run_fn=run_fn,
        custom_config=json.dumps(custom_config),
        train_args=trainer_pb2.TrainArgs(splits=[train]),
        eval_args=trainer_pb2.EvalArgs(splits=[evaluate]),
        model=channel.Channel(type=artifacts.RankerModel),
        model_run=channel.Channel(type=standard_artifacts.ModelRun)))
