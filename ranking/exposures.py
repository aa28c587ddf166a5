"""Exposures for the ranking evaluation: one window's raw tf.Examples with their ids,
scenarios and task labels, and the scores of an exported ranker on them.

    read(pattern, tasks)            -> Exposures (records sorted by content: a stable order
                                       that every system's scores share)
    ExportedRanker(directory)(records) -> [N, T] probabilities, through the SavedModel's
                                       tf.Example signature (models/export.export_ranker):
                                       the Transform graph and the model, as serving runs them
"""

import dataclasses
import json
import os
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from core import examples as example_files
from core import feature_names as fnames
from core import layout

_BATCH = 4096


@dataclasses.dataclass(frozen=True)
class Exposures:
  """One window's exposures: arrays of length N, in the records' sorted order."""
  probabilities: np.ndarray  # [N, T] float: a system's scores (empty until scored)
  labels: np.ndarray  # [N, T] 0/1
  users: np.ndarray  # [N] raw user ids
  items: np.ndarray  # [N] raw item ids
  scenarios: np.ndarray  # [N] raw scenario values
  timestamps: np.ndarray  # [N] int64 ms


def read(pattern: str, tasks: Sequence[str],
         records: Optional[np.ndarray] = None) -> Exposures:
  """The raw examples' ids, scenarios and labels (probabilities empty); `records`: the
  pattern's sorted records, when the caller has read them already."""
  spec = {name: tf.io.FixedLenFeature([], tf.string)
          for name in (fnames.USER_ID, fnames.ITEM_ID, fnames.SCENARIO)}
  spec[fnames.TIMESTAMP] = tf.io.FixedLenFeature([], tf.int64)
  spec.update({fnames.task_label(t): tf.io.FixedLenFeature([], tf.int64) for t in tasks})
  records = example_files.sorted_records(pattern) if records is None else records
  columns = {name: [] for name in spec}
  for start in range(0, len(records), _BATCH):
    parsed = tf.io.parse_example(records[start:start + _BATCH], spec)
    for name, value in parsed.items():
      columns[name].append(value.numpy())
  joined = {name: np.concatenate(v) if v else np.zeros([0]) for name, v in columns.items()}
  text = lambda name: joined[name].astype(str) if len(joined[name]) else joined[name]
  labels = (np.stack([joined[fnames.task_label(t)] for t in tasks], axis=1)
            if len(records) else np.zeros([0, len(tasks)]))
  return Exposures(np.zeros([0, len(tasks)]), labels.astype(np.int64),
                   text(fnames.USER_ID), text(fnames.ITEM_ID), text(fnames.SCENARIO),
                   joined[fnames.TIMESTAMP].astype(np.int64))


class ExportedRanker:
  """A ranker SavedModel (models/export.export_ranker): serialized raw tf.Examples ->
  [N, T] probabilities, columns in `tasks` order (the export's tasks.json)."""

  def __init__(self, directory: str):
    with tf.io.gfile.GFile(os.path.join(directory, layout.RANKER_TASKS_FILE)) as f:
      self.tasks = tuple(json.load(f))
    self._model = tf.saved_model.load(directory)
    self._signature = self._model.signatures[layout.RANKER_EXAMPLES_SIGNATURE]

  def __call__(self, records: np.ndarray) -> np.ndarray:
    scores = []
    for start in range(0, len(records), _BATCH):
      out = self._signature(examples=tf.constant(list(records[start:start + _BATCH])))
      scores.append(np.stack([out[t].numpy() for t in self.tasks], axis=1))
    return np.concatenate(scores) if scores else np.zeros([0, len(self.tasks)])
