"""AUC and GAUC in numpy, by ranks (Mann-Whitney), with example weights.

    AUC  = sum_{i pos, j neg} w_i w_j ([s_i > s_j] + [s_i = s_j] / 2) / (W_pos W_neg)

the probability that a random positive scores above a random negative, ties counting one
half; with weights, the area under the weighted ROC curve (as sklearn's roc_auc_score
with sample_weight). It is computed from the scores sorted once: for each group of tied
scores, its positive weight times (the negative weight below the group + half the
group's own negative weight).

    GAUC = sum_u n_u AUC_u / sum_u n_u

over the users u having both a positive and a negative, where n_u is the user's number
of examples (the sum of its examples' weights): the impressions-weighted GAUC (Zhou et
al., Deep Interest Network, 2018). Users with one class have no AUC and are left out.

The `_sorted` helpers take the order once and accept a matrix of weights [R, n] (one row
per bootstrap resample), so the evaluation resamples without sorting again.
"""

from typing import Optional

import numpy as np


def _as_arrays(labels, scores, weights):
  labels = np.asarray(labels).reshape(-1) > 0
  scores = np.asarray(scores, np.float64).reshape(-1)
  if len(labels) != len(scores):
    raise ValueError(f'{len(labels)} labels but {len(scores)} scores')
  if not np.isfinite(scores).all():
    raise ValueError('scores must be finite')
  if weights is None:
    weights = np.ones(len(scores))
  weights = np.asarray(weights, np.float64)
  if weights.shape[-1] != len(scores):
    raise ValueError(f'{weights.shape[-1]} weights but {len(scores)} scores')
  return labels, scores, weights


class SortedScores:
  """One set of scores sorted once (optionally within groups), for AUCs under many
  weightings: `order` sorts the examples by (group, score); tie runs are runs of equal
  (group, score). Needs at least one example."""

  def __init__(self, scores: np.ndarray, groups: Optional[np.ndarray] = None):
    scores = np.asarray(scores, np.float64).reshape(-1)
    if groups is None:
      groups = np.zeros(len(scores), np.int64)
    groups = np.asarray(groups).reshape(-1)
    self.order = np.lexsort((scores, groups))
    s, g = scores[self.order], groups[self.order]
    new_tie = np.ones(len(s), bool)
    new_tie[1:] = (s[1:] != s[:-1]) | (g[1:] != g[:-1])
    self.tie_starts = np.flatnonzero(new_tie)
    new_group = np.ones(len(s), bool)
    new_group[1:] = g[1:] != g[:-1]
    # The group of each tie run, as 0..G-1, and where each group's runs start.
    self.run_group = np.cumsum(new_group)[self.tie_starts] - 1
    self.num_groups = int(new_group.sum())
    self.group_first_run = np.searchsorted(self.run_group, np.arange(self.num_groups))

  def auc_parts(self, labels: np.ndarray, weights: np.ndarray, presorted: bool = False
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(numerator, positive weight, negative weight) per group: [..., G] each, for
    weights [n] or [R, n] (with `presorted`, already in `order`); AUC = numerator /
    (positive * negative)."""
    labels = labels[self.order]
    w = weights if presorted else weights[..., self.order]
    pos = np.where(labels, w, 0.0)
    neg = w - pos
    pos_run = np.add.reduceat(pos, self.tie_starts, axis=-1)
    neg_run = np.add.reduceat(neg, self.tie_starts, axis=-1)
    # Negative weight below each run within its group: the cumulative sum over the runs
    # before it, less that sum where its group starts.
    before = np.cumsum(neg_run, axis=-1) - neg_run
    below = before - np.take(before, self.group_first_run, axis=-1)[..., self.run_group]
    per_group = lambda v: np.add.reduceat(v, self.group_first_run, axis=-1)
    return (per_group(pos_run * (below + 0.5 * neg_run)), per_group(pos_run),
            per_group(neg_run))


def auc_from_parts(numerator, pos, neg) -> np.ndarray:
  """AUC from SortedScores.auc_parts; NaN where a class weighs nothing."""
  with np.errstate(invalid='ignore', divide='ignore'):
    return np.where((pos > 0) & (neg > 0), numerator / (pos * neg), np.nan)


def auc(labels, scores, weights=None) -> float:
  """The (weighted) AUC; NaN when the positives or the negatives weigh nothing."""
  labels, scores, weights = _as_arrays(labels, scores, weights)
  if not len(scores):
    return float('nan')
  numerator, pos, neg = SortedScores(scores).auc_parts(labels, weights)
  return float(auc_from_parts(numerator, pos, neg)[0])


def per_user_auc(labels, scores, users, weights=None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(users [U] sorted, AUC of each [U] (NaN with one class), examples' weight of each
  [U])."""
  labels, scores, weights = _as_arrays(labels, scores, weights)
  users = np.asarray(users).reshape(-1)
  if len(users) != len(scores):
    raise ValueError(f'{len(users)} users but {len(scores)} scores')
  if not len(scores):
    return users[:0], np.zeros(0), np.zeros(0)
  keys, index = np.unique(users, return_inverse=True)
  numerator, pos, neg = SortedScores(scores, index).auc_parts(labels, weights)
  return keys, auc_from_parts(numerator, pos, neg), pos + neg


def gauc(labels, scores, users, weights=None) -> tuple[float, int]:
  """(GAUC, the number of users it averages): the mean of the users' AUCs over the users
  with both classes, each weighted by its number of examples (the sum of its examples'
  weights); NaN and 0 when no user has both classes."""
  _, aucs, examples = per_user_auc(labels, scores, users, weights)
  counted = np.isfinite(aucs)
  if not counted.any():
    return float('nan'), 0
  return (float(np.sum(aucs[counted] * examples[counted]) / np.sum(examples[counted])),
          int(counted.sum()))
