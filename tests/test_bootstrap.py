"""Bootstrap intervals (TFMA's Poisson bootstrap and t interval), against hand-computed
cases."""

import numpy as np
import pytest

from retrieval import bootstrap


def test_t_interval_by_hand():
  # Samples 1, 2, 3, 6: mean 3, std (ddof 1) sqrt((4 + 1 + 0 + 9) / 3) = 2.1602469;
  # t_{0.975, 3} = 3.1824463 -> 3 -+ 6.8748 ...
  interval = bootstrap.t_interval(np.array([1.0, 2.0, 3.0, 6.0]), point=2.5,
                                  confidence=0.95)
  half = 3.1824463 * 2.1602469
  assert interval.point == 2.5 and interval.mean == pytest.approx(3.0)
  assert (interval.lower, interval.upper) == pytest.approx((3.0 - half, 3.0 + half))


def test_grouped_intervals_resample_queries_with_their_weights_by_hand():
  values = np.array([1.0, 0.0, 0.5, 0.5])  # per query, e.g. recall differences
  groups = np.array(['a', 'a', 'b', 'b'])
  weights = np.array([[1, 1, 1, 1],
                      [2, 0, 1, 0],
                      [0, 1, 0, 2]], np.float32)  # three resamples
  intervals = bootstrap.grouped_intervals(values, groups, weights, confidence=0.9)
  # Group a: resample means (1 + 0) / 2, 2 / 2, 0 / 1 = 0.5, 1, 0.
  samples = np.array([0.5, 1.0, 0.0])
  half = 2.9199856 * samples.std(ddof=1)  # t_{0.95, 2}
  a = intervals['a']
  assert a.point == 0.5 and a.mean == pytest.approx(0.5)
  assert (a.lower, a.upper) == pytest.approx((0.5 - half, 0.5 + half))
  # Group b has no spread; 'all' weights every query alike: 2/4, 2.5/3, 1/3.
  assert (intervals['b'].lower, intervals['b'].upper) == pytest.approx((0.5, 0.5))
  samples = np.array([0.5, 2.5 / 3, 1 / 3])
  assert intervals['all'].mean == pytest.approx(samples.mean())
  assert intervals['all'].upper - intervals['all'].lower == pytest.approx(
      2 * 2.9199856 * samples.std(ddof=1))


def test_poisson_weights_are_seeded_and_mean_one():
  first = bootstrap.poisson_weights(5000, 200, seed=3)
  assert np.array_equal(first, bootstrap.poisson_weights(5000, 200, seed=3))
  assert not np.array_equal(first, bootstrap.poisson_weights(5000, 200, seed=4))
  assert first.mean() == pytest.approx(1.0, abs=0.01)


def test_a_difference_within_noise_straddles_zero_and_a_real_one_does_not():
  rng = np.random.default_rng(0)
  weights = bootstrap.poisson_weights(400, 1000, seed=0)
  noise = rng.normal(0.0, 0.2, 400)
  groups = np.array(['s'] * 400)
  tie = bootstrap.grouped_intervals(noise - noise.mean(), groups, weights, 0.95)['s']
  assert tie.lower < 0 < tie.upper
  better = bootstrap.grouped_intervals(noise - noise.mean() + 0.1, groups, weights,
                                       0.95)['s']
  assert better.lower > 0
