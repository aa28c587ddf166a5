"""The fitted per-scenario popularity weight tau_s (beyond the paper): post-hoc logit
adjustment (Menon et al. 2021, "Long-tail learning via logit adjustment") fitted on the
validation window.

For a query of scenario s the served score of item i is

    score(u, i) = <u, v_i> + tau_s * c_s(i),     c_s(i) = log(1 + clicks of i in s)

(models/layers/scenario_popularity_prior.py adds tau_s inside the dot product, so the
index and the release score the same way). `fit` chooses, per scenario, the tau_s of a
grid that maximises the validation queries' Recall@K over the full corpus (ties: the
smaller tau, the model as trained). tau_s = 0 is the model alone; a large tau_s ranks the
scenario's popular items first and the model orders within equal counts, which is
per-scenario popularity with a tie-break. A grid, not a gradient: recall is a step
function of tau, and 13 exact top-K passes over a few thousand queries take seconds.
"""

from typing import NamedTuple, Sequence

import numpy as np
import tensorflow as tf


class Fit(NamedTuple):
  weights: dict  # {scenario: tau_s}
  recall: dict  # {scenario or 'all': {str(k): Recall@k with the fitted tau}}
  grid_recall: dict  # {scenario: {str(tau): Recall@fit_k}}: the curve it chose from


def fit(query_embeddings: np.ndarray, query_scenarios: np.ndarray, clicked: Sequence[set],
        item_ids: np.ndarray, item_embeddings: np.ndarray, popularity_columns: Sequence[int],
        scenarios: Sequence[str], grid: Sequence[float], ks: Sequence[int],
        fit_k: int) -> Fit:
  """Fits tau_s per scenario on queries.

  Args:
    query_embeddings: [Q, D] user embeddings with tau = 0.
    query_scenarios: [Q] each query's scenario.
    clicked: [Q] each query's clicked item ids.
    item_ids, item_embeddings: the corpus [N], [N, D].
    popularity_columns: [S] the column of the item embeddings holding c_s(i) per scenario
      (scenario index order, `scenarios`).
    grid: the candidate values of tau.
    ks: the K of the recall it reports; fit_k: the K it maximises.
  """
  grid = sorted(float(t) for t in grid)
  row = {item: i for i, item in enumerate(item_ids.tolist())}
  truth = [np.array([row[i] for i in items if i in row], np.int64) for items in clicked]
  sizes = np.array([len(items) for items in clicked], np.float64)
  k_max = min(max(max(ks), fit_k), len(item_ids))
  items_t = tf.constant(item_embeddings.T.astype(np.float32))
  weights = {scenario: 0.0 for scenario in scenarios}
  grid_recall, per_query = {}, {k: np.zeros(len(truth)) for k in ks}
  query_scenarios = np.asarray(query_scenarios)
  for scenario in sorted(set(query_scenarios.tolist())):
    mask = np.flatnonzero(query_scenarios == scenario)
    known = scenario in weights  # a scenario outside the mapping has tau 0
    candidates = grid if known else [0.0]
    base = tf.matmul(tf.constant(query_embeddings[mask].astype(np.float32)), items_t)
    popularity = tf.constant(item_embeddings[:, popularity_columns[
        list(scenarios).index(scenario)]].astype(np.float32)) if known else 0.0
    curves = []
    for tau in candidates:
      top = tf.math.top_k(base + tau * popularity, k=k_max).indices.numpy()
      curves.append({k: _recall(top[:, :k], [truth[q] for q in mask], sizes[mask])
                     for k in set(ks) | {fit_k}})
    best = max(range(len(candidates)),
               key=lambda j: (curves[j][fit_k].mean(), -candidates[j]))
    if known:
      weights[scenario] = candidates[best]
      grid_recall[scenario] = {str(tau): float(c[fit_k].mean())
                               for tau, c in zip(candidates, curves)}
    for k in ks:
      per_query[k][mask] = curves[best][k]
  recall = {}
  for scenario in sorted(set(query_scenarios.tolist())) + ['all']:
    mask = np.ones(len(truth), bool) if scenario == 'all' else query_scenarios == scenario
    recall[scenario] = {str(k): float(per_query[k][mask].mean()) for k in ks}
  return Fit(weights, recall, grid_recall)


def _recall(top: np.ndarray, truth: Sequence[np.ndarray], sizes: np.ndarray) -> np.ndarray:
  """[Q] |top-k ∩ clicked| / |clicked| (clicked items outside the corpus count as misses)."""
  return np.array([np.isin(t, ranked).sum() for ranked, t in zip(top, truth)]) / sizes
