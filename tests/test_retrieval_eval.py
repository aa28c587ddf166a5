"""Recall@K, exact top-K, popularity and the blessing rule, on hand-made numbers."""

import numpy as np
import pytest

from core import config as configs
from retrieval import blessing
from retrieval import evaluation as rev


def test_recall_at_k_per_scenario_by_hand():
  ranked = [['a', 'b', 'c'], ['c', 'd', 'a'], ['x', 'y', 'z']]
  clicked = [{'a', 'c'}, {'a', 'b', 'd', 'e'}, {'z'}]
  result = rev.recall_at_k_per_scenario(ranked, clicked, ['s1', 's1', 's2'], [1, 3])
  # query 1: @1 {a} -> 1/2, @3 {a,c} -> 2/2; query 2: @1 {} -> 0, @3 {a,d} -> 2/4;
  # query 3: @1 {} -> 0, @3 {z} -> 1.
  assert result['s1'] == {'1': pytest.approx(0.25), '3': pytest.approx(0.75)}
  assert result['s2'] == {'1': 0.0, '3': 1.0}
  assert result['all'] == {'1': pytest.approx(0.5 / 3), '3': pytest.approx(2.5 / 3)}


def test_exact_top_k_matches_numpy():
  rng = np.random.default_rng(0)
  queries, items = rng.normal(size=(7, 5)), rng.normal(size=(40, 5))
  top = rev.exact_top_k(queries.astype(np.float32), items.astype(np.float32), 6, chunk=3)
  expected = np.argsort(-(queries @ items.T), axis=1)[:, :6]
  np.testing.assert_array_equal(top, expected)
  assert rev.exact_top_k(queries, items[:4], 6).shape == (7, 4)  # k capped by the corpus


def _events(rows):
  user, scenario, item, label = zip(*rows)
  return rev.Events(np.array(user), np.array(scenario), np.array(item), np.array(label),
                    np.array([f'{u}/{s}/{i}'.encode() for u, s, i, _ in rows], object))


def test_eval_queries_group_clicks_by_user_and_scenario():
  events = _events([('u1', 's1', 'a', 1), ('u1', 's1', 'b', 0), ('u1', 's1', 'c', 1),
                    ('u1', 's2', 'a', 0), ('u2', 's1', 'a', 1)])
  queries = rev.eval_queries(events)
  assert list(zip(queries.user_id, queries.scenario)) == [('u1', 's1'), ('u2', 's1')]
  assert queries.clicked == [{'a', 'c'}, {'a'}]  # (u1, s2) has no click: no query
  assert list(queries.examples) == [b'u1/s1/a', b'u2/s1/a']


def test_popularity_rankings_overall_and_per_scenario():
  train = _events([('u', 's1', 'a', 1), ('u', 's1', 'a', 1), ('u', 's2', 'b', 1),
                   ('u', 's2', 'b', 1), ('u', 's2', 'b', 1), ('u', 's1', 'c', 1),
                   ('u', 's2', 'c', 0), ('u', 's2', 'd', 1)])
  overall, per_scenario = rev.popularity_rankings(train, 3)
  assert overall == ['b', 'a', 'c']  # c and d tie at 1 click: by id
  assert per_scenario == {'s1': ['a', 'c'], 's2': ['b', 'd']}  # unclicked c not counted


def _result(differences, gain_all):
  """An evaluate() result with the given difference intervals {scenario: (lower, upper)}."""
  interval = lambda lo, hi: {'point': (lo + hi) / 2, 'mean': (lo + hi) / 2, 'lower': lo,
                             'upper': hi}
  both_ks = lambda lo_hi: {'50': interval(*lo_hi), '100': interval(*lo_hi)}
  difference = {s: both_ks(v) for s, v in differences.items()}
  difference['all'] = both_ks(gain_all)
  return {'intervals': {'model_minus_popular_per_scenario': difference}}


def test_blessed_when_no_scenario_is_significantly_worse_and_overall_is_better():
  # Scenario b ties within noise (its interval straddles 0); overall is significantly up.
  ok, reasons = blessing.bless(_result({'a': (0.01, 0.05), 'b': (-0.04, 0.02)},
                                       gain_all=(0.005, 0.03)), configs.EvaluationConfig())
  assert ok and reasons == []


def test_refused_when_one_scenario_is_significantly_worse():
  ok, reasons = blessing.bless(_result({'a': (0.01, 0.05), 'b': (-0.09, -0.01)},
                                       gain_all=(0.005, 0.03)), configs.EvaluationConfig())
  assert not ok
  assert reasons == [
      'scenario b: recall@50 is significantly below per-scenario popularity: difference '
      '-0.0500 [-0.0900, -0.0100] lies below -0.0', 
      'scenario b: recall@100 is significantly below per-scenario popularity: difference '
      '-0.0500 [-0.0900, -0.0100] lies below -0.0']
  # A margin tolerates a loss up to its size.
  assert blessing.bless(_result({'a': (0.01, 0.05), 'b': (-0.09, -0.01)},
                                gain_all=(0.005, 0.03)),
                        configs.EvaluationConfig(worse_margin=0.02))[0]


def test_refused_when_overall_is_not_significantly_better():
  ok, reasons = blessing.bless(_result({'a': (0.0, 0.05)}, gain_all=(-0.001, 0.03)),
                               configs.EvaluationConfig())
  assert not ok and all('overall recall@' in r and 'not significantly above' in r
                        for r in reasons)
  assert not blessing.bless(_result({'a': (0.0, 0.05)}, gain_all=(0.005, 0.03)),
                            configs.EvaluationConfig(overall_min_gain=0.01))[0]


def test_a_significant_drop_against_the_blessed_model_is_a_regression_when_asked():
  """significant_drop_vs_blessed (a refresh): the paired interval's upper bound below
  -worse_margin on a scenario or overall; a point drop whose interval reaches 0 is not."""
  def interval(point, lower, upper):
    return {'point': point, 'lower': lower, 'upper': upper}
  comparison = {
      'recall': {'model': {'a': {'50': 0.30}}, 'previous_blessed': {'a': {'50': 0.40}}},
      'intervals': {rev.CHANGE: {
          'a': {'50': interval(-0.10, -0.15, -0.05)},
          'b': {'50': interval(-0.10, -0.30, +0.02)},
          'all': {'50': interval(-0.02, -0.03, -0.01)}}}}
  assert blessing.regressions(comparison, configs.EvaluationConfig()) == []
  reasons = blessing.regressions(comparison, configs.EvaluationConfig(
      significant_drop_vs_blessed=True))
  assert reasons == [
      "scenario a: recall@50 is significantly below the blessed model's: difference "
      '-0.1000 [-0.1500, -0.0500] lies below -0.0',
      "scenario all: recall@50 is significantly below the blessed model's: difference "
      '-0.0200 [-0.0300, -0.0100] lies below -0.0']
  # A margin the drops stay inside: no regression.
  assert blessing.regressions(comparison, configs.EvaluationConfig(
      significant_drop_vs_blessed=True, worse_margin=0.05)) == []


def test_regression_against_the_blessed_model():
  comparison = {'recall': {'model': {'a': {'50': 0.30}, 'all': {'50': 0.30}},
                           'previous_blessed': {'a': {'50': 0.40}, 'all': {'50': 0.40}}}}
  assert blessing.regressions(comparison, configs.EvaluationConfig()) == []  # unchecked
  assert blessing.regressions(comparison, configs.EvaluationConfig(
      max_drop_vs_blessed=0.05)) == [
          "scenario a: recall@50 0.3000 falls more than 0.05 below the blessed model's "
          '0.4000']
  assert not blessing.regressions(comparison,
                                  configs.EvaluationConfig(max_drop_vs_blessed=0.2))
  assert not blessing.regressions({}, configs.EvaluationConfig(max_drop_vs_blessed=0.05))
