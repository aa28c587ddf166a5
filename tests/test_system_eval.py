"""The two-stage evaluation's metrics (ranking/system.py) and the blend
(ranking/candidates.py), against numbers worked out by hand."""

import math

import numpy as np
import pytest

from core import config as configs
from ranking import candidates
from ranking import system


def test_ndcg_by_hand():
  ranked = [['a', 'b', 'c', 'd'], ['x', 'y'], ['p', 'q']]
  truth = [{'b', 'd', 'z'}, {'x'}, {'r'}]
  result = system.ndcg(ranked, truth, (1, 2, 4))
  # Query 0: hits at ranks 2 and 4; ideal: 3 hits at ranks 1, 2, 3 (capped by k).
  idcg4 = 1 + 1 / math.log2(3) + 1 / math.log2(4)
  assert result[4][0] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / idcg4)
  assert result[2][0] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
  assert result[1][0] == 0.0
  assert [result[k][1] for k in (1, 2, 4)] == [1.0, 1.0, 1.0]  # the one hit first
  assert [result[k][2] for k in (1, 2, 4)] == [0.0, 0.0, 0.0]


def test_draw_queries_caps_each_scenario_and_is_seeded():
  scenarios = np.array(['a'] * 10 + ['b'] * 3 + ['c'] * 7)
  drawn = system.draw_queries(scenarios, 5, seed=0)
  assert list(np.unique(scenarios[drawn], return_counts=True)[1]) == [5, 3, 5]
  assert list(drawn) == sorted(drawn)
  assert set(range(10, 13)) <= set(drawn.tolist())  # 'b' has fewer: all kept
  assert np.array_equal(drawn, system.draw_queries(scenarios, 5, seed=0))
  assert not np.array_equal(drawn, system.draw_queries(scenarios, 5, seed=1))


def test_blend_and_rerank_keep_ties_in_retrieval_order():
  p = np.array([[0.2, 0.9], [0.5, 0.1], [0.4, 0.3], [0.5, 0.1]], np.float32)
  columns = candidates.with_retrieval(p, np.array([2.0, 1.0, -1.0, 1.0]))
  w = candidates.weight_vector({'like': 1.0, 'click': 0.5, 'retrieval': 0.1},
                               ('click', 'like'))
  assert w.tolist() == pytest.approx([0.5, 1.0, 0.1])
  # 0.5 * click + like + 0.1 * logit
  np.testing.assert_allclose(candidates.blend(columns, w), [1.2, 0.45, 0.4, 0.45],
                             rtol=1e-6)
  assert candidates.rerank(columns, w).tolist() == [0, 1, 3, 2]


def test_recommend_config_blend_and_errors():
  tasks = ('click', 'long_view', 'like')
  assert configs.RecommendConfig().scenario_blend(tasks) == {
      'default': {'click': 1.0, 'long_view': 0.0, 'like': 0.0, 'retrieval': 1.0}}
  config = configs.load_config(overrides=[
      'recommend.weights={click: 1, like: 2}', 'recommend.retrieval_weight=0.5',
      'recommend.scenario_weights={"4": {long_view: 3, retrieval: 0}}']).recommend
  assert config.scenario_blend(tasks) == {
      'default': {'click': 1.0, 'long_view': 0.0, 'like': 2.0, 'retrieval': 0.5},
      '4': {'click': 0.0, 'long_view': 3.0, 'like': 0.0, 'retrieval': 0.0}}
  with pytest.raises(configs.ConfigError, match="a task named 'retrieval'"):
    config.scenario_blend(('click', 'retrieval'))
  with pytest.raises(configs.ConfigError, match=r'recommend.weights.share: not a task'):
    configs.load_config(overrides=['recommend.weights={share: 1}']).recommend.scenario_blend(
        tasks)
  for override, message in (('recommend.weights={click: 11}', 'recommend.weights.click'),
                            ('recommend.weights={click: 0}', 'at least one task'),
                            ('recommend.candidates=20', 'evaluation_ks'),
                            ('recommend.retrieval_weight=-1', 'recommend.retrieval_weight'),
                            ('recommend.weights=[1]', 'recommend.weights must be a mapping')):
    with pytest.raises(configs.ConfigError, match=message):
      configs.load_config(overrides=[override])
