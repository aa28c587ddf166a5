"""Training and scoring of a ranker (models/rankers/): exposures in, one logit per task out.

`run_fn` is the RankerTrainer's (components/ranker_trainer/): it trains as below and
exports the kept epoch as a SavedModel from raw features (models/export.export_ranker)
with training_summary.json. experiments/rankers.py calls train_ranker and score_raw.

    transformed train exposures (every shown item with its task labels, models/data.py)
    -> the ranker of `ranker.model`, BCE averaged over the tasks (Adam, ranker.learning_rate)
    -> early stopping on the validation exposures' mean GAUC over the tasks (each epoch;
       ranker.patience epochs without a gain stop it), the best epoch kept
    (a refit: the transformed exposures of every day, the evaluated ranker's kept epochs,
     no validation)

Scoring reads raw tf.Examples (any window: the test window is never transformed by the
pipeline) through the Transform graph, as serving does, and returns each exposure's
probabilities with its raw user id, scenario and labels, in the files' stable order.
"""

import dataclasses
import json
import logging
import os
from typing import Optional, Sequence

from google.protobuf import text_format
import numpy as np
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
import tensorflow_transform as tft

from core import config as configs
from core import dataset_spec as ds
from core import examples as example_files
from core import feature_names as fnames
from core import layout
from core.scenario_mapping import ScenarioMapping
from models import build
from models import data
from models import export
from models import features
from models import preprocessing
from models.rankers import base as rankers_base
from ranking import exposures
from ranking import metrics
from training import callbacks

log = logging.getLogger('dsmoe.trainer')

MEAN_GAUC = 'val_mean_gauc'  # the monitored metric: validation GAUC averaged over the tasks
_SCORE_BATCH = 4096


class MeanValidationGAUC(tf.keras.callbacks.Callback):
  """Scores the validation exposures after each epoch and adds, for each task,
  logs['val_gauc_<task>'] (ranking/metrics.gauc: each user's AUC, weighted by the user's
  exposures, over the users with both classes) and logs[MEAN_GAUC], their mean over the
  tasks a user with both classes defines.

  Within-user order is what a ranker adds over item popularity (which orders every user's
  candidates alike), so early stopping watches GAUC, not the AUC over all exposures. Users
  are grouped by their vocabulary id: users out of the training vocabulary share their OOV
  bucket's group (the blessing, on raw ids, does not).
  """

  def __init__(self, validation: tf.data.Dataset, tasks: Sequence[str]):
    super().__init__()
    self._validation = validation
    self._tasks = tuple(tasks)

  def on_epoch_end(self, epoch, logs=None):
    if logs is None:
      return
    users, labels, scores = [], [], []
    for inputs, batch_labels in self._validation:
      scores.append(self.model(inputs, training=False).numpy())
      users.append(inputs[fnames.USER_ID].numpy())
      labels.append(batch_labels.numpy())
    users, labels, scores = (np.concatenate(users), np.concatenate(labels),
                             np.concatenate(scores))
    defined = []
    for t, task in enumerate(self._tasks):
      value, _ = metrics.gauc(labels[:, t], scores[:, t], users)
      logs[f'val_gauc_{task}'] = value
      if np.isfinite(value):
        defined.append(value)
    logs[MEAN_GAUC] = float(np.mean(defined)) if defined else float('nan')


def feature_space(spec: ds.DatasetSpec, tft_output: tft.TFTransformOutput,
                  num_oov_buckets: int, scenarios: Sequence[str],
                  schema: schema_pb2.Schema,
                  item_outcomes: bool) -> features.FeatureSpace:
  """The rankers' FeatureSpace: the Trainer's, with the rankers' popularity features
  (models/rankers/base.POPULARITY_FEATURES) and, with `item_outcomes`
  (ranker.item_outcome_features), the item's outcomes as of the exposure."""
  return features.FeatureSpace.build(
      spec, preprocessing.vocabulary_sizes(tft_output, spec, num_oov_buckets), scenarios,
      schema, rankers_base.POPULARITY_FEATURES, item_outcomes)


def run_fn(fn_args) -> None:
  """The RankerTrainer's run_fn (TFX FnArgs): train on fn_args.train_files, stop early on
  fn_args.eval_files, export to fn_args.serving_model_dir.

  custom_config (components/ranker_trainer/component.py): the dataset spec (its tasks),
  the transform and ranker sections, the seed, the scenario mapping and a backup
  directory that a killed run resumes from (removed once the export is written)."""
  config = fn_args.custom_config
  spec = configs.spec_from_custom_config(config)
  ranker = configs.from_custom_config(config, configs.RankerConfig)
  transform = configs.from_custom_config(config, configs.TransformConfig)
  tft_output = tft.TFTransformOutput(fn_args.transform_output)
  with tf.io.gfile.GFile(fn_args.schema_path) as f:
    schema = text_format.Parse(f.read(), schema_pb2.Schema())
  scenarios = ScenarioMapping.load(config[layout.TRAINER_SCENARIO_MAPPING]).values
  space = feature_space(spec, tft_output, transform.num_oov_buckets, scenarios, schema,
                        ranker.item_outcome_features)
  tasks = spec.logs.task_names
  backup = config[layout.TRAINER_BACKUP_DIR]
  seed = int(config[layout.RANKER_SEED])
  if layout.RANKER_REFIT_OF in config:  # a refit: the evaluated ranker's epochs, every day
    refit_of = json.loads(config[layout.RANKER_REFIT_OF])
    model, summary = train_ranker(ranker, seed, space, tasks, tft_output,
                                  fn_args.train_files, None, backup,
                                  fixed_epochs=refit_of['epochs'])
    summary['refit_of'] = refit_of
    summary['trained_on'] = (f'every day (split all, vocabularies of the last event), the '
                             f'{refit_of["epochs"]} epochs the evaluated ranker kept')
  else:
    model, summary = train_ranker(ranker, seed, space, tasks, tft_output,
                                  fn_args.train_files, fn_args.eval_files, backup)
    summary['trained_on'] = 'the train window, stopped on the validation window'
  export.export_ranker(model, tft_output, space, tuple(tasks), fn_args.serving_model_dir)
  with tf.io.gfile.GFile(os.path.join(fn_args.serving_model_dir,
                                      layout.TRAINING_SUMMARY_FILE), 'w') as f:
    json.dump(summary, f, indent=2)
  log.info('ranker %s: %s; kept epoch %d of %d run', ranker.model, summary['trained_on'],
           summary['epoch_kept'], summary['epochs_run'])
  if tf.io.gfile.exists(backup):
    tf.io.gfile.rmtree(backup)  # done: nothing to resume


def train_ranker(config: configs.RankerConfig, seed: int, space: features.FeatureSpace,
                 tasks: Sequence[str], tft_output: tft.TFTransformOutput,
                 train_pattern, validation_pattern, work_dir: str,
                 fixed_epochs: Optional[int] = None):
  """Trains `config`'s ranker; returns (model with the kept epoch's weights, summary).
  The patterns: a file pattern or a list of them. With `fixed_epochs` (a refit) it trains
  exactly that many epochs and keeps the last, without validation (validation_pattern
  None).

  `work_dir` holds the resumable checkpoints (a killed run carries on) and the best
  epoch's weights."""
  tf.keras.utils.set_random_seed(seed)
  model = build.build_ranker(config, space, tuple(tasks))
  model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate))
  train = data.ranking_examples(train_pattern, tft_output, space, tasks)
  rows = int(train.reduce(0, lambda n, _: n + 1))
  train = data.ranking_batches(train, config.batch_size, shuffle_seed=seed)
  epochs = fixed_epochs or config.epochs
  progress = callbacks.ProgressLogger(f'ranker {config.model}', epochs, rows)
  backup = tf.keras.callbacks.BackupAndRestore(os.path.join(work_dir, 'backup'))
  if fixed_epochs:
    history = model.fit(train, epochs=epochs, verbose=0, callbacks=[backup, progress])
    monitor, kept = None, epochs
  else:
    validation = data.ranking_batches(
        data.ranking_examples(validation_pattern, tft_output, space, tasks),
        _SCORE_BATCH, shuffle_seed=None)
    keep = callbacks.KeepBestEpoch(MEAN_GAUC, config.patience, os.path.join(work_dir, 'best'))
    history = model.fit(
        train, epochs=epochs, validation_data=validation, verbose=0,
        callbacks=[MeanValidationGAUC(validation, tasks), keep, backup, progress])
    monitor = {'metric': MEAN_GAUC, 'best': keep.best, 'patience': config.patience}
    kept = keep.best_epoch
  summary = {'model': config.model, 'tasks': list(tasks), 'seed': seed,
             'train_examples': rows, 'epochs_max': epochs,
             'epochs_run': progress.last_epoch, 'epoch_kept': kept, 'monitor': monitor,
             'history': {k: [float(x) for x in v] for k, v in history.history.items()},
             'examples_per_second': progress.examples_per_second,
             'parameters': int(model.count_params())}
  return model, summary


def score_raw(model: tf.keras.Model, tft_output: tft.TFTransformOutput,
              space: features.FeatureSpace, pattern: str,
              tasks: Sequence[str]) -> exposures.Exposures:
  """The ranker's probabilities for every raw exposure of `pattern`, through the
  Transform graph (as serving computes them)."""
  records = example_files.sorted_records(pattern)  # read and sorted once: ids and scores
  scored = exposures.read(pattern, tasks, records)
  names = space.user_tower_features + space.item_tower_features
  raw_spec = tft_output.raw_feature_spec()
  raw_spec = {name: raw_spec[name] for name in names}
  transform = tft_output.transform_features_layer()
  probabilities = []
  for start in range(0, len(records), _SCORE_BATCH):
    raw = tf.io.parse_example(records[start:start + _SCORE_BATCH], raw_spec)
    dense = features.dense_model_inputs(transform(raw), space, names)
    probabilities.append(tf.sigmoid(model(dense, training=False)).numpy())
  return dataclasses.replace(
      scored, probabilities=np.concatenate(probabilities) if probabilities
      else np.zeros([0, len(tasks)]))
