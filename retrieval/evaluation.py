"""Offline retrieval evaluation: queries, exact top-K, Recall@K per scenario, popularity.

Shared by the Evaluator (model quality), the index builder (ScaNN against exact) and
serving (exact search):

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
from typing import Optional, Sequence

import numpy as np
from sklearn import metrics as sk_metrics
import tensorflow as tf

from core import config as configs
from core import examples as example_files
from core import feature_names as fnames
from core import layout

_EVENT_KEYS = {
    fnames.USER_ID: tf.io.FixedLenFeature([], tf.string),
    fnames.SCENARIO: tf.io.FixedLenFeature([], tf.string),
    fnames.ITEM_ID: tf.io.FixedLenFeature([], tf.string),
    fnames.LABEL: tf.io.FixedLenFeature([], tf.int64),
}


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
  for batch in example_files.record_batches(file_pattern):
    parsed = tf.io.parse_example(batch, _EVENT_KEYS)
    for key in _EVENT_KEYS:
      columns[key].append(parsed[key].numpy())
    if keep_examples:
      examples.append(batch.numpy())
  values = {k: np.concatenate(v) for k, v in columns.items()}
  return Events(_text(values[fnames.USER_ID]), _text(values[fnames.SCENARIO]),
                _text(values[fnames.ITEM_ID]), values[fnames.LABEL],
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


def embed(signature, examples: np.ndarray,
          output: str = layout.EMBEDDING_OUTPUT) -> np.ndarray:
  """Runs a `*_examples` signature over serialized examples, in batches."""
  batch = example_files.READ_BATCH
  parts = [signature(examples=tf.constant(examples[i:i + batch]))[output].numpy()
           for i in range(0, len(examples), batch)]
  return np.concatenate(parts) if parts else np.zeros((0,))


@dataclasses.dataclass
class Towers:
  user: object  # the user tower's user_embedding_examples signature
  item: object  # the item tower's item_embedding_examples signature


def load_towers(model_directory: str) -> Towers:
  """The exported towers of a trained model (models/export.py)."""
  user = tf.saved_model.load(os.path.join(model_directory, layout.USER_TOWER_DIR))
  item = tf.saved_model.load(os.path.join(model_directory, layout.ITEM_TOWER_DIR))
  return Towers(user.signatures[layout.USER_EXAMPLES_SIGNATURE],
                item.signatures[layout.ITEM_EXAMPLES_SIGNATURE])


def corpus_embeddings(item_signature, corpus_pattern: str) -> tuple[np.ndarray, np.ndarray]:
  """(item ids [N], embeddings [N, d]) of every item of the corpus."""
  ids, embeddings = [], []
  for batch in example_files.record_batches(corpus_pattern):
    parsed = tf.io.parse_example(batch, {fnames.ITEM_ID: _EVENT_KEYS[fnames.ITEM_ID]})
    ids.append(_text(parsed[fnames.ITEM_ID].numpy()))
    embeddings.append(item_signature(examples=batch)[layout.EMBEDDING_OUTPUT].numpy())
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


def evaluate(model_dir: str, train_pattern: str, eval_pattern: str, corpus_pattern: str,
             config: configs.EvaluationConfig, baseline_dir: Optional[str] = None,
             teacher_dir: Optional[str] = None) -> dict:
  """Recall@K per scenario of the model and the baselines, and AUC per scenario.

  Returns {'ks', 'corpus_size', 'queries': {scenario: n}, 'recall': {'model',
  'popular', 'popular_per_scenario', 'previous_blessed' (None without a baseline model):
  {scenario: {k: recall}}}, 'auc': {'student', 'teacher' (with a teacher): {scenario:
  auc}}}.
  """
  k_max = max(config.recall_ks)
  events = read_events(eval_pattern)
  queries = eval_queries(events)
  train = read_events(train_pattern, keep_examples=False)
  overall, per_scenario = popularity_rankings(train, k_max)
  recall = {
      'popular': recall_at_k_per_scenario(
          [overall] * len(queries.clicked), queries.clicked, queries.scenario,
          config.recall_ks),
      'popular_per_scenario': recall_at_k_per_scenario(
          [per_scenario.get(s, []) for s in queries.scenario], queries.clicked,
          queries.scenario, config.recall_ks),
  }
  towers = load_towers(model_dir)
  item_ids, item_embeddings = corpus_embeddings(towers.item, corpus_pattern)
  recall['model'] = _model_recall(towers, queries, item_ids, item_embeddings, config)
  recall['previous_blessed'] = None
  if baseline_dir:
    base = load_towers(baseline_dir)
    base_ids, base_items = corpus_embeddings(base.item, corpus_pattern)
    recall['previous_blessed'] = _model_recall(base, queries, base_ids, base_items, config)
  auc = {'student': _student_auc(towers, events, item_ids, item_embeddings)}
  if teacher_dir:
    teacher = tf.saved_model.load(teacher_dir).signatures[
        layout.TEACHER_EXAMPLES_SIGNATURE]
    auc['teacher'] = _auc_per_scenario(events, embed(teacher, events.examples,
                                                     layout.LOGIT_OUTPUT))
  scenarios, counts = np.unique(queries.scenario, return_counts=True)
  return {'ks': list(config.recall_ks), 'corpus_size': int(len(item_ids)),
          'queries': {str(s): int(n) for s, n in zip(scenarios, counts)},
          'recall': recall, 'auc': auc}


def _model_recall(towers: Towers, queries: Queries, item_ids: np.ndarray,
                  item_embeddings: np.ndarray, config: configs.EvaluationConfig) -> dict:
  query_embeddings = embed(towers.user, queries.examples)
  top = exact_top_k(query_embeddings, item_embeddings, max(config.recall_ks))
  return recall_at_k_per_scenario([item_ids[row].tolist() for row in top],
                                  queries.clicked, queries.scenario, config.recall_ks)


def _student_auc(towers: Towers, events: Events, item_ids: np.ndarray,
                 item_embeddings: np.ndarray) -> dict:
  """AUC of <u, v> separating clicks from exposures without a click, per scenario."""
  users = embed(towers.user, events.examples)
  row = {item: i for i, item in enumerate(item_ids)}
  known = np.array([item in row for item in events.item_id])
  items = item_embeddings[[row.get(item, 0) for item in events.item_id]]
  scores = np.where(known, np.sum(users * items, axis=1), np.nan)
  return _auc_per_scenario(events, scores)


def _auc_per_scenario(events: Events, scores: np.ndarray) -> dict:
  result = {}
  for scenario in sorted(set(events.scenario.tolist())) + ['all']:
    mask = (np.ones(len(scores), bool) if scenario == 'all'
            else events.scenario == scenario) & np.isfinite(scores)
    labels = events.label[mask] > 0
    result[scenario] = (float(sk_metrics.roc_auc_score(labels, scores[mask]))
                        if 0 < labels.sum() < len(labels) else None)
  return result
