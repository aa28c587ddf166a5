"""Offline ranking evaluation: AUC and GAUC per scenario and task of several systems, with
Poisson-bootstrap intervals resampling users, and paired differences against a reference.

Every system scores the same exposures (N examples, T tasks). Per scenario (and 'all')
and task:

- AUC over the scenario's exposures (metrics.auc) and GAUC over its users (metrics.gauc:
  each user's AUC within the scenario, weighted by the user's exposures there);
- intervals by the Poisson bootstrap as TFMA does it (retrieval/bootstrap.py), but with
  users as the resampled unit, since a user's exposures are not independent: each
  resample gives every user one Poisson(1) weight w_u, shared by every system, scenario
  and task. A resample's AUC weighs each exposure by its user's w_u; its GAUC weighs each
  user's AUC (unchanged: a constant weight within a user cancels) by w_u * n_u. A
  resample whose scenario has no positive or no negative weight (or no user with both
  classes, for GAUC) is left out of that interval;
- the difference of each system minus the reference on the same resamples (paired), with
  its interval: an interval above 0 says the system ranks better than the reference.

`popularity_scores` gives the baseline system: each item's training positive rate per
task, smoothed toward the task's overall rate. `evaluate_exported` runs the whole
evaluation of an exported ranker on raw tf.Examples (the RankingEvaluator's).
"""

import os
from typing import Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from core import config as configs
from core import examples as example_files
from core import layout
from ranking import exposures
from ranking import metrics
from retrieval import bootstrap

ALL = 'all'  # every scenario together
POPULARITY = 'popularity'  # the popularity baseline's system name (popularity_scores)
RANKER = 'ranker'  # evaluate_exported's system names: the evaluated ranker,
PREVIOUS = 'previous_blessed'  # the previous blessed ranker
# Resampled weights per chunk (resamples x examples): bounds the weight matrices in memory.
_CHUNK_ELEMENTS = 4_000_000


def popularity_scores(train_items, train_labels, items, prior_strength: float = 10.0
                      ) -> np.ndarray:
  """[N, T] each item's positive rate per task in training, smoothed toward the task's
  overall rate p_t with `prior_strength` m pseudo-exposures: (pos + m p_t) / (n + m);
  an item training never showed gets p_t.

  `train_items` [M] and `train_labels` [M, T] (0/1) are the training exposures; `items`
  [N] the items to score, with the same id type as `train_items`.
  """
  train_items = np.asarray(train_items).reshape(-1)
  train_labels = np.asarray(train_labels, np.float64)
  if train_labels.ndim == 1:
    train_labels = train_labels[:, None]
  if not len(train_items) or len(train_items) != len(train_labels):
    raise ValueError(f'{len(train_items)} training items and {len(train_labels)} label '
                     f'rows: need as many, and at least one')
  if prior_strength < 0:
    raise ValueError(f'prior_strength must be >= 0, not {prior_strength}')
  overall = train_labels.mean(axis=0)
  keys, index = np.unique(train_items, return_inverse=True)
  shown = np.bincount(index, minlength=len(keys)).astype(np.float64)
  positives = np.stack([np.bincount(index, train_labels[:, t], minlength=len(keys))
                        for t in range(train_labels.shape[1])], axis=1)
  rates = (positives + prior_strength * overall) / (shown[:, None] + prior_strength)
  items = np.asarray(items).reshape(-1)
  where = np.minimum(np.searchsorted(keys, items), len(keys) - 1)
  known = keys[where] == items
  return np.where(known[:, None], rates[where], overall[None, :])


def evaluate_exported(ranker_dir: str, history_patterns: Sequence[str], test_pattern: str,
                      config: configs.RankingEvaluationConfig,
                      previous_dir: Optional[str] = None) -> dict:
  """`evaluate` of the exported ranker in `ranker_dir` (and of `previous_dir`'s, the
  previous blessed ranker, when given) on the test window's raw exposures, against
  popularity over the `history_patterns` windows (those before the test window).

  A previous ranker of other tasks, or one that cannot read this run's examples (other
  raw features), is left out and result['previous_blessed_note'] says why: a change of
  the tasks or features must not stop every later evaluation."""
  model = exposures.ExportedRanker(ranker_dir)
  tasks = model.tasks
  records = example_files.sorted_records(test_pattern)
  test = exposures.read(test_pattern, tasks, records)
  history = [exposures.read(p, tasks) for p in history_patterns]
  scores = {RANKER: model(records), POPULARITY: popularity_scores(
      np.concatenate([h.items for h in history]),
      np.concatenate([h.labels for h in history]), test.items, config.popularity_prior)}
  previous_note = None
  if previous_dir and not tf.io.gfile.exists(
      os.path.join(previous_dir, layout.RANKER_TASKS_FILE)):
    # A resolver that hands over another kind of model (a spec compiled without
    # pipeline/kubeflow_v2_runner.query_declared_types queries the retrieval model's types)
    # is said so, not compared.
    previous_note = (f'the previous blessed model in {previous_dir} is not a ranker export '
                     f'(no {layout.RANKER_TASKS_FILE}): not compared')
  elif previous_dir:
    before = exposures.ExportedRanker(previous_dir)
    if before.tasks != tasks:
      previous_note = (f'the previous blessed ranker in {previous_dir} predicts the tasks '
                       f'{list(before.tasks)}, this one {list(tasks)}: not compared')
    else:
      try:
        scores[PREVIOUS] = before(records)
      except (tf.errors.InvalidArgumentError, ValueError) as e:  # other raw features
        previous_note = (f'the previous blessed ranker in {previous_dir} cannot score this '
                         f'run\'s examples ({str(e).splitlines()[0][:200]}): not compared')
  result = evaluate(scores, test.labels, test.scenarios, test.users, tasks,
                    config.confidence, config.bootstrap_resamples, config.bootstrap_seed)
  result['previous_blessed_note'] = previous_note
  return result


def evaluate(scores: Mapping[str, np.ndarray], labels: np.ndarray, scenarios: Sequence[str],
             users: Sequence, tasks: Sequence[str], confidence: float = 0.95,
             resamples: int = 200, seed: int = 0,
             reference: Optional[str] = POPULARITY) -> dict:
  """AUC and GAUC per (system, scenario, task), intervals, differences vs `reference`.

  `scores`: {system: [N, T] scores}; `labels`: [N, T] 0/1; `scenarios`: [N] raw scenario
  values; `users`: [N] user ids (any hashable id type numpy sorts); `tasks`: the T task
  names in column order. `reference` None: no differences.

  Returns (JSON-ready) {
    'tasks', 'systems', 'reference',
    'counts': {scenario: {'examples', 'users', 'positives': {task: n},
                          'gauc_users': {task: users with both classes}}},
    'metrics': {system: {scenario: {task: {'auc': interval, 'gauc': interval}}}},
    'differences': {f'{system}_minus_{reference}': {scenario: {task: {'auc', 'gauc'}}}},
    'bootstrap': {'method', 'unit', 'resamples', 'seed', 'confidence'}},
  an interval being bootstrap.Interval as JSON ({'point', 'mean', 'lower', 'upper'}),
  None when the metric is undefined (a class missing), with None bounds when fewer than
  two resamples define it. Scenarios are sorted, then 'all'.
  """
  tasks = list(tasks)
  labels = np.asarray(labels)
  if labels.ndim == 1:
    labels = labels[:, None]
  n, t = labels.shape
  if t != len(tasks):
    raise ValueError(f'{t} label columns but {len(tasks)} tasks')
  systems = list(scores)
  if not systems:
    raise ValueError('evaluate needs the scores of at least one system')
  score_arrays = {}
  for name in systems:
    value = np.asarray(scores[name], np.float64)
    value = value[:, None] if value.ndim == 1 else value
    if value.shape != (n, t):
      raise ValueError(f'scores of {name!r} have shape {value.shape}, labels {(n, t)}')
    score_arrays[name] = value
  if reference is not None and reference not in score_arrays:
    raise ValueError(f'the reference system {reference!r} is not among {systems}')
  scenarios = np.asarray(scenarios).reshape(-1)
  users = np.asarray(users).reshape(-1)
  if len(scenarios) != n or len(users) != n:
    raise ValueError(f'{n} examples but {len(scenarios)} scenarios and {len(users)} users')
  labels = labels > 0
  user_keys, user_index = np.unique(users, return_inverse=True)
  weights = bootstrap.poisson_weights(len(user_keys), resamples, seed)

  interval = lambda samples, point: _interval(samples, point, confidence)
  others = [s for s in systems if reference is not None and s != reference]
  result = {'tasks': tasks, 'systems': systems, 'reference': reference, 'counts': {},
            'metrics': {s: {} for s in systems},
            'differences': {f'{s}_minus_{reference}': {} for s in others},
            'bootstrap': {'method': 'poisson', 'unit': 'user', 'resamples': resamples,
                          'seed': seed, 'confidence': confidence}}
  for scenario in sorted(set(scenarios.tolist())) + [ALL]:
    rows = (np.arange(n) if scenario == ALL else np.flatnonzero(scenarios == scenario))
    local_users, local_index = np.unique(user_index[rows], return_inverse=True)
    user_weights = weights[:, local_users].astype(np.float64)  # [R, U_s]
    counts = {'examples': int(len(rows)), 'users': int(len(local_users)),
              'positives': {}, 'gauc_users': {}}
    per_system = {s: {} for s in systems}
    for j, task in enumerate(tasks):
      y = labels[rows, j]
      counts['positives'][task] = int(y.sum())
      samples, points = {}, {}
      for system in systems:
        s = score_arrays[system][rows, j]
        points[system], samples[system] = _auc_and_gauc(y, s, local_index, user_weights)
      counts['gauc_users'][task] = points[systems[0]]['gauc_users']
      for system in systems:
        per_system[system][task] = {
            m: interval(samples[system][m], points[system][m]) for m in ('auc', 'gauc')}
      for system in others:
        result['differences'][f'{system}_minus_{reference}'].setdefault(scenario, {})[
            task] = {m: interval(samples[system][m] - samples[reference][m],
                                 points[system][m] - points[reference][m])
                     for m in ('auc', 'gauc')}
    result['counts'][scenario] = counts
    for system in systems:
      result['metrics'][system][scenario] = per_system[system]
  return result


def _auc_and_gauc(labels: np.ndarray, scores: np.ndarray, user_index: np.ndarray,
                  user_weights: np.ndarray) -> tuple[dict, dict]:
  """({'auc', 'gauc', 'gauc_users'} on the data as is, {'auc': [R], 'gauc': [R]} on the
  resamples, NaN where a resample leaves the metric undefined). `user_index` [n]: each
  example's user, 0..U-1; `user_weights` [R, U]: each resample's weight of each user."""
  overall = metrics.SortedScores(scores)
  auc_point = metrics.auc_from_parts(
      *overall.auc_parts(labels, np.ones(len(scores))))[0]
  auc_samples = []
  chunk = max(1, _CHUNK_ELEMENTS // max(len(scores), 1))
  sorted_users = user_index[overall.order]
  for start in range(0, len(user_weights), chunk):
    parts = overall.auc_parts(labels, user_weights[start:start + chunk][:, sorted_users],
                              presorted=True)
    auc_samples.append(metrics.auc_from_parts(*parts)[:, 0])
  auc_samples = np.concatenate(auc_samples) if auc_samples else np.zeros(0)

  # GAUC: per-user AUCs once; a resample only reweighs the users.
  numerator, pos, neg = metrics.SortedScores(scores, user_index).auc_parts(
      labels, np.ones(len(scores)))
  user_auc = metrics.auc_from_parts(numerator, pos, neg)
  counted = np.isfinite(user_auc)
  examples = (pos + neg)[counted]
  gauc_point = (float(np.sum(user_auc[counted] * examples) / examples.sum())
                if counted.any() else np.nan)
  reweighed = user_weights[:, counted] * examples  # [R, users counted]
  total = reweighed.sum(axis=1)
  with np.errstate(invalid='ignore', divide='ignore'):
    gauc_samples = np.where(total > 0, reweighed @ user_auc[counted] / total, np.nan)
  return ({'auc': float(auc_point), 'gauc': gauc_point, 'gauc_users': int(counted.sum())},
          {'auc': auc_samples, 'gauc': gauc_samples})


def _interval(samples: np.ndarray, point: float, confidence: float) -> Optional[dict]:
  if not np.isfinite(point):
    return None
  samples = samples[np.isfinite(samples)]
  if len(samples) < 2:
    return {'point': float(point), 'mean': None, 'lower': None, 'upper': None}
  return bootstrap.t_interval(samples, point, confidence).to_json()
