"""Offline retrieval evaluation: queries, exact top-K, Recall@K per scenario, popularity.

Shared by the Evaluator (model quality) and the index builder (ScaNN against exact):

- a query is one (user, scenario) pair of the eval split with at least one click; its
  ground truth is the set of items the user clicked in that scenario during the eval
  period, and its features are those of the pair's eval events (all of a user's eval
  events carry the same history: the one as of the cutoff);
- models are evaluated through their exported towers (raw tf.Examples in, embeddings out),
  so the evaluation covers the transform graph exactly as served;
- top-K is exact: dot products of every query with every corpus item.
"""

import dataclasses
import os
from typing import Iterator, Sequence

import numpy as np
import tensorflow as tf

from models import export
from pipeline import dataset_spec as ds

BATCH = 4096
_EVENT_KEYS = {
    ds.USER_ID: tf.io.FixedLenFeature([], tf.string),
    ds.SCENARIO: tf.io.FixedLenFeature([], tf.string),
    ds.ITEM_ID: tf.io.FixedLenFeature([], tf.string),
    ds.LABEL: tf.io.FixedLenFeature([], tf.int64),
}


def record_batches(file_pattern: str, batch_size: int = BATCH) -> Iterator[tf.Tensor]:
  """Serialized tf.Examples of gzip TFRecord files, in batches, in a stable order."""
  files = sorted(tf.io.gfile.glob(file_pattern))
  if not files:
    raise FileNotFoundError(f'no TFRecord file matches {file_pattern}')
  yield from tf.data.TFRecordDataset(files, compression_type='GZIP').batch(batch_size)


def split_pattern(artifact_uri: str, split: str) -> str:
  return os.path.join(artifact_uri, f'Split-{split}', '*')


@dataclasses.dataclass
class Events:
  """The eval (or train) events: keys per event and the serialized examples."""
  user_id: np.ndarray  # [E] str
  scenario: np.ndarray  # [E] str
  item_id: np.ndarray  # [E] str
  label: np.ndarray  # [E] int
  examples: np.ndarray  # [E] bytes


def read_events(file_pattern: str, keep_examples: bool = True) -> Events:
  columns = {k: [] for k in _EVENT_KEYS}
  examples = []
  for batch in record_batches(file_pattern):
    parsed = tf.io.parse_example(batch, _EVENT_KEYS)
    for key in _EVENT_KEYS:
      columns[key].append(parsed[key].numpy())
    if keep_examples:
      examples.append(batch.numpy())
  values = {k: np.concatenate(v) for k, v in columns.items()}
  return Events(_text(values[ds.USER_ID]), _text(values[ds.SCENARIO]),
                _text(values[ds.ITEM_ID]), values[ds.LABEL],
                np.concatenate(examples) if examples else np.array([], object))


def _text(values: np.ndarray) -> np.ndarray:
  """bytes -> str, as UTF-8."""
  return np.char.decode(values.astype('S'), 'utf-8') if values.size else values.astype(str)


@dataclasses.dataclass
class Queries:
  """One (user, scenario) query per pair with a click in the eval split."""
  user_id: np.ndarray  # [Q] str
  scenario: np.ndarray  # [Q] str
  examples: np.ndarray  # [Q] bytes: one eval example of the pair (query features)
  clicked: list  # [Q] sets of item ids


def eval_queries(events: Events) -> Queries:
  first, clicked = {}, {}
  for i, (user, scenario, item, label) in enumerate(zip(
      events.user_id, events.scenario, events.item_id, events.label)):
    key = (user, scenario)
    first.setdefault(key, i)
    if label > 0:
      clicked.setdefault(key, set()).add(item)
  keys = sorted(clicked)
  rows = [first[k] for k in keys]
  return Queries(np.array([k[0] for k in keys]), np.array([k[1] for k in keys]),
                 events.examples[rows], [clicked[k] for k in keys])


def embed(signature, examples: np.ndarray, output: str = 'embedding') -> np.ndarray:
  """Runs a `*_examples` signature over serialized examples, in batches."""
  parts = [signature(examples=tf.constant(examples[i:i + BATCH]))[output].numpy()
           for i in range(0, len(examples), BATCH)]
  return np.concatenate(parts) if parts else np.zeros((0,))


@dataclasses.dataclass
class Towers:
  user: object  # the user tower's user_embedding_examples signature
  item: object  # the item tower's item_embedding_examples signature


def load_towers(model_directory: str) -> Towers:
  """The exported towers of a trained model (models/export.py)."""
  user = tf.saved_model.load(os.path.join(model_directory, export.USER_TOWER_DIR))
  item = tf.saved_model.load(os.path.join(model_directory, export.ITEM_TOWER_DIR))
  return Towers(user.signatures[export.USER_EXAMPLES_SIGNATURE],
                item.signatures[export.ITEM_EXAMPLES_SIGNATURE])


def corpus_embeddings(item_signature, corpus_pattern: str) -> tuple[np.ndarray, np.ndarray]:
  """(item ids [N], embeddings [N, d]) of every item of the corpus."""
  ids, embeddings = [], []
  for batch in record_batches(corpus_pattern):
    parsed = tf.io.parse_example(batch, {ds.ITEM_ID: _EVENT_KEYS[ds.ITEM_ID]})
    ids.append(_text(parsed[ds.ITEM_ID].numpy()))
    embeddings.append(item_signature(examples=batch)['embedding'].numpy())
  return np.concatenate(ids), np.concatenate(embeddings)


def exact_top_k(queries: np.ndarray, items: np.ndarray, k: int,
                chunk: int = 1024) -> np.ndarray:
  """Indices [Q, k] of the k items with the largest dot product, best first."""
  k = min(k, len(items))
  items_t = tf.constant(items.T)
  parts = []
  for start in range(0, len(queries), chunk):
    scores = tf.matmul(tf.constant(queries[start:start + chunk]), items_t)
    parts.append(tf.math.top_k(scores, k=k).indices.numpy())
  return np.concatenate(parts) if parts else np.zeros((0, k), np.int64)


def recall_at_k_per_scenario(ranked_items: Sequence[Sequence[str]],
                             clicked: Sequence[set], scenarios: Sequence[str],
                             ks: Sequence[int]) -> dict[str, dict[str, float]]:
  """Mean over queries of |top-K ∩ clicked| / |clicked|, per scenario and over all.

  Returns {scenario: {str(k): recall}}, with 'all' for every query together.
  """
  per_query = {k: np.array([len(set(ranked[:k]) & truth) / len(truth)
                            for ranked, truth in zip(ranked_items, clicked)])
               for k in ks}
  scenarios = np.asarray(scenarios)
  result = {}
  for scenario in sorted(set(scenarios.tolist())) + ['all']:
    mask = np.ones(len(scenarios), bool) if scenario == 'all' else scenarios == scenario
    result[scenario] = {str(k): float(per_query[k][mask].mean()) for k in ks}
  return result


def popularity_rankings(train: Events, k: int) -> tuple[list[str], dict[str, list[str]]]:
  """Most-clicked items in training: overall, and per scenario (ties by item id)."""
  def top(mask):
    items, counts = np.unique(train.item_id[mask & (train.label > 0)], return_counts=True)
    order = sorted(range(len(items)), key=lambda i: (-counts[i], items[i]))
    return [str(items[i]) for i in order[:k]]
  overall = top(np.ones(len(train.item_id), bool))
  per_scenario = {s: top(train.scenario == s) for s in np.unique(train.scenario)}
  return overall, per_scenario
