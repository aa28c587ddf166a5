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
import tensorflow as tf

from core import config as configs
from core import examples as example_files
from core import feature_names as fnames
from core import layout
from retrieval import bootstrap

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


def per_query_recall(ranked_items: Sequence[Sequence[str]], clicked: Sequence[set],
                     ks: Sequence[int]) -> dict[int, np.ndarray]:
  """{k: [Q] |top-k ∩ clicked| / |clicked| of each query}."""
  return {k: np.array([len(set(ranked[:k]) & truth) / len(truth)
                       for ranked, truth in zip(ranked_items, clicked)]) for k in ks}


def mean_per_scenario(per_query: dict[int, np.ndarray],
                      scenarios: Sequence[str]) -> dict[str, dict[str, float]]:
  """{scenario: {str(k): mean over its queries}}, with 'all' for every query together."""
  scenarios = np.asarray(scenarios)
  result = {}
  for scenario in sorted(set(scenarios.tolist())) + ['all']:
    mask = np.ones(len(scenarios), bool) if scenario == 'all' else scenarios == scenario
    result[scenario] = {str(k): float(values[mask].mean()) for k, values in per_query.items()}
  return result


def recall_at_k_per_scenario(ranked_items: Sequence[Sequence[str]],
                             clicked: Sequence[set], scenarios: Sequence[str],
                             ks: Sequence[int]) -> dict[str, dict[str, float]]:
  """Mean over queries of |top-K ∩ clicked| / |clicked|, per scenario and over all.

  Returns {scenario: {str(k): recall}}, with 'all' for every query together.
  """
  return mean_per_scenario(per_query_recall(ranked_items, clicked, ks), scenarios)


def popularity_rankings(train: Events, k: int) -> tuple[list[str], dict[str, list[str]]]:
  """Most-clicked items in training: overall, and per scenario (ties by item id)."""
  def top(mask):
    items, counts = np.unique(train.item_id[mask & (train.label > 0)], return_counts=True)
    order = sorted(range(len(items)), key=lambda i: (-counts[i], items[i]))
    return [str(items[i]) for i in order[:k]]
  overall = top(np.ones(len(train.item_id), bool))
  per_scenario = {s: top(train.scenario == s) for s in np.unique(train.scenario)}
  return overall, per_scenario


# The systems the Evaluator compares, in report order.
MODEL, POPULAR, POPULAR_PER_SCENARIO = 'model', 'popular', 'popular_per_scenario'
DIFFERENCE = f'{MODEL}_minus_{POPULAR_PER_SCENARIO}'  # what the blessing tests
# The blessed-model comparison's systems.
PREVIOUS = 'previous_blessed'
CHANGE = f'{MODEL}_minus_{PREVIOUS}'


def evaluate(model_dir: str, popularity_patterns: Sequence[str], queries_pattern: str,
             corpus_pattern: str, config: configs.EvaluationConfig,
             teacher_dir: Optional[str] = None, per_query: bool = False) -> dict:
  """Recall@K per scenario of the model and the popularity baselines, with intervals; AUC.

  Queries and ground truth come from `queries_pattern` (the test split); the popularity
  baselines count the clicks of `popularity_patterns` (every split before it); the corpus
  is `corpus_pattern` (items as of the test window's start).

  Returns {'ks', 'corpus_size', 'queries': {scenario: n}, 'recall': {system: {scenario:
  {k: recall}}}, 'intervals': {system or DIFFERENCE: {scenario: {k: bootstrap.Interval as
  JSON}}}, 'bootstrap', 'auc': {'student', 'teacher' (with a teacher): {scenario: auc}}};
  with `per_query`, also 'per_query': {'user_id': [Q], 'scenario': [Q], system: {k: [Q]
  numpy recall of each query}} (for paired comparisons of models across evaluations).
  """
  k_max = max(config.recall_ks)
  events = read_events(queries_pattern)
  queries = eval_queries(events)
  before = [read_events(p, keep_examples=False) for p in popularity_patterns]
  history = Events(*(np.concatenate([getattr(e, f.name) for e in before])
                     for f in dataclasses.fields(Events)))
  overall, per_scenario = popularity_rankings(history, k_max)
  towers = load_towers(model_dir)
  item_ids, item_embeddings = corpus_embeddings(towers.item, corpus_pattern)
  ranked = {
      MODEL: model_rankings(towers.user, queries, item_ids, item_embeddings, k_max),
      POPULAR: [overall] * len(queries.clicked),
      POPULAR_PER_SCENARIO: [per_scenario.get(s, []) for s in queries.scenario],
  }
  result = _with_intervals(ranked, queries, config, (MODEL, POPULAR_PER_SCENARIO))
  if per_query:
    result['per_query'] = {
        'user_id': queries.user_id, 'scenario': queries.scenario,
        **{name: per_query_recall(r, queries.clicked, config.recall_ks)
           for name, r in ranked.items()}}
  auc = {'student': _student_auc(towers, events, item_ids, item_embeddings)}
  if teacher_dir:
    teacher = tf.saved_model.load(teacher_dir).signatures[
        layout.TEACHER_EXAMPLES_SIGNATURE]
    auc['teacher'] = _auc_per_scenario(events, embed(teacher, events.examples,
                                                     layout.LOGIT_OUTPUT))
  return dict(result, corpus_size=int(len(item_ids)), auc=auc)


def compare(model_dir: str, baseline_dir: str, queries_pattern: str, corpus_pattern: str,
            config: configs.EvaluationConfig,
            baseline_corpus_pattern: Optional[str] = None) -> dict:
  """Recall@K per scenario of a model and a baseline model (the previous blessed one) on
  the same queries, with intervals of the paired difference (CHANGE). The baseline ranks
  `baseline_corpus_pattern` when given (the same model over items as of another time)."""
  queries = eval_queries(read_events(queries_pattern))
  ranked = {}
  for name, directory, corpus in (
      (MODEL, model_dir, corpus_pattern),
      (PREVIOUS, baseline_dir, baseline_corpus_pattern or corpus_pattern)):
    towers = load_towers(directory)
    item_ids, item_embeddings = corpus_embeddings(towers.item, corpus)
    ranked[name] = model_rankings(towers.user, queries, item_ids, item_embeddings,
                                  max(config.recall_ks))
  return _with_intervals(ranked, queries, config, (MODEL, PREVIOUS))


def _with_intervals(ranked: dict, queries: Queries, config: configs.EvaluationConfig,
                    difference: tuple[str, str]) -> dict:
  """Recall per scenario of each ranking, and bootstrap intervals of each and of the
  paired difference of the two named rankings."""
  per_query = {name: per_query_recall(r, queries.clicked, config.recall_ks)
               for name, r in ranked.items()}
  recall = {name: mean_per_scenario(values, queries.scenario)
            for name, values in per_query.items()}
  first, second = difference
  per_query[f'{first}_minus_{second}'] = {
      k: per_query[first][k] - per_query[second][k] for k in config.recall_ks}
  weights = bootstrap.poisson_weights(len(queries.clicked), config.bootstrap_resamples,
                                      config.bootstrap_seed)
  intervals = {}
  for name, values in per_query.items():
    by_k = {str(k): bootstrap.grouped_intervals(v, queries.scenario, weights,
                                                config.confidence)
            for k, v in values.items()}
    intervals[name] = {scenario: {k: by_k[k][scenario].to_json() for k in by_k}
                       for scenario in next(iter(by_k.values()))}
  scenarios, counts = np.unique(queries.scenario, return_counts=True)
  return {'ks': list(config.recall_ks),
          'queries': {str(s): int(n) for s, n in zip(scenarios, counts)},
          'recall': recall, 'intervals': intervals,
          'bootstrap': {'method': 'poisson', 'resamples': config.bootstrap_resamples,
                        'seed': config.bootstrap_seed, 'confidence': config.confidence}}


def model_rankings(user_signature, queries: Queries, item_ids: np.ndarray,
                   item_embeddings: np.ndarray, k: int) -> list[list[str]]:
  """The model's exact top-k item ids for each query, best first."""
  query_embeddings = embed(user_signature, queries.examples)
  top = exact_top_k(query_embeddings, item_embeddings, k)
  return [item_ids[row].tolist() for row in top]


def model_recall(user_signature, queries: Queries, item_ids: np.ndarray,
                 item_embeddings: np.ndarray, ks: Sequence[int]) -> dict:
  """Recall@K per scenario of a model over the full corpus: the Evaluator's and the
  Trainer's validation (early stopping) measure."""
  ranked = model_rankings(user_signature, queries, item_ids, item_embeddings, max(ks))
  return recall_at_k_per_scenario(ranked, queries.clicked, queries.scenario, ks)


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
  # Imported here: sklearn costs the serving CLI, which imports this module, ~0.5 s.
  from sklearn import metrics as sk_metrics  # pylint: disable=g-import-not-at-top
  result = {}
  for scenario in sorted(set(events.scenario.tolist())) + ['all']:
    mask = (np.ones(len(scores), bool) if scenario == 'all'
            else events.scenario == scenario) & np.isfinite(scores)
    labels = events.label[mask] > 0
    result[scenario] = (float(sk_metrics.roc_auc_score(labels, scores[mask]))
                        if 0 < labels.sum() < len(labels) else None)
  return result
