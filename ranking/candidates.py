"""Scoring retrieved candidates with an exported ranker, and blending its task scores.

    ranker = CandidateRanker(ranker_dir, item_records)
    [probabilities] = ranker.score([user_values], [item_rows])  # [n, T], tasks in order
    scores = blend(probabilities, weights)                       # [n]

The ranker's raw-tensor signature (models/export.export_ranker, layout.RANKER_SIGNATURE)
takes user-side inputs (user features, behaviour history, scenario) and item-side inputs
(the item features of its feature_space.json). A user's values (a dict of raw feature ->
list of values, as core/examples.to_python decodes a tf.Example, or as serving checks a
request) are repeated once per candidate; each candidate's item inputs come from an
ItemTable: the corpus's raw tf.Examples as of the time the items are ranked (serving: the
release's item_corpus/; the offline evaluation: the corpus at the test window's start).

The blended score is sum_t w_t * p_t + w_retrieval * <u, v> (RecommendConfig: the
retrieval model's logit is one more column, BLEND_RETRIEVAL). Ties keep the retrieval's
order.
"""

import json
import os
from typing import Iterable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from core import config as configs
from core import examples as example_files
from core import feature_names as fnames
from core import layout

# Rows (user, candidate pairs) per call of the ranker: memory stays bounded when a whole
# corpus is scored.
CHUNK_ROWS = 32768


def _blank(spec: tf.TensorSpec):
  return 0.0 if spec.dtype.is_floating else ''


def _column(values: Sequence[Sequence], spec: tf.TensorSpec) -> np.ndarray:
  """[R] (one value per row) or [R, L] padded with the blank value (list inputs)."""
  dtype = np.float32 if spec.dtype.is_floating else object
  blank = _blank(spec)
  if spec.shape.rank == 1:
    return np.array([v[0] if len(v) else blank for v in values], dtype=dtype)
  width = max([1] + [len(v) for v in values])
  column = np.full((len(values), width), blank, dtype=dtype)
  for row, v in enumerate(values):
    column[row, :len(v)] = v
  return column


class ItemTable:
  """The item-side raw inputs of every corpus item: column name -> [N] or [N, L]."""

  def __init__(self, records: Iterable[bytes], specs: Mapping[str, tf.TensorSpec]):
    items = [example_files.to_python(r) for r in records]
    self.item_ids = np.array([str(v[fnames.ITEM_ID][0]) for v in items])
    self.row = {item: i for i, item in enumerate(self.item_ids.tolist())}
    self.columns = {name: _column([v.get(name, []) for v in items], spec)
                    for name, spec in specs.items()}

  def __len__(self) -> int:
    return len(self.item_ids)

  def rows(self, item_ids: Iterable[str]) -> np.ndarray:
    """Row of each item id; KeyError names the first item id the table lacks."""
    return np.array([self.row[str(item)] for item in item_ids], dtype=np.int64)


class CandidateRanker:
  """An exported ranker over (user, candidate items): probabilities per task."""

  def __init__(self, directory: str, item_records: Iterable[bytes]):
    with tf.io.gfile.GFile(os.path.join(directory, layout.RANKER_TASKS_FILE)) as f:
      self.tasks = tuple(json.load(f))
    with tf.io.gfile.GFile(os.path.join(directory, layout.FEATURE_SPACE_FILE)) as f:
      item_space = json.load(f)['item']
    item_names = ({c['name'] for c in item_space['categorical']} | set(item_space['numeric'])
                  | {n['name'] for n in item_space.get('numeric_lists', ())})
    self._module = tf.saved_model.load(directory)  # keeps the signature's resources alive
    self._signature = self._module.signatures[layout.RANKER_SIGNATURE]
    specs = dict(self._signature.structured_input_signature[1])
    self.user_specs = {n: s for n, s in specs.items() if n not in item_names}
    self.item_specs = {n: s for n, s in specs.items() if n in item_names}
    self.items = ItemTable(item_records, self.item_specs)

  def score(self, users: Sequence[Mapping[str, Sequence]],
            rows: Sequence[np.ndarray]) -> list[np.ndarray]:
    """For each user, [n_u, T] probabilities of its candidate item rows (ItemTable rows)."""
    counts = np.array([len(r) for r in rows], dtype=np.int64)
    total = int(counts.sum())
    if not total:
      return [np.zeros((0, len(self.tasks)), np.float32) for _ in rows]
    user_columns = {name: _column([u.get(name, ()) for u in users], spec)
                    for name, spec in self.user_specs.items()}
    user_of_row = np.repeat(np.arange(len(rows)), counts)
    item_of_row = np.concatenate([np.asarray(r, np.int64) for r in rows])
    parts = []
    for start in range(0, total, CHUNK_ROWS):
      users_here = user_of_row[start:start + CHUNK_ROWS]
      items_here = item_of_row[start:start + CHUNK_ROWS]
      inputs = {name: tf.constant(column[users_here], dtype=self.user_specs[name].dtype)
                for name, column in user_columns.items()}
      inputs.update({name: tf.constant(column[items_here], dtype=spec.dtype)
                     for name, spec in self.item_specs.items()
                     for column in [self.items.columns[name]]})
      out = self._signature(**inputs)
      parts.append(np.stack([out[t].numpy() for t in self.tasks], axis=1))
    return np.split(np.concatenate(parts), np.cumsum(counts)[:-1])


def blend_columns(tasks: Sequence[str]) -> tuple[str, ...]:
  """The blend's columns: the ranker's tasks, then the retrieval logit."""
  return tuple(tasks) + (configs.BLEND_RETRIEVAL,)


def with_retrieval(probabilities: np.ndarray, logits: np.ndarray) -> np.ndarray:
  """[n, T + 1]: the tasks' probabilities [n, T] and the retrieval logits [n]."""
  return np.concatenate([probabilities, np.asarray(logits, probabilities.dtype)[:, None]],
                        axis=1)


def blend(columns: np.ndarray, weights: np.ndarray) -> np.ndarray:
  """[n] sum_c weights[c] * columns[:, c] (columns: with_retrieval's)."""
  return columns @ np.asarray(weights, columns.dtype)


def weight_vector(weights: Mapping[str, float], tasks: Sequence[str]) -> np.ndarray:
  """[T + 1] the weights in blend_columns(tasks) order (a column left out weighs 0)."""
  return np.array([float(weights.get(c, 0.0)) for c in blend_columns(tasks)], np.float32)


def rerank(columns: np.ndarray, weights: np.ndarray) -> np.ndarray:
  """Positions of the candidates by blended score, best first; ties keep the given order."""
  return np.argsort(-blend(columns, weights), kind='stable')
