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


def _recall(model, popular, previous=None):
  to = lambda values: {s: {'50': v, '100': v} for s, v in values.items()}
  return {'model': to(model), 'popular_per_scenario': to(popular),
          'previous_blessed': to(previous) if previous else None}


def test_blessed_when_beating_popularity_on_every_scenario():
  ok, reasons = blessing.bless(_recall({'a': 0.3, 'b': 0.2, 'all': 0.1},
                                       {'a': 0.2, 'b': 0.1, 'all': 0.9}),
                               configs.EvaluationConfig())
  assert ok and reasons == []  # 'all' is not a scenario


def test_not_blessed_when_one_scenario_loses_or_ties():
  ok, reasons = blessing.bless(_recall({'a': 0.3, 'b': 0.1}, {'a': 0.2, 'b': 0.1}),
                               configs.EvaluationConfig())
  assert not ok
  assert reasons == [
      'scenario b: recall@50 0.1000 does not beat per-scenario popularity 0.1000 by more '
      'than 0.0',
      'scenario b: recall@100 0.1000 does not beat per-scenario popularity 0.1000 by more '
      'than 0.0']


def test_margin_and_regression_against_the_blessed_model():
  recall = _recall({'a': 0.30}, {'a': 0.25}, previous={'a': 0.40})
  assert blessing.bless(recall, configs.EvaluationConfig())[0]
  assert not blessing.bless(recall, configs.EvaluationConfig(bless_margin=0.1))[0]
  ok, reasons = blessing.bless(recall, configs.EvaluationConfig(max_drop_vs_blessed=0.05))
  assert not ok and 'below the blessed model' in reasons[0]
  assert blessing.bless(recall, configs.EvaluationConfig(max_drop_vs_blessed=0.2))[0]
