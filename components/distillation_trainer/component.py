"""DistillationTrainer: TFX's Trainer, with the inputs distillation needs.

Beside the standard Trainer inputs (transformed examples, transform graph, schema) it takes
the raw item corpus (random negatives), the scenario mapping (part of the model) and,
optionally, a teacher from an earlier run; beside the model and model_run outputs it
writes the teacher it trained (or reused). The training itself is the `run_fn` in
models/trainer.py; it gets the dataset spec and the transform, model, distillation and
training sections of the config through custom_config (core/config.py).
"""

import json
import os
from typing import Optional

from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.extensions.google_cloud_ai_platform import constants as cloud_constants
from tfx.extensions.google_cloud_ai_platform.trainer import executor as cloud_executor
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
from core import release_format
from models import build


class DistillationTrainerSpec(component_spec.ComponentSpec):
  PARAMETERS = dict(standard_component_specs.TrainerSpec.PARAMETERS,
                    item_corpus_split=component_spec.ExecutionParameter(type=str))
  INPUTS = {
      'examples': component_spec.ChannelParameter(type=standard_artifacts.Examples),
      'transform_graph': component_spec.ChannelParameter(
          type=standard_artifacts.TransformGraph),
      'schema': component_spec.ChannelParameter(type=standard_artifacts.Schema),
      'item_corpus': component_spec.ChannelParameter(type=standard_artifacts.Examples),
      'scenario_mapping': component_spec.ChannelParameter(type=artifacts.ScenarioMapping),
      'teacher': component_spec.ChannelParameter(type=artifacts.TeacherModel,
                                                 optional=True),
      # The raw examples: the training split's clicks (point-in-time negatives) and,
      # without a schedule_model, the validation split (validation recall).
      'raw_examples': component_spec.ChannelParameter(type=standard_artifacts.Examples),
      # A refit: the model whose kept epochs it trains.
      'schedule_model': component_spec.ChannelParameter(type=standard_artifacts.Model,
                                                        optional=True),
  }
  OUTPUTS = {
      'model': component_spec.ChannelParameter(type=standard_artifacts.Model),
      'model_run': component_spec.ChannelParameter(type=standard_artifacts.ModelRun),
      'teacher_model': component_spec.ChannelParameter(type=artifacts.TeacherModel),
  }


class DistillationTrainer(base_component.BaseComponent):
  """Trains the teacher, then the student with distillation; exports the towers.

  raw_examples (always): the training split's clicks give every random negative its
  item's popularity features as of its anchor's moment (models/item_clicks.py). Two modes:
    without schedule_model: trains on the train split with early stopping on the
      validation split (the teacher's AUC, the student's recall over the item corpus as of
      the end of the training window), up to the configured epochs;
    schedule_model given (a refit): trains on every day (split 'all', items as of the last
      event) exactly the epochs that model kept, without validation.
  With config.refresh.release (a refresh, core/config.py RefreshConfig), the teacher and
  the student start from that release's weights and train refresh.epochs without
  validation: on the train and validation splits (every day before the newest, items as
  of the newest day's start) or, with `every_day`, on split 'all'.
  Refuses a config that names an unregistered student or teacher (models/build.py) when
  the pipeline is defined, before anything runs. With training.vertex.enabled it runs as a
  Vertex AI CustomJob of training.vertex.workers replicas (executor.VertexExecutor).
  """

  SPEC_CLASS = DistillationTrainerSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, examples, transform_graph, schema, item_corpus, scenario_mapping,
               run_fn: str, dataset_spec: ds.DatasetSpec, config: configs.PipelineConfig,
               code_fingerprint: str, raw_examples: channel.BaseChannel,
               teacher: Optional[channel.BaseChannel] = None,
               schedule_model: Optional[channel.BaseChannel] = None,
               every_day: bool = False):
    build.check(config.model, config.distillation)
    custom_config = configs.to_custom_config(
        dataset_spec, *configs.trainer_sections(config), code_fingerprint=code_fingerprint)
    # The K of the validation recall it reports (not the whole evaluation section, whose
    # blessing settings must not retrain a model).
    custom_config[layout.TRAINER_RECALL_KS] = json.dumps(config.evaluation.recall_ks)
    vertex = config.training.vertex
    if vertex.enabled:
      custom_config.update(vertex_job(vertex))
    custom_config.update(warm_start_config(config))
    if schedule_model is not None or every_day:  # a refit: every day, items as of the end
      train, evaluate, corpus = [layout.ALL], layout.ALL, layout.ALL
    elif config.refresh.release:  # a refresh's gated model: every day before the newest
      train, evaluate, corpus = [layout.TRAIN, layout.VALIDATION], layout.VALIDATION, \
          layout.TEST
    else:
      train, evaluate, corpus = [layout.TRAIN], layout.VALIDATION, layout.TRAIN
    super().__init__(spec=DistillationTrainerSpec(
        examples=examples, transform_graph=transform_graph, schema=schema,
        item_corpus=item_corpus, scenario_mapping=scenario_mapping, teacher=teacher,
        raw_examples=raw_examples, schedule_model=schedule_model,
        run_fn=run_fn, custom_config=json.dumps(custom_config),
        train_args=trainer_pb2.TrainArgs(splits=train),
        eval_args=trainer_pb2.EvalArgs(splits=[evaluate]),
        item_corpus_split=corpus,
        model=channel.Channel(type=standard_artifacts.Model),
        model_run=channel.Channel(type=standard_artifacts.ModelRun),
        teacher_model=channel.Channel(type=artifacts.TeacherModel)),
        custom_executor_spec=executor_spec.ExecutorClassSpec(executor.VertexExecutor)
        if vertex.enabled else None)


def warm_start_config(config: configs.PipelineConfig) -> dict[str, str]:
  """The custom_config of a refresh (training/trainer.py): the release's towers and
  teacher to start from (layout.WARM_START_DIR under each), the epochs and the window."""
  refresh = config.refresh
  if not refresh.release:
    return {}
  result = {layout.TRAINER_WARM_START: refresh.release,
            layout.TRAINER_FIXED_EPOCHS: json.dumps(
                {'teacher': refresh.epochs, 'student': refresh.epochs}),
            layout.TRAINER_WINDOW_DAYS: str(refresh.window_days)}
  if config.distillation.enabled:
    result[layout.TRAINER_WARM_START_TEACHER] = os.path.join(
        refresh.release, release_format.TEACHER_DIR)
  return result


def vertex_job(vertex: configs.VertexTrainingConfig) -> dict:
  """The custom_config entries of TFX's Vertex training extension (VertexExecutor): the
  CustomJob's worker pools (workerpool0 the chief, workerpool1 the other workers), its
  project and region."""
  if not vertex.image:
    raise configs.ConfigError('training.vertex.image is empty: name the image the workers '
                              'run (pipeline/kubeflow_v2_runner.py sets the pipeline\'s)')
  pools = [{'machine_spec': {'machine_type': vertex.machine_type},
            'container_spec': {'image_uri': vertex.image}, 'replica_count': replicas}
           for replicas in (1, vertex.workers - 1) if replicas]
  return {cloud_executor.TRAINING_ARGS_KEY: {'project': vertex.project,
                                             'job_spec': {'worker_pool_specs': pools}},
          cloud_constants.ENABLE_VERTEX_KEY: True,
          cloud_constants.VERTEX_REGION_KEY: vertex.region}
