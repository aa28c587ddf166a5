"""Keras callbacks of the Trainer: progress lines, validation recall, early stopping.

Keras' EarlyStopping(restore_best_weights=True) keeps the best weights in memory only: a
Trainer killed and resumed (BackupAndRestore) would forget them and its count of epochs
without improvement. KeepBestEpoch keeps both on disk, next to BackupAndRestore's backup.
"""

import json
import logging
import os
import time
from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf

from retrieval import evaluation
from retrieval import popularity_weights

log = logging.getLogger('dsmoe.trainer')


class ProgressLogger(tf.keras.callbacks.Callback):
  """One line per epoch: metrics and training examples per second (epoch wall time,
  input pipeline and validation included)."""

  def __init__(self, phase: str, epochs: int, rows_per_epoch: int):
    super().__init__()
    self._phase, self._epochs, self._rows = phase, epochs, rows_per_epoch
    self.examples_per_second = []
    self.last_epoch = 0  # 1-based, counting epochs of an interrupted run too

  def on_epoch_begin(self, epoch, logs=None):
    self._started = time.perf_counter()

  def on_epoch_end(self, epoch, logs=None):
    seconds = time.perf_counter() - self._started
    self.last_epoch = epoch + 1
    self.examples_per_second.append(self._rows / seconds)
    metrics = ', '.join(f'{k} {v:.4f}' for k, v in sorted((logs or {}).items()))
    log.info('%s epoch %d/%d: %s; %.1f s, %s examples/s', self._phase, epoch + 1,
             self._epochs, metrics, seconds, f'{self._rows / seconds:,.0f}')


class ValidationRecall(tf.keras.callbacks.Callback):
  """Recall@K per scenario over the full item corpus on the validation queries, computed
  by the Evaluator's code (retrieval/evaluation.py) through the exported towers' path
  (raw tf.Examples -> transform graph -> towers), every `every` epochs.

  Adds logs['val_recall@K'] (all queries) for each K, so KeepBestEpoch can monitor it,
  and keeps every scenario's value in `per_epoch`. After training,
  `fit_popularity_weights` fits tau_s on the same queries.
  """

  def __init__(self, user_examples_fn: Callable, item_examples_fn: Callable,
               queries: evaluation.Queries, corpus_pattern: str, ks: Sequence[int],
               every: int = 1):
    super().__init__()
    self._user, self._item = user_examples_fn, item_examples_fn
    self._queries, self._corpus, self._ks, self._every = queries, corpus_pattern, ks, every
    self.per_epoch = {}  # epoch (1-based) -> {scenario: {k: recall}}

  def on_epoch_end(self, epoch, logs=None):
    if (epoch + 1) % self._every:
      return
    item_ids, item_embeddings = evaluation.corpus_embeddings(self._item, self._corpus)
    recall = evaluation.model_recall(self._user, self._queries, item_ids, item_embeddings,
                                     self._ks)
    self.per_epoch[epoch + 1] = recall
    if logs is not None:
      for k in self._ks:
        logs[f'val_recall@{k}'] = recall['all'][str(k)]

  def fit_popularity_weights(self, user_tower, scenarios: Sequence[str],
                             grid: Sequence[float], fit_k: int) -> popularity_weights.Fit:
    """Post-hoc: fits the per-scenario popularity weight tau_s of the trained model on
    these queries (retrieval/popularity_weights.py) and sets it in `user_tower`
    (models/towers/base.UserTower, from tau = 0)."""
    user_tower.set_popularity_weights(np.zeros(len(scenarios)))
    item_ids, item_embeddings = evaluation.corpus_embeddings(self._item, self._corpus)
    result = popularity_weights.fit(
        evaluation.embed(self._user, self._queries.examples), self._queries.scenario,
        self._queries.clicked, item_ids, item_embeddings,
        user_tower.own_scenario_popularity_columns(), scenarios, grid, self._ks, fit_k)
    user_tower.set_popularity_weights([result.weights[s] for s in scenarios])
    log.info('popularity weights tau_s fitted on validation: %s; Recall@%d %s', ', '.join(
        f'{s} {tau:g}' for s, tau in result.weights.items()), fit_k, ', '.join(
            f'{s} {r[str(fit_k)]:.4f}' for s, r in result.recall.items()))
    return result


class KeepBestEpoch(tf.keras.callbacks.Callback):
  """Early stopping on a validation metric (larger is better) that keeps the best epoch.

  At each epoch whose logs have `monitor`: a new best saves the weights under `directory`;
  otherwise, after `patience` validations without improvement, training stops. At the end
  the best weights are restored. The state (best value, epoch, validations since) is a
  JSON file beside the weights, so a resumed run carries on where it stopped.

  `write_directory` (default `directory`): where this worker saves, when only the chief
  writes to `directory` (training/distribution.WorkerOutputs). Every worker reads a
  resumed run's state from `directory`, and a worker that writes elsewhere copies the best
  weights from there: the chief removes `directory` when its training ends.
  """

  def __init__(self, monitor: str, patience: int, directory: str,
               write_directory: Optional[str] = None):
    super().__init__()
    self.monitor, self.patience = monitor, patience
    self._state_file = os.path.join(directory, 'keep_best.json')
    self._read_weights = os.path.join(directory, 'best_weights')
    self._directory = write_directory or directory
    self._weights = os.path.join(self._directory, 'best_weights')
    self.best: Optional[float] = None
    self.best_epoch = 0
    self.wait = 0

  def on_train_begin(self, logs=None):
    if tf.io.gfile.exists(self._state_file):
      with tf.io.gfile.GFile(self._state_file) as f:
        state = json.load(f)
      self.best, self.best_epoch, self.wait = state['best'], state['epoch'], state['wait']
      if self._weights != self._read_weights and self.best is not None:
        tf.io.gfile.makedirs(self._directory)
        for path in tf.io.gfile.glob(self._read_weights + '.*'):
          tf.io.gfile.copy(path, self._weights + path[len(self._read_weights):],
                           overwrite=True)

  def on_epoch_end(self, epoch, logs=None):
    value = (logs or {}).get(self.monitor)
    if value is None or not np.isfinite(value):
      return
    if self.best is None or value > self.best:
      self.best, self.best_epoch, self.wait = float(value), epoch + 1, 0
      self.model.save_weights(self._weights)
    else:
      self.wait += 1
      if self.wait >= self.patience:
        self.model.stop_training = True
    tf.io.gfile.makedirs(self._directory)
    with tf.io.gfile.GFile(os.path.join(self._directory, 'keep_best.json'), 'w') as f:
      json.dump({'best': self.best, 'epoch': self.best_epoch, 'wait': self.wait}, f)

  def on_train_end(self, logs=None):
    if self.best is not None:
      self.model.load_weights(self._weights)
      log.info('keeping epoch %d (%s %.4f)', self.best_epoch, self.monitor, self.best)
