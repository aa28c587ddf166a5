"""run_fn of the DistillationTrainer: the teacher first, then the distilled student.

    transformed train split + item corpus -> batches with negatives (models/data.py),
       each negative's popularity features as of its anchor's moment (the raw train
       split's clicks, models/item_clicks.py)
    1. teacher: trained with BCE (or reused from an earlier run), early stopping on its
       validation AUC (clicks vs random negatives of the validation split), best epoch
       kept, then frozen
    2. student: two towers trained with BCE + lambda KL(p_teacher || p_student), early
       stopping on Recall@K over the full corpus of the validation queries (the
       Evaluator's code on the raw validation split), best epoch kept
    3. export: user and item towers with raw-feature signatures (models/export.py),
       the teacher (weights + raw-feature signature) as its own artifact, and
       training_summary.json (epochs run and kept, validation metrics, throughput, the
       weight settings a refresh must keep)

A refit (custom_config TRAINER_FIXED_EPOCHS: the model a release serves, trained on every
day) trains exactly the epochs an earlier run kept, with no validation.

Every model artifact keeps its towers' weights and vocabularies (models/warm_start.py,
layout.WARM_START_DIR; releases carry them), and every teacher artifact its own. A
refresh on the newest days: with TRAINER_WARM_START (a model dir or a release) the
student starts from those weights, and with TRAINER_WARM_START_TEACHER (a teacher dir)
the teacher, every id the two vocabularies share keeping its row; each trains the fixed
epochs given, with TRAINER_WINDOW_DAYS on the anchors of the last N days of its split
only (the point-in-time clicks still count every day).

Both phases checkpoint every epoch with BackupAndRestore under a directory keyed by the
Trainer's inputs and configuration, so a killed Trainer rerun on the same inputs resumes
where it stopped (early stopping's state included); a finished teacher is kept there until
the student is done. Training is deterministic for a given seed and data (models/data.py
draws statelessly; TensorFlow's op determinism is on). Progress goes to the 'dsmoe'
logger (one line per epoch with examples/s), TensorBoard logs to the model_run artifact.

training.strategy=multi_worker_mirrored (training/distribution.py): run_fn creates the
strategy before any TensorFlow op, each worker trains on its shard of the records
(training.batch_size is the global batch; an epoch is that many global batches as the
whole data fill), every worker saves but only the chief's files are kept, and the chief
removes the backup once every worker is done. The negatives' sampling statistics (item
clicks, scenario weights) and in-batch negatives are each worker's own shard's.
"""

import dataclasses
import datetime
import functools
import json
import logging
import os
import time
from typing import Any, Optional

from google.protobuf import text_format
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
import tensorflow_transform as tft

from core import config as configs
from core import dataset_spec as ds
from core import errors
from core import feature_names as fnames
from core import layout
from core import release_format
from core.scenario_mapping import ScenarioMapping
from models import build
from models import data
from models import export
from models import features
from models import item_clicks
from models import losses
from models import preprocessing
from models import warm_start
from retrieval import evaluation
from training import callbacks
from training import distribution

log = logging.getLogger('dsmoe.trainer')



class TeacherMismatchError(errors.InputError):
  """A reused teacher was trained on other vocabularies or another architecture."""


@dataclasses.dataclass(frozen=True)
class _Setup:
  spec: ds.DatasetSpec
  model: configs.ModelConfig
  distillation: configs.DistillationConfig
  ranker: configs.RankerConfig  # a ranker teacher's sizes (the default when it is not one)
  training: configs.TrainingConfig
  space: features.FeatureSpace
  tft_output: tft.TFTransformOutput
  ingestion: configs.IngestionConfig  # the recent clicks' half-life
  num_oov_buckets: int  # after each vocabulary (warm start remaps rows by token)

  @functools.cached_property
  def vocabularies(self) -> dict[str, list[str]]:
    """Feature -> tokens in id order (models/warm_start.py), read once."""
    return warm_start.vocabularies(self.tft_output, self.spec)


def _setup(fn_args) -> _Setup:
  config = fn_args.custom_config
  spec = configs.spec_from_custom_config(config)
  transform = configs.from_custom_config(config, configs.TransformConfig)
  tft_output = tft.TFTransformOutput(fn_args.transform_output)
  with tf.io.gfile.GFile(fn_args.schema_path) as f:
    schema = text_format.Parse(f.read(), schema_pb2.Schema())
  mapping = ScenarioMapping.load(config[layout.TRAINER_SCENARIO_MAPPING])
  model = configs.from_custom_config(config, configs.ModelConfig)
  space = features.FeatureSpace.build(
      spec, preprocessing.vocabulary_sizes(tft_output, spec, transform.num_oov_buckets),
      mapping.values, schema, model.popularity_features)
  ranker = (configs.from_custom_config(config, configs.RankerConfig)
            if configs.SECTIONS[configs.RankerConfig] in config else configs.RankerConfig())
  return _Setup(spec, model, configs.from_custom_config(config, configs.DistillationConfig),
                ranker, configs.from_custom_config(config, configs.TrainingConfig),
                space, tft_output,
                configs.from_custom_config(config, configs.IngestionConfig),
                transform.num_oov_buckets)


@dataclasses.dataclass(frozen=True)
class _Input:
  """A phase's training input: the batches (distributed by the strategy), the rows an
  epoch trains on (all workers'), the steps of an epoch (None: one pass over the data)
  and every worker's anchors (chief first)."""
  batches: Any
  rows: int
  steps_per_epoch: Optional[int]
  anchors_per_worker: list[int]


def _optimizer(training: configs.TrainingConfig) -> tf.keras.optimizers.Optimizer:
  return tf.keras.optimizers.Adam(training.learning_rate, weight_decay=training.weight_decay)


def _fit(model: tf.keras.Model, phase: str, epochs: int, train: _Input,
         backup_dir: str, tensorboard_dir: str, outputs: distribution.WorkerOutputs,
         validation: Optional[tuple[Any, Optional[int]]] = None,
         monitor: Optional[str] = None,
         patience: int = 1, every: int = 1, before=()) -> dict:
  """model.fit with resumable checkpoints; with `monitor`, early stopping on it.

  `validation`: (batches, steps) (_validation_input). `before`: callbacks that add
  metrics to the logs (validation recall), run first. Returns the phase's summary: epochs
  run and kept, the monitored best, the history.
  """
  if tf.io.gfile.exists(backup_dir):
    log.info('%s: resuming from the checkpoint in %s', phase, backup_dir)
  progress = callbacks.ProgressLogger(phase, epochs, train.rows)
  best = os.path.join(backup_dir, 'best')
  keep = (callbacks.KeepBestEpoch(monitor, patience, best, outputs.path(best))
          if monitor else None)
  history = model.fit(
      train.batches, epochs=epochs, steps_per_epoch=train.steps_per_epoch,
      validation_data=validation and validation[0],
      validation_steps=validation and validation[1],
      validation_freq=every if validation is not None else 1,
      # The progress line comes last: once an epoch is logged, its checkpoint is written.
      callbacks=[*before, *([keep] if keep else []),
                 tf.keras.callbacks.BackupAndRestore(backup_dir),
                 tf.keras.callbacks.TensorBoard(tensorboard_dir), progress], verbose=0)
  summary = {'epochs_max': epochs, 'epochs_run': progress.last_epoch,
             'epoch_kept': keep.best_epoch if keep else progress.last_epoch,
             'history': {k: [float(x) for x in v] for k, v in history.history.items()},
             'examples_per_second': progress.examples_per_second}
  if keep:
    summary['monitor'] = {'metric': monitor, 'best': keep.best, 'patience': patience}
  return summary


def _build_teacher(setup: _Setup):
  teacher = build.build_teacher(setup.distillation, setup.model, setup.ranker, setup.space)
  teacher(_features_batch(setup.space), training=False)  # create the variables
  return teacher


def _features_batch(space: features.FeatureSpace) -> dict:
  """A one-example batch of padding values in the first scenario, to build a model's
  variables."""
  batch = {}
  for name, spec in space.tensor_specs(space.user_tower_features +
                                       space.item_tower_features, 1).items():
    batch[name] = (tf.fill(spec.shape, '') if spec.dtype == tf.string else
                   tf.zeros(spec.shape, spec.dtype))
  batch[fnames.SCENARIO] = tf.constant(space.scenarios[:1])
  return batch


def _teacher_config(setup: _Setup) -> dict:
  """What a teacher's architecture depends on: a reused one must match it."""
  result = {'distillation': {k: v for k, v in dataclasses.asdict(setup.distillation).items()
                             if k in ('teacher', 'cross_layers', 'cross_projection_dim')},
            'model': {k: v for k, v in dataclasses.asdict(setup.model).items()
                      if k in ('embedding_dim', 'hidden_units', 'history_pooling')},
            'feature_space': json.loads(setup.space.to_json())}
  if setup.distillation.teacher in configs.RANKERS:  # the ranker's sizes, not its schedule
    result['ranker'] = setup.ranker.architecture()
  return result


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


def _save_teacher(teacher, setup: _Setup, directory: str, summary: Optional[dict]) -> None:
  teacher.save_weights(os.path.join(directory, layout.TEACHER_WEIGHTS))
  _save_weights(teacher, setup, os.path.join(directory, layout.WARM_START_DIR))
  with tf.io.gfile.GFile(os.path.join(directory, layout.TEACHER_CONFIG_FILE), 'w') as f:
    json.dump(_teacher_config(setup), f)
  with tf.io.gfile.GFile(os.path.join(directory, layout.TEACHER_SUMMARY_FILE), 'w') as f:
    json.dump(summary, f, indent=2)


def _teacher_summary(directory: str) -> Optional[dict]:
  path = os.path.join(directory, layout.TEACHER_SUMMARY_FILE)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def _batches(strategy: tf.distribute.Strategy, pattern: str, setup: _Setup, corpus: dict,
             shuffle: bool, repeat: bool, count: bool,
             items: Optional[item_clicks.PointInTimeItems] = None,
             since_ms: Optional[int] = None) -> tuple[Any, Optional[int]]:
  """(batches of `pattern`'s anchors, distributed by `strategy`; with `count`, the anchors
  this worker reads). Each worker reads its shard of the records (one input pipeline per
  worker) in batches of training.batch_size / replicas and draws its negatives from
  seed + its index; `repeat`: endlessly, else one pass. With `items`, the negatives'
  popularity features are as of their anchors' moments (data.training_batches)."""
  training = setup.training
  counted = []

  def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
    anchors = data.anchors(pattern, setup.tft_output, setup.space, training,
                           context.num_input_pipelines, context.input_pipeline_id,
                           point_in_time=items is not None, since_ms=since_ms)
    if count:
      anchors = anchors.cache()  # read once: counted here, trained on below
      counted.append(int(anchors.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1)))
    config = dataclasses.replace(
        training, batch_size=context.get_per_replica_batch_size(training.batch_size),
        seed=training.seed + context.input_pipeline_id)
    return data.training_batches(anchors, setup.space, corpus, config, shuffle=shuffle,
                                 num_epochs=None if repeat else 1, items=items)

  batches = strategy.distribute_datasets_from_function(dataset_fn)
  return batches, (counted[0] if count else None)


def _training_input(strategy: tf.distribute.Strategy, pattern: str, setup: _Setup,
                    corpus: dict, items: Optional[item_clicks.PointInTimeItems],
                    since_ms: Optional[int] = None) -> _Input:
  """With a strategy ('mirrored', 'multi_worker_mirrored'), each replica's batches repeat
  and an epoch is as many global batches as the whole data fill, so that every replica
  takes the same steps; by default, one pass over the data. With `since_ms`, the anchors
  of that moment or later only."""
  training = setup.training
  distributed = training.strategy != 'default'
  batches, anchors = _batches(strategy, pattern, setup, corpus, shuffle=True,
                              repeat=distributed, count=True, items=items,
                              since_ms=since_ms)
  per_worker = distribution.per_worker(strategy, anchors)
  total = sum(per_worker)
  steps = max(1, -(-total // training.batch_size)) if distributed else None
  return _Input(batches, total * (1 + training.negative_ratio + training.in_batch_negatives),
                steps, per_worker)


def _window(config: dict, setup: _Setup, pattern) -> Optional[dict]:
  """A refresh's training window (TRAINER_WINDOW_DAYS): the last N calendar days (the
  dataset spec's time zone) of the training split's events, or None (every day)."""
  if not config.get(layout.TRAINER_WINDOW_DAYS):
    return None
  days = int(config[layout.TRAINER_WINDOW_DAYS])
  split = setup.spec.split
  last_ms = data.last_timestamp_ms(pattern, setup.tft_output, setup.space)
  last_day = datetime.datetime.fromtimestamp(last_ms / 1000, split.tzinfo).date()
  first_day = last_day - datetime.timedelta(days=days - 1)
  log.info('training window: the %d days %s .. %s (%s)', days, first_day, last_day,
           split.timezone)
  return {'days': days, 'first_day': first_day.isoformat(),
          'last_day': last_day.isoformat(), 'from_ms': split.day_start_ms(first_day)}


def _point_in_time_items(config: dict, setup: _Setup, corpus_ids: tf.Tensor
                         ) -> tuple[Optional[item_clicks.PointInTimeItems], dict]:
  """The training split's clicks by corpus row and time (models/item_clicks.py), when the
  item tower reads popularity features; with the counts of the clicks it holds and leaves
  out (logged and in the training summary: nothing is dropped silently)."""
  names = [n for n in setup.space.item_tower_features if n in fnames.POPULARITY_FEATURES]
  if not names:
    return None, {}
  items, counts = item_clicks.from_examples(
      json.loads(config[layout.TRAINER_CLICK_EVENTS]), corpus_ids, setup.space.scenarios,
      setup.ingestion.recent_clicks_half_life_days * 86_400_000)
  log.info('point-in-time negatives: %s training clicks by item and time (%s of items '
           'not in the corpus and %s of scenarios not served left out)',
           f'{counts["clicks"]:,}', counts['not_in_corpus'], counts['scenario_not_served'])
  return items, counts


def _validation_input(strategy: tf.distribute.Strategy, pattern: str, setup: _Setup,
                      corpus: dict) -> tuple[Any, Optional[int]]:
  """(batches, steps): one pass over the validation anchors. With a strategy, as many
  steps as the worker with the most batches takes; a worker out of data gets empty
  batches (TensorFlow's partial batch handling), so every anchor counts once."""
  distributed = setup.training.strategy != 'default'
  batches, anchors = _batches(strategy, pattern, setup, corpus, shuffle=False,
                              repeat=False, count=distributed)
  if not distributed:
    return batches, None
  per_worker = distribution.per_worker(strategy, anchors)
  worker_batch = setup.training.batch_size // len(per_worker)
  return batches, max(1, max(-(-n // worker_batch) for n in per_worker))


def run_fn(fn_args) -> None:
  """TFX Trainer entry point (see the module docstring)."""
  started = time.perf_counter()
  training = configs.from_custom_config(fn_args.custom_config, configs.TrainingConfig)
  # First: MultiWorkerMirroredStrategy must set up collective ops before any TF op.
  strategy = distribution.create_strategy(training.strategy)
  distribution.check_global_batch(strategy, training.batch_size)
  outputs = distribution.WorkerOutputs(strategy)
  try:
    _run(fn_args, strategy, outputs, started)
  finally:
    outputs.remove()


def _run(fn_args, strategy: tf.distribute.Strategy, outputs: distribution.WorkerOutputs,
         started: float) -> None:
  setup = _setup(fn_args)
  config = fn_args.custom_config
  training = setup.training
  tf.keras.utils.set_random_seed(training.seed)
  tf.config.experimental.enable_op_determinism()
  fixed = (json.loads(config[layout.TRAINER_FIXED_EPOCHS])
           if config.get(layout.TRAINER_FIXED_EPOCHS) else None)
  backup_root = config[layout.TRAINER_BACKUP_DIR]
  corpus_ids, corpus = data.corpus_item_features(config[layout.TRAINER_ITEM_CORPUS],
                                                 setup.tft_output, setup.space)
  items, clicks = _point_in_time_items(config, setup, corpus_ids)
  window = _window(config, setup, fn_args.train_files)
  train = _training_input(strategy, fn_args.train_files, setup, corpus, items,
                          window and window['from_ms'])
  anchors = sum(train.anchors_per_worker)
  warm = bool(config.get(layout.TRAINER_WARM_START))
  workers = len(train.anchors_per_worker)
  log.info('training on %s anchors%s (+%d random and %d in-batch negatives each, %s rows '
           'per epoch), item corpus of %s%s', f'{anchors:,}',
           f' ({workers} workers: {train.anchors_per_worker})' if workers > 1 else '',
           training.negative_ratio, training.in_batch_negatives, f'{train.rows:,}',
           f'{int(corpus[fnames.ITEM_ID].shape[0]):,}',
           (f'; {"warm start" if warm else "refit"} with the fixed epochs {fixed}'
            if fixed else ''))
  validation = None if fixed else _validation_input(strategy, fn_args.eval_files, setup,
                                                    corpus)
  summary = {'anchors': anchors, 'rows_per_epoch': train.rows,
             'refit': bool(fixed) and not warm,
             'seed': training.seed,
             # What a refresh of this model must keep (core/config.py for_refresh).
             configs.WEIGHT_SETTINGS_KEY: configs.weight_settings(
                 setup.model, setup.distillation, setup.ingestion, setup.ranker)}
  if clicks:
    summary['point_in_time_clicks'] = clicks
  if window:
    summary['window'] = window
  if workers > 1:
    summary['anchors_per_worker'] = train.anchors_per_worker

  with strategy.scope():
    teacher = None
    if setup.distillation.enabled:
      teacher = _teacher_phase(fn_args, setup, train, validation, backup_root, summary,
                               fixed, outputs)
    student = build.build_student(setup.model, setup.space, teacher,
                                  setup.distillation.weight, training.loss)
    student.compile(_optimizer(training))
    # Build: for the validation functions, a warm start and a refit's tau_s.
    student(_features_batch(setup.space))
    if config.get(layout.TRAINER_WARM_START):
      source = config[layout.TRAINER_WARM_START]
      summary['warm_start'] = {'from': source, 'ids': _warm_start(
          setup, [(name, tower, os.path.join(source, layout.WARM_START_DIR, name))
                  for name, tower in _towers(student)])}
  before = []
  if not fixed:
    before.append(callbacks.ValidationRecall(
        export.examples_function(student.user_tower, setup.tft_output, setup.space,
                                 setup.space.user_tower_features),
        export.examples_function(student.item_tower, setup.tft_output, setup.space,
                                 setup.space.item_tower_features),
        evaluation.eval_queries(evaluation.read_events(
            config[layout.TRAINER_VALIDATION_EVENTS])),
        config[layout.TRAINER_ITEM_CORPUS],
        sorted({training.early_stopping_k,
                *json.loads(config.get(layout.TRAINER_RECALL_KS, '[]'))}),
        every=training.validation_every_epochs))
  elif setup.model.fits_popularity_weight:  # a refit serves the evaluated model's tau_s
    weights = json.loads(config[layout.TRAINER_POPULARITY_WEIGHTS])
    student.user_tower.set_popularity_weights([weights[s] for s in setup.space.scenarios])
  summary['student'] = _fit(
      student, 'student', fixed['student'] if fixed else training.epochs, train,
      os.path.join(backup_root, 'student'), os.path.join(fn_args.model_run_dir, 'student'),
      outputs, monitor=None if fixed else f'val_recall@{training.early_stopping_k}',
      patience=training.patience, before=before)
  if before:
    summary['student']['validation_recall'] = {str(epoch): recall for epoch, recall in
                                               before[0].per_epoch.items()}
    if setup.model.fits_popularity_weight:  # post hoc, on the kept epoch's model
      fit = before[0].fit_popularity_weights(
          student.user_tower, setup.space.scenarios, setup.model.popularity_weight_grid,
          training.early_stopping_k)
      summary['student']['validation_recall_with_popularity_weights'] = fit.recall
      summary['student']['popularity_weight_grid_recall'] = fit.grid_recall
  if setup.model.fits_popularity_weight:  # fitted above, or the evaluated model's (refit)
    summary[layout.POPULARITY_WEIGHTS_KEY] = dict(zip(
        setup.space.scenarios, student.user_tower.popularity_weights()))
  profile = student.user_tower.scenario_profile()  # e.g. DSMOE's gates and SAP b_s
  if profile:
    summary['scenario_profile'] = profile
  # Every worker exports (a save may read variables across workers); only the chief's
  # copy is kept.
  model_dir = outputs.path(fn_args.serving_model_dir)
  for name, tower in _towers(student):  # what a refresh warm-starts from
    _save_weights(tower, setup, os.path.join(model_dir, layout.WARM_START_DIR, name))
  export.export_towers(student.user_tower, student.item_tower, setup.tft_output,
                       setup.space, model_dir)
  summary['seconds'] = time.perf_counter() - started
  with tf.io.gfile.GFile(os.path.join(model_dir, layout.TRAINING_SUMMARY_FILE), 'w') as f:
    json.dump(summary, f, indent=2)
  distribution.barrier(strategy)  # the chief's files are written: every worker is done
  if outputs.chief and tf.io.gfile.exists(backup_root):
    tf.io.gfile.rmtree(backup_root)  # done: nothing to resume
  log.info('trained and exported in %.0f s (epochs kept: %s)', summary['seconds'],
           ', '.join(f'{phase} {summary[phase]["epoch_kept"]}'
                     for phase in ('teacher', 'student') if summary.get(phase)))


def _towers(student) -> tuple:
  return ((layout.USER_TOWER_DIR, student.user_tower),
          (layout.ITEM_TOWER_DIR, student.item_tower))


def _save_weights(model, setup: _Setup, directory: str) -> None:
  warm_start.save(model, setup.vocabularies, setup.num_oov_buckets, setup.space.scenarios,
                  directory)


def _warm_start(setup: _Setup, models: list) -> dict:
  """Each (name, model, directory): the model's weights from warm_start.save's files in
  the directory (models/warm_start.py): known ids keep their embeddings, new ones their
  initial rows. Returns {name: {vocabulary: {kept, new}}}."""
  counts = {}
  for name, model, directory in models:
    counts[name] = warm_start.restore(model, setup.vocabularies, setup.num_oov_buckets,
                                      setup.space.scenarios, directory)
    log.info('warm start of the %s from %s: %s', name, directory, '; '.join(
        f'{vocabulary} {c["kept"]:,} ids kept, {c["new"]:,} new'
        for vocabulary, c in counts[name].items()))
  return counts


def _teacher_phase(fn_args, setup: _Setup, train: _Input, validation, backup_root: str,
                   summary: dict, fixed: Optional[dict], outputs: distribution.WorkerOutputs):
  """Trains (or loads) the teacher, saves it as the teacher artifact, returns it frozen."""
  config = fn_args.custom_config
  output = outputs.path(config[layout.TRAINER_TEACHER_OUTPUT])
  finished = os.path.join(backup_root, 'teacher_trained')
  source: Optional[str] = None if fixed else config.get(layout.TRAINER_TEACHER_INPUT)
  if source:
    log.info('teacher: reusing %s', source)
    teacher = load_teacher(source, setup)
    summary['teacher'] = _teacher_summary(source)
  elif tf.io.gfile.exists(os.path.join(finished, layout.TEACHER_CONFIG_FILE)):
    log.info('teacher: already trained before the interruption, loading %s', finished)
    teacher = load_teacher(finished, setup)
    summary['teacher'] = _teacher_summary(finished)
  else:
    teacher = _build_teacher(setup)
    warm = config.get(layout.TRAINER_WARM_START_TEACHER)
    if warm:  # a refresh: the previous teacher's weights, then the fixed epochs
      summary['warm_start_teacher'] = {'from': warm, 'ids': _warm_start(
          setup, [('teacher', teacher, os.path.join(warm, layout.WARM_START_DIR))])}
    teacher.compile(_optimizer(setup.training),
                    loss=losses.per_example_binary_cross_entropy,
                    metrics=[tf.keras.metrics.AUC(from_logits=True, name='auc')])
    summary['teacher'] = _fit(
        teacher, 'teacher',
        fixed.get('teacher', setup.distillation.teacher_epochs) if fixed else
        setup.distillation.teacher_epochs,
        train, os.path.join(backup_root, 'teacher'),
        os.path.join(fn_args.model_run_dir, 'teacher'), outputs, validation=validation,
        monitor=None if fixed else 'val_auc', patience=setup.training.patience,
        every=setup.training.validation_every_epochs)
    _save_teacher(teacher, setup, outputs.path(finished), summary['teacher'])
  if source and tf.io.gfile.exists(os.path.join(source, layout.TEACHER_SERVING_DIR)):
    release_format.copy_tree(source, output)  # the same teacher: its files as they are
  else:
    _save_teacher(teacher, setup, output, summary['teacher'])
    export.export_teacher(teacher, setup.tft_output, setup.space,
                          os.path.join(output, layout.TEACHER_SERVING_DIR))
  teacher.trainable = False
  return teacher
