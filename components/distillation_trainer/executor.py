"""Executors of DistillationTrainer: TFX's generic Trainer executor with extra inputs, and
its hand-off to a Vertex AI CustomJob of several workers (training.vertex)."""

import json
import os

import tensorflow as tf
from tfx.components.trainer import executor as trainer_executor
from tfx.extensions.google_cloud_ai_platform.trainer import executor as cloud_executor
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import path_utils
from tfx.utils import proto_utils

from core import layout
from core import release_format


class Executor(trainer_executor.GenericExecutor):
  """Passes the item corpus, scenario mapping, teacher, the training split's raw events,
  the validation events or the epochs to train (a refit), a refresh's tau_s (the
  release's) and a resumable backup directory to run_fn through fn_args.custom_config
  (keys in core/layout.py)."""

  def _GetFnArgs(self, input_dict, output_dict, exec_properties):
    fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
    corpus = artifact_utils.get_single_uri(input_dict['item_corpus'])
    config = dict(fn_args.custom_config or {})
    config[layout.TRAINER_ITEM_CORPUS] = layout.split_pattern(
        corpus, exec_properties['item_corpus_split'])
    raw_examples = artifact_utils.get_single_instance(input_dict['raw_examples'])
    raw = raw_examples.uri
    # The training splits' raw events (and a refresh's days before its window): their
    # clicks give the negatives their point-in-time popularity.
    train_args = trainer_pb2.TrainArgs()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.TRAIN_ARGS_KEY],
                              train_args)
    config[layout.TRAINER_CLICK_EVENTS] = json.dumps(
        [layout.split_pattern(raw, split) for split in layout.with_history(
            train_args.splits, artifact_utils.decode_split_names(raw_examples.split_names))])
    schedule = input_dict.get('schedule_model') or []
    if not schedule:
      config[layout.TRAINER_VALIDATION_EVENTS] = layout.split_pattern(raw, layout.VALIDATION)
    else:
      summary = _training_summary(
          path_utils.serving_model_path(artifact_utils.get_single_uri(schedule)))
      config[layout.TRAINER_FIXED_EPOCHS] = json.dumps(
          {phase: summary[phase]['epoch_kept'] for phase in ('teacher', 'student')
           if summary.get(phase)})
      if layout.POPULARITY_WEIGHTS_KEY in summary:  # the same tau_s as the evaluated model
        config[layout.TRAINER_POPULARITY_WEIGHTS] = json.dumps(
            summary[layout.POPULARITY_WEIGHTS_KEY])
    release = config.get(layout.TRAINER_WARM_START)
    if release:  # a refresh: the served release's tau_s, as its refit has
      summary = _training_summary(release)
      if layout.POPULARITY_WEIGHTS_KEY in summary:
        config[layout.TRAINER_POPULARITY_WEIGHTS] = json.dumps(
            summary[layout.POPULARITY_WEIGHTS_KEY])
      teacher = config.get(layout.TRAINER_WARM_START_TEACHER)
      if teacher and not tf.io.gfile.exists(os.path.join(teacher, layout.WARM_START_DIR)):
        raise release_format.ReleaseError(
            f'the release {release} carries no teacher weights ({teacher}/'
            f'{layout.WARM_START_DIR}; releases made before refreshes existed do not): '
            f'publish one with make run, then refresh it')
    config[layout.TRAINER_SCENARIO_MAPPING] = artifact_utils.get_single_uri(
        input_dict['scenario_mapping'])
    teachers = input_dict.get('teacher') or []
    usable = [t for t in teachers  # an artifact of a run without distillation is empty
              if tf.io.gfile.exists(os.path.join(t.uri, layout.TEACHER_CONFIG_FILE))]
    if usable:
      config[layout.TRAINER_TEACHER_INPUT] = usable[-1].uri
    config[layout.TRAINER_TEACHER_OUTPUT] = artifact_utils.get_single_uri(
        output_dict['teacher_model'])
    config[layout.TRAINER_BACKUP_DIR] = layout.trainer_backup_dir(
        input_dict, exec_properties, artifact_utils.get_single_uri(output_dict['model']))
    fn_args.custom_config = config
    return fn_args


class VertexExecutor(cloud_executor.GenericExecutor):
  """training.vertex: runs `Executor` as a Vertex AI CustomJob (TFX's Vertex training
  extension) and waits for it. Each replica of the job's worker pools runs `Executor` on
  this execution's inputs, outputs and properties (python -m tfx.scripts.run_executor in
  the pipeline's image), and Vertex sets TF_CONFIG on each; the job is custom_config's
  cloud_executor.TRAINING_ARGS_KEY (component.py builds it from the config)."""

  def _GetExecutorClass(self):
    return Executor


def _training_summary(model_dir: str) -> dict:
  """A trained model's training summary: the epochs it kept, its fitted tau_s."""
  with tf.io.gfile.GFile(os.path.join(model_dir, layout.TRAINING_SUMMARY_FILE)) as f:
    return json.load(f)
