"""Training and scoring of a ranker (models/rankers/): exposures in, one logit per task out.

    transformed train exposures (every shown item with its task labels, models/data.py)
    -> the ranker of `ranker.model`, BCE averaged over the tasks (Adam, ranker.learning_rate)
    -> early stopping on the validation exposures' mean AUC over the tasks (each epoch;
       ranker.patience epochs without a gain stop it), the best epoch kept

Scoring reads raw tf.Examples (any window: the test window is never transformed by the
pipeline) through the Transform graph, as serving does, and returns each exposure's
probabilities with its raw user id, scenario and labels, in the files' stable order.
"""

import dataclasses
import logging
import os
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from core import config as configs
from core import feature_names as fnames
from models import build
from models import data
from models import features
from training import callbacks

log = logging.getLogger('dsmoe.trainer')

MEAN_AUC = 'val_mean_auc'  # the monitored metric: validation AUC averaged over the tasks
_SCORE_BATCH = 4096


class MeanValidationAUC(tf.keras.callbacks.Callback):
  """Adds logs[MEAN_AUC], the mean of the tasks' validation AUCs (val_auc_<task>)."""

  def __init__(self, tasks: Sequence[str]):
    super().__init__()
    self._names = [f'val_auc_{t}' for t in tasks]

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None and all(n in logs for n in self._names):
      logs[MEAN_AUC] = float(np.mean([logs[n] for n in self._names]))


def train_ranker(config: configs.RankerConfig, seed: int, space: features.FeatureSpace,
                 tasks: Sequence[str], tft_output: tft.TFTransformOutput,
                 train_pattern: str, validation_pattern: str, work_dir: str):
  """Trains `config`'s ranker; returns (model with the kept epoch's weights, summary).

  `work_dir` holds the resumable checkpoints (a killed run carries on) and the best
  epoch's weights."""
  tf.keras.utils.set_random_seed(seed)
  model = build.build_ranker(config, space, tuple(tasks))
  model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate))
  train = data.ranking_examples(train_pattern, tft_output, space, tasks)
  rows = int(train.reduce(0, lambda n, _: n + 1))
  train = data.ranking_batches(train, config.batch_size, shuffle_seed=seed)
  validation = data.ranking_batches(
      data.ranking_examples(validation_pattern, tft_output, space, tasks),
      _SCORE_BATCH, shuffle_seed=None)
  progress = callbacks.ProgressLogger(f'ranker {config.model}', config.epochs, rows)
  keep = callbacks.KeepBestEpoch(MEAN_AUC, config.patience, os.path.join(work_dir, 'best'))
  history = model.fit(
      train, epochs=config.epochs, validation_data=validation, verbose=0,
      callbacks=[MeanValidationAUC(tasks), keep,
                 tf.keras.callbacks.BackupAndRestore(os.path.join(work_dir, 'backup')),
                 progress])
  summary = {'model': config.model, 'tasks': list(tasks), 'seed': seed,
             'train_examples': rows, 'epochs_max': config.epochs,
             'epochs_run': progress.last_epoch, 'epoch_kept': keep.best_epoch,
             'monitor': {'metric': MEAN_AUC, 'best': keep.best, 'patience': config.patience},
             'history': {k: [float(x) for x in v] for k, v in history.history.items()},
             'examples_per_second': progress.examples_per_second,
             'parameters': int(model.count_params())}
  return model, summary


@dataclasses.dataclass(frozen=True)
class ScoredExposures:
  """One window's exposures, scored: arrays of length N, in the files' stable order."""
  probabilities: np.ndarray  # [N, T] float
  labels: np.ndarray  # [N, T] 0/1
  users: np.ndarray  # [N] raw user ids
  items: np.ndarray  # [N] raw item ids
  scenarios: np.ndarray  # [N] raw scenario values
  timestamps: np.ndarray  # [N] int64 ms


def raw_exposures(pattern: str, tasks: Sequence[str],
                  records: Optional[np.ndarray] = None) -> ScoredExposures:
  """The raw examples' ids, scenarios and labels (no scores: probabilities is empty);
  `records`: the pattern's sorted records, when the caller has read them already."""
  spec = {name: tf.io.FixedLenFeature([], tf.string)
          for name in (fnames.USER_ID, fnames.ITEM_ID, fnames.SCENARIO)}
  spec[fnames.TIMESTAMP] = tf.io.FixedLenFeature([], tf.int64)
  spec.update({fnames.task_label(t): tf.io.FixedLenFeature([], tf.int64) for t in tasks})
  records = data.sorted_records(pattern) if records is None else records
  columns = {name: [] for name in spec}
  for start in range(0, len(records), _SCORE_BATCH):
    parsed = tf.io.parse_example(records[start:start + _SCORE_BATCH], spec)
    for name, value in parsed.items():
      columns[name].append(value.numpy())
  joined = {name: np.concatenate(v) if v else np.zeros([0]) for name, v in columns.items()}
  text = lambda name: joined[name].astype(str) if len(joined[name]) else joined[name]
  labels = (np.stack([joined[fnames.task_label(t)] for t in tasks], axis=1)
            if len(records) else np.zeros([0, len(tasks)]))
  return ScoredExposures(np.zeros([0, len(tasks)]), labels.astype(np.int64),
                         text(fnames.USER_ID), text(fnames.ITEM_ID), text(fnames.SCENARIO),
                         joined[fnames.TIMESTAMP].astype(np.int64))


def score_raw(model: tf.keras.Model, tft_output: tft.TFTransformOutput,
              space: features.FeatureSpace, pattern: str,
              tasks: Sequence[str]) -> ScoredExposures:
  """The ranker's probabilities for every raw exposure of `pattern`, through the
  Transform graph (as serving computes them)."""
  records = data.sorted_records(pattern)  # read and sorted once for ids and scores
  exposures = raw_exposures(pattern, tasks, records)
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
      exposures, probabilities=np.concatenate(probabilities) if probabilities
      else np.zeros([0, len(tasks)]))
