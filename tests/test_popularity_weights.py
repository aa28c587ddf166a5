"""The fitted per-scenario popularity weight (retrieval/popularity_weights.py), on a case
small enough to rank by hand."""

import numpy as np
import pytest

from retrieval import popularity_weights

# Four items, embeddings [model score part (1 dim); c_a(i); c_b(i)]: the model alone ranks
# item 0 first for every query; item 3 is the most popular in scenario a, item 1 in b.
ITEMS = np.array(['i0', 'i1', 'i2', 'i3'])
ITEM_EMBEDDINGS = np.array([[1.0, 0.0, 0.0],
                            [0.5, 0.0, 2.0],
                            [0.2, 0.1, 0.0],
                            [0.1, 3.0, 0.0]], np.float32)
COLUMNS = [1, 2]  # c_a, c_b
QUERY = np.array([[1.0, 0.0, 0.0]], np.float32)  # u = 1 on the model part, tau = 0


def test_each_scenario_gets_the_weight_its_queries_ask_for():
  # Scenario a's users clicked its popular item 3; scenario b's clicked the model's item 0.
  queries = np.repeat(QUERY, 4, axis=0)
  scenarios = np.array(['a', 'a', 'b', 'b'])
  clicked = [{'i3'}, {'i3', 'i2'}, {'i0'}, {'i0', 'nowhere'}]
  fit = popularity_weights.fit(queries, scenarios, clicked, ITEMS, ITEM_EMBEDDINGS, COLUMNS,
                               ['a', 'b'], grid=[0.0, 0.25, 1.0, 4.0], ks=[1, 2], fit_k=1)
  # a: score_3 = 0.1 + 3 tau beats score_0 = 1 from tau > 0.3: 1.0 is the smallest such.
  # b: tau 0 keeps item 0 first (the ties at recall 1 go to the smallest tau).
  assert fit.weights == {'a': 1.0, 'b': 0.0}
  assert fit.grid_recall['a'] == {'0.0': 0.0, '0.25': 0.0, '1.0': 0.75, '4.0': 0.75}
  # Recall@1 with the fitted weights: a: 1, 1/2; b: 1, 1/2 ('nowhere' is not in the corpus).
  assert fit.recall['a']['1'] == pytest.approx(0.75)
  assert fit.recall['b']['1'] == pytest.approx(0.75)
  assert fit.recall['all']['1'] == pytest.approx(0.75)
  # Recall@2, tau_a = 1: scores 1, 0.5, 0.3, 3.1 -> items 3, 0: the second query's item 2
  # is missed.
  assert fit.recall['a']['2'] == pytest.approx((1 + 0.5) / 2)


def test_a_scenario_without_queries_keeps_the_model_and_unmapped_ones_get_zero():
  fit = popularity_weights.fit(QUERY, np.array(['z']), [{'i3'}], ITEMS, ITEM_EMBEDDINGS,
                               COLUMNS, ['a', 'b'], grid=[0.0, 4.0], ks=[1], fit_k=1)
  assert fit.weights == {'a': 0.0, 'b': 0.0}
  assert fit.recall['z']['1'] == 0.0 and fit.recall['all']['1'] == 0.0
