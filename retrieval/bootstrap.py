"""Confidence intervals of per-query metrics by the Poisson bootstrap, as TFMA computes them.

TFMA (tensorflow_model_analysis/evaluators/poisson_bootstrap.py and utils/math_util.py)
resamples each example with a Poisson(1) weight, computes the metric on every resample,
and reports the t interval

    mean(samples) +- t_{(1 + confidence) / 2, R - 1} * std(samples, ddof=1)

over R resamples. TFMA runs it inside its Beam evaluation over extracts; the metrics here
(Recall@K per query, over an exact top-K the Evaluator already computed) are numpy arrays,
so this module applies the same method to them directly instead of re-expressing the
evaluation as TFMA metrics. One weight matrix is drawn per evaluation and shared by every
system and scenario: differences between systems are paired (same resampled queries), and
the overall figure weights every query alike.
"""

import dataclasses
from typing import Sequence

import numpy as np
from scipy import stats


@dataclasses.dataclass(frozen=True)
class Interval:
  point: float  # the metric on the queries as they are
  mean: float  # the mean over resamples (TFMA's center)
  lower: float
  upper: float

  def to_json(self) -> dict:
    return dataclasses.asdict(self)


def poisson_weights(num_queries: int, resamples: int, seed: int) -> np.ndarray:
  """[resamples, num_queries] independent Poisson(1) weights (seeded)."""
  return np.random.default_rng(seed).poisson(1.0, size=(resamples, num_queries)).astype(
      np.float32)


def t_interval(samples: np.ndarray, point: float, confidence: float) -> Interval:
  """TFMA's t interval of resampled values (math_util.calculate_confidence_interval)."""
  samples = np.asarray(samples, np.float64)
  mean = float(samples.mean())
  std_error = float(samples.std(ddof=1))
  t = float(stats.t.ppf(1 - (1 - confidence) / 2, len(samples) - 1))
  return Interval(float(point), mean, mean - t * std_error, mean + t * std_error)


def grouped_intervals(values: np.ndarray, groups: Sequence[str], weights: np.ndarray,
                      confidence: float) -> dict[str, Interval]:
  """Intervals of the mean of per-query `values` within each group and over all ('all').

  Each resample's mean is sum(w * v) / sum(w) over the group's queries; a resample that
  drew none of a group's queries (possible for tiny groups) is left out of that group.
  """
  values = np.asarray(values, np.float64)
  groups = np.asarray(groups)
  result = {}
  for group in sorted(set(groups.tolist())) + ['all']:
    mask = np.ones(len(values), bool) if group == 'all' else groups == group
    w = weights[:, mask].astype(np.float64)
    total = w.sum(axis=1)
    drawn = total > 0
    samples = (w[drawn] @ values[mask]) / total[drawn]
    result[group] = t_interval(samples, values[mask].mean(), confidence)
  return result
