"""Point-in-time item popularity inside tf.data: every training negative's time-dependent
item features as of its anchor's moment (a feature store's point-in-time join).

The ingestion writes an anchor's `scenario_clicks` (and `scenario_recent_clicks`) as of
its own event, counting the clicks strictly before it (ingestion/records.ItemClicks). A
random negative drawn from the corpus would otherwise carry the corpus's features, as of
the end of the training window: the same item would look more popular as a negative than as
a positive, and the model would learn "more clicks means not clicked". This table gives a
negative the features its item had at the anchor's moment t, by the same rule:

    n_s(i, t) = #{clicks of item i in scenario s with t_c < t}
    d_s(i, t) = sum over those clicks of 2 ** (-(t - t_c) / h)

Representation: one sorted int64 key per click, key = (row * S + s) * span + (t_c - t_0),
row the item's corpus row, s the scenario index, span > every t - t_0. For a query
(row, s, t), n is searchsorted(key(row, s, t)) - searchsorted(key(row, s, t_0)), two
binary searches over the clicks; d uses float64 prefix sums of 2 ** ((t_c - t_0) / h)
between the same two positions, times 2 ** (-(t - t_0) / h). Memory: 16 bytes per click.
Written here because neither TFRS nor TFT has an as-of lookup; tf.lookup tables map a key
to one value, not a count over a time range.
"""

from typing import Sequence

import numpy as np
import tensorflow as tf

from core import examples as example_files
from core import feature_names as fnames
from models import preprocessing

# 2 ** (span / h) must stay finite in float64 (about 1,000 half-lives).
_MAX_HALF_LIVES = 900.0


class ItemClickTable:
  """Clicks per (corpus row, scenario) over time; `features` looks them up as of t."""

  def __init__(self, rows: np.ndarray, scenario_index: np.ndarray, times_ms: np.ndarray,
               num_scenarios: int, half_life_ms: float):
    """rows, scenario_index, times_ms: one entry per click ([C] ints)."""
    rows = np.asarray(rows, np.int64)
    scenario_index = np.asarray(scenario_index, np.int64)
    times_ms = np.asarray(times_ms, np.int64)
    self._num_scenarios = int(num_scenarios)
    self._t0 = int(times_ms.min()) if times_ms.size else 0
    self._span = (int(times_ms.max()) - self._t0 + 2) if times_ms.size else 2
    self._half_life_ms = float(half_life_ms)
    if self._span / self._half_life_ms > _MAX_HALF_LIVES:
      raise ValueError(f'the clicks span {self._span / 86_400_000:.0f} days, more than '
                       f'{_MAX_HALF_LIVES:.0f} half-lives of '
                       f'ingestion.recent_clicks_half_life_days: raise the half-life')
    keys = (rows * self._num_scenarios + scenario_index) * self._span + (times_ms - self._t0)
    order = np.argsort(keys, kind='stable')
    self._keys = tf.constant(keys[order])
    growth = np.exp2((times_ms[order] - self._t0) / self._half_life_ms)
    self._prefix = tf.constant(np.concatenate([[0.0], np.cumsum(growth)]), tf.float64)

  def _lookup(self, rows: tf.Tensor, t_ms: tf.Tensor):
    """(n [M, S] float32, d [M, S] float32) for corpus rows [M] as of t_ms [M]."""
    scenarios = tf.range(self._num_scenarios, dtype=tf.int64)
    groups = (tf.cast(rows, tf.int64)[:, None] * self._num_scenarios + scenarios[None, :])
    offset = tf.clip_by_value(tf.cast(t_ms, tf.int64) - self._t0, 0, self._span - 1)
    start = groups * self._span
    lo = tf.searchsorted(self._keys, tf.reshape(start, [-1]), side='left')
    hi = tf.searchsorted(self._keys, tf.reshape(start + offset[:, None], [-1]), side='left')
    shape = tf.shape(groups)
    counts = tf.reshape(tf.cast(hi - lo, tf.float32), shape)
    elapsed = tf.maximum(tf.cast(t_ms, tf.int64) - self._t0, 0)  # d = 0 before t_0 anyway
    scale = tf.pow(tf.constant(2.0, tf.float64),
                   -tf.cast(elapsed, tf.float64) / self._half_life_ms)
    decayed = tf.reshape(tf.gather(self._prefix, hi) - tf.gather(self._prefix, lo), shape)
    return counts, tf.cast(decayed * scale[:, None], tf.float32)

  def features(self, names: Sequence[str], rows: tf.Tensor, t_ms: tf.Tensor) -> dict:
    """The transformed popularity features `names` (of fnames.POPULARITY_FEATURES) of
    corpus rows [M] as of t_ms [M]: {name: float32 [M, S]}, as the Transform graph makes
    them from the ingestion's raw values."""
    counts, decayed = self._lookup(rows, t_ms)
    raw = {fnames.SCENARIO_CLICKS: counts, fnames.SCENARIO_RECENT_CLICKS: decayed}
    return {name: preprocessing.popularity_transform(raw[name]) for name in names}


class PointInTimeItems:
  """An ItemClickTable over the rows of one item corpus, with its raw ids (`raw_ids`
  [N] str, the corpus's order) to find an anchor's row."""

  def __init__(self, table: ItemClickTable, raw_ids: tf.Tensor):
    self.table = table
    self._rows = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        raw_ids, tf.range(tf.shape(raw_ids)[0], dtype=tf.int64)), -1)

  def rows_of(self, raw_ids: tf.Tensor) -> tf.Tensor:
    """Corpus rows of raw item ids [M] (-1: not in the corpus, no clicks)."""
    return self._rows.lookup(raw_ids)


def from_examples(file_patterns: Sequence[str], corpus_raw_ids: tf.Tensor, scenarios: Sequence[str],
                  half_life_ms: float) -> tuple[PointInTimeItems, dict]:
  """The table of the clicks (label 1) in the raw examples of `file_patterns` (the
  training splits), by corpus row and served scenario; with counts of what it holds and
  what it leaves out: {'clicks', 'not_in_corpus', 'scenario_not_served'}."""
  keys = {fnames.ITEM_ID: tf.io.FixedLenFeature([], tf.string),
          fnames.SCENARIO: tf.io.FixedLenFeature([], tf.string),
          fnames.LABEL: tf.io.FixedLenFeature([], tf.int64),
          fnames.TIMESTAMP: tf.io.FixedLenFeature([], tf.int64)}
  columns = {k: [] for k in keys}
  for pattern in file_patterns:
    for batch in example_files.record_batches(pattern):
      parsed = tf.io.parse_example(batch, keys)
      for k in keys:
        columns[k].append(parsed[k].numpy())
  values = {k: (np.concatenate(v) if v else np.zeros([0], object if k in (
      fnames.ITEM_ID, fnames.SCENARIO) else np.int64)) for k, v in columns.items()}
  clicked = values[fnames.LABEL] > 0
  row_of = {raw: i for i, raw in enumerate(corpus_raw_ids.numpy().tolist())}
  scenario_of = {s.encode(): i for i, s in enumerate(scenarios)}
  rows = np.array([row_of.get(i, -1) for i in values[fnames.ITEM_ID][clicked]], np.int64)
  index = np.array([scenario_of.get(s, -1) for s in values[fnames.SCENARIO][clicked]],
                   np.int64)
  keep = (rows >= 0) & (index >= 0)
  table = ItemClickTable(rows[keep], index[keep], values[fnames.TIMESTAMP][clicked][keep],
                         len(scenarios), half_life_ms)
  counts = {'clicks': int(keep.sum()), 'not_in_corpus': int((rows < 0).sum()),
            'scenario_not_served': int(((rows >= 0) & (index < 0)).sum())}
  return PointInTimeItems(table, corpus_raw_ids), counts
