"""run_fn of the DistillationTrainer: the teacher first, then the distilled student.

    transformed train split + item corpus -> batches with random negatives (models/data.py)
    1. teacher: trained with BCE (or reused from an earlier run), then frozen
    2. student: two towers trained with BCE + lambda KL(p_teacher || p_student)
    3. export: user and item towers with raw-feature signatures (models/export.py),
       the teacher (weights + raw-feature signature) as its own artifact

Both phases checkpoint every epoch with BackupAndRestore under a directory keyed by the
Trainer's inputs and configuration, so a killed Trainer rerun on the same inputs resumes
where it stopped; a finished teacher is kept there until the student is done. Progress
goes to the 'dsmoe' logger (one line per epoch with examples/s), TensorBoard logs to the
model_run artifact.
"""

import dataclasses
import json
import logging
import os
import time
from typing import Optional

import tensorflow as tf
import tensorflow_transform as tft
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from core import config as configs
from core import dataset_spec as ds
from core import errors
from core import feature_names as fnames
from core import layout
from core.scenario_mapping import ScenarioMapping
from models import build
from models import data
from models import export
from models import features
from models import losses
from models import preprocessing

log = logging.getLogger('dsmoe.trainer')



class TeacherMismatchError(errors.InputError):
  """A reused teacher was trained on other vocabularies or another architecture."""


@dataclasses.dataclass(frozen=True)
class _Setup:
  spec: ds.DatasetSpec
  model: configs.ModelConfig
  distillation: configs.DistillationConfig
  training: configs.TrainingConfig
  space: features.FeatureSpace
  tft_output: tft.TFTransformOutput


def _setup(fn_args) -> _Setup:
  config = fn_args.custom_config
  spec = configs.spec_from_custom_config(config)
  transform = configs.from_custom_config(config, configs.TransformConfig)
  tft_output = tft.TFTransformOutput(fn_args.transform_output)
  with tf.io.gfile.GFile(fn_args.schema_path) as f:
    schema = text_format.Parse(f.read(), schema_pb2.Schema())
  mapping = ScenarioMapping.load(config[layout.TRAINER_SCENARIO_MAPPING])
  space = features.FeatureSpace.build(
      spec, preprocessing.vocabulary_sizes(tft_output, spec, transform.num_oov_buckets),
      mapping.values, schema)
  return _Setup(spec, configs.from_custom_config(config, configs.ModelConfig),
                configs.from_custom_config(config, configs.DistillationConfig),
                configs.from_custom_config(config, configs.TrainingConfig),
                space, tft_output)


def _strategy(name: str) -> tf.distribute.Strategy:
  if name == 'mirrored':
    return tf.distribute.MirroredStrategy()
  if name == 'multi_worker_mirrored':
    return tf.distribute.MultiWorkerMirroredStrategy()
  return tf.distribute.get_strategy()


def _optimizer(training: configs.TrainingConfig) -> tf.keras.optimizers.Optimizer:
  return tf.keras.optimizers.Adam(training.learning_rate, weight_decay=training.weight_decay)


class ProgressLogger(tf.keras.callbacks.Callback):
  """One line per epoch: metrics and training examples per second (epoch wall time,
  input pipeline and validation included)."""

  def __init__(self, phase: str, epochs: int, rows_per_epoch: int):
    super().__init__()
    self._phase, self._epochs, self._rows = phase, epochs, rows_per_epoch
    self.examples_per_second = []

  def on_train_begin(self, logs=None):
    self._started = time.perf_counter()

  def on_epoch_end(self, epoch, logs=None):
    now = time.perf_counter()
    seconds, self._started = now - self._started, now
    self.examples_per_second.append(self._rows / seconds)
    metrics = ', '.join(f'{k} {v:.4f}' for k, v in sorted((logs or {}).items()))
    log.info('%s epoch %d/%d: %s; %.1f s, %s examples/s', self._phase, epoch + 1,
             self._epochs, metrics, seconds, f'{self._rows / seconds:,.0f}')


def _fit(model: tf.keras.Model, phase: str, epochs: int, train: tf.data.Dataset,
         validation: tf.data.Dataset, rows_per_epoch: int, backup_dir: str,
         tensorboard_dir: str, training: configs.TrainingConfig) -> dict:
  if tf.io.gfile.exists(backup_dir):
    log.info('%s: resuming from the checkpoint in %s', phase, backup_dir)
  progress = ProgressLogger(phase, epochs, rows_per_epoch)
  every = training.validation_every_epochs
  history = model.fit(
      train, epochs=epochs, validation_data=validation,
      validation_freq=sorted({e for e in range(every, epochs + 1, every)} | {epochs}),
      callbacks=[tf.keras.callbacks.BackupAndRestore(backup_dir),
                 tf.keras.callbacks.TensorBoard(tensorboard_dir),
                 progress], verbose=0)
  return {'history': {k: [float(x) for x in v] for k, v in history.history.items()},
          'examples_per_second': progress.examples_per_second}


def _build_teacher(setup: _Setup):
  teacher = build.build_teacher(setup.distillation, setup.model, setup.space)
  teacher(features_batch(setup.space), training=False)  # create the variables
  return teacher


def features_batch(space: features.FeatureSpace) -> dict:
  """A one-example batch of padding values, to build a model's variables."""
  batch = {}
  for name, spec in space.tensor_specs(space.user_tower_features +
                                       space.item_tower_features, 1).items():
    batch[name] = (tf.fill(spec.shape, '') if spec.dtype == tf.string else
                   tf.zeros(spec.shape, spec.dtype))
  return batch


def _teacher_config(setup: _Setup) -> dict:
  return {'distillation': {k: v for k, v in dataclasses.asdict(setup.distillation).items()
                           if k in ('teacher', 'cross_layers', 'cross_projection_dim')},
          'model': {k: v for k, v in dataclasses.asdict(setup.model).items()
                    if k in ('embedding_dim', 'hidden_units', 'history_pooling')},
          'feature_space': json.loads(setup.space.to_json())}


def load_teacher(directory: str, setup: _Setup):
  """A teacher saved by an earlier run, checked against this run's vocabularies."""
  with tf.io.gfile.GFile(os.path.join(directory, layout.TEACHER_CONFIG_FILE)) as f:
    saved = json.load(f)
  expected = _teacher_config(setup)
  if saved != json.loads(json.dumps(expected)):
    differs = [k for k in expected if saved.get(k) != json.loads(json.dumps(expected[k]))]
    raise TeacherMismatchError(
        f'the teacher in {directory} does not fit this run: its {", ".join(differs)} '
        f'differ (vocabularies change when the data changes). Set '
        f"distillation.teacher_source=train to train a new teacher.")
  teacher = _build_teacher(setup)
  teacher.load_weights(os.path.join(directory, layout.TEACHER_WEIGHTS))
  return teacher


def _save_teacher(teacher, setup: _Setup, directory: str) -> None:
  teacher.save_weights(os.path.join(directory, layout.TEACHER_WEIGHTS))
  with tf.io.gfile.GFile(os.path.join(directory, layout.TEACHER_CONFIG_FILE), 'w') as f:
    json.dump(_teacher_config(setup), f)


def _count_anchors(fn_args, setup: _Setup) -> int:
  examples = data.transformed_examples(fn_args.train_files, setup.tft_output, setup.space,
                                       shuffle=False, seed=0, num_epochs=1)
  if not setup.training.exposure_negatives:
    examples = examples.filter(lambda x: x[fnames.LABEL] > 0)
  return int(examples.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


def run_fn(fn_args) -> None:
  """TFX Trainer entry point (see the module docstring)."""
  started = time.perf_counter()
  setup = _setup(fn_args)
  config = fn_args.custom_config
  training = setup.training
  tf.keras.utils.set_random_seed(training.seed)
  backup_root = config[layout.TRAINER_BACKUP_DIR]
  _, corpus = data.corpus_item_features(config[layout.TRAINER_ITEM_CORPUS], setup.tft_output,
                                        setup.space)
  anchors = _count_anchors(fn_args, setup)
  rows = anchors * (1 + training.negative_ratio)
  log.info('training on %s anchors (+%d random negatives each, %s rows per epoch), '
           'item corpus of %s', f'{anchors:,}', training.negative_ratio, f'{rows:,}',
           f'{int(corpus[fnames.ITEM_ID].shape[0]):,}')
  batches = lambda files, shuffle: data.training_batches(
      files, setup.tft_output, setup.space, corpus, training, shuffle=shuffle, num_epochs=1)
  train, validation = batches(fn_args.train_files, True), batches(fn_args.eval_files, False)
  summary = {'anchors': anchors, 'rows_per_epoch': rows}

  with _strategy(training.strategy).scope():
    teacher = None
    if setup.distillation.enabled:
      teacher = _teacher_phase(fn_args, setup, train, validation, rows, backup_root,
                               summary)
    student = build.build_student(setup.model, setup.space, teacher,
                                  setup.distillation.weight)
    student.compile(_optimizer(training))
  summary['student'] = _fit(student, 'student', training.epochs, train, validation, rows,
                            os.path.join(backup_root, 'student'),
                            os.path.join(fn_args.model_run_dir, 'student'), training)
  export.export_towers(student.user_tower, student.item_tower, setup.tft_output,
                       setup.space, fn_args.serving_model_dir)
  summary['seconds'] = time.perf_counter() - started
  with tf.io.gfile.GFile(os.path.join(fn_args.serving_model_dir,
                                      layout.TRAINING_SUMMARY_FILE), 'w') as f:
    json.dump(summary, f, indent=2)
  if tf.io.gfile.exists(backup_root):
    tf.io.gfile.rmtree(backup_root)  # done: nothing to resume
  log.info('trained and exported in %.0f s', summary['seconds'])


def _teacher_phase(fn_args, setup: _Setup, train, validation, rows: int,
                   backup_root: str, summary: dict):
  """Trains (or loads) the teacher, saves it as the teacher artifact, returns it frozen."""
  config = fn_args.custom_config
  output = config[layout.TRAINER_TEACHER_OUTPUT]
  finished = os.path.join(backup_root, 'teacher_trained')
  source: Optional[str] = config.get(layout.TRAINER_TEACHER_INPUT)
  if source:
    log.info('teacher: reusing %s', source)
    teacher = load_teacher(source, setup)
  elif tf.io.gfile.exists(os.path.join(finished, layout.TEACHER_CONFIG_FILE)):
    log.info('teacher: already trained before the interruption, loading %s', finished)
    teacher = load_teacher(finished, setup)
  else:
    teacher = _build_teacher(setup)
    teacher.compile(_optimizer(setup.training),
                    loss=losses.per_example_binary_cross_entropy,
                    metrics=[tf.keras.metrics.AUC(from_logits=True, name='auc')])
    summary['teacher'] = _fit(teacher, 'teacher', setup.distillation.teacher_epochs, train,
                              validation, rows, os.path.join(backup_root, 'teacher'),
                              os.path.join(fn_args.model_run_dir, 'teacher'),
                              setup.training)
    _save_teacher(teacher, setup, finished)
  _save_teacher(teacher, setup, output)
  export.export_teacher(teacher, setup.tft_output, setup.space,
                        os.path.join(output, layout.TEACHER_SERVING_DIR))
  teacher.trainable = False
  return teacher

