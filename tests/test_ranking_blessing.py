"""The ranker's blessing (ranking/blessing.py) on evaluations with a known answer."""

import functools

import numpy as np
import pytest

from core import config as configs
from ranking import blessing
from ranking import evaluation
from ranking import report

TASKS = ('click', 'like')
# The rule with every task required to gain overall (ranking_evaluation.gain_tasks=[]).
every_task = functools.partial(configs.RankingEvaluationConfig, gain_tasks=())


def _evaluate(ranker_scores, labels, scenario, user, previous=None):
  scores = {'ranker': ranker_scores, 'popularity': np.zeros_like(ranker_scores)}
  if previous is not None:
    scores['previous_blessed'] = previous
  return evaluation.evaluate(scores, labels, scenario, user, TASKS, resamples=100, seed=1)


def _case(seed=0, n=3000, users=300):
  """Scenario 'a' (users not divisible by 3) and 'b'; popularity scores nothing (0)."""
  rng = np.random.default_rng(seed)
  user = rng.integers(0, users, n)
  scenario = np.where(user % 3 == 0, 'b', 'a')
  labels = (rng.uniform(size=(n, len(TASKS))) < [0.3, 0.2]).astype(np.int64)
  return labels, scenario, user, rng


def test_a_ranker_better_everywhere_is_blessed():
  labels, scenario, user, rng = _case()
  result = _evaluate(labels + rng.normal(size=labels.shape), labels, scenario, user)
  blessed, reasons, untested = blessing.bless(result, every_task())
  assert blessed and not reasons and not untested


def test_worse_than_popularity_on_one_scenario_is_not_blessed_and_named():
  labels, scenario, user, rng = _case()
  scores = labels + rng.normal(size=labels.shape)
  inverted = scenario == 'b'
  scores[inverted] = -scores[inverted]  # ranks scenario b backwards: AUC far below 0.5
  result = _evaluate(scores, labels, scenario, user)
  blessed, reasons, _ = blessing.bless(result, every_task())
  assert not blessed
  assert any(r.startswith('scenario b: click AUC is significantly below popularity')
             for r in reasons)
  assert not any(r.startswith('scenario a') for r in reasons)
  # A margin wide enough forgives the scenario (AUC - 0.5 is at least -0.5).
  loose = every_task(worse_margin=0.6, overall_min_gain=-1.0)
  assert blessing.bless(result, loose)[0]


def test_no_gain_overall_is_not_blessed():
  labels, scenario, user, rng = _case()
  result = _evaluate(rng.normal(size=labels.shape), labels, scenario, user)  # noise
  blessed, reasons, _ = blessing.bless(result, every_task(
      metrics=('auc',)))
  assert not blessed
  assert 'overall click AUC is not significantly above popularity' in ' '.join(reasons)
  assert not any('GAUC' in r for r in reasons)  # only the metrics configured


def test_a_drop_against_the_previous_blessed_ranker_is_a_regression():
  labels, scenario, user, rng = _case()
  good = labels + rng.normal(size=labels.shape)
  weaker = labels + 3 * rng.normal(size=labels.shape)
  result = _evaluate(weaker, labels, scenario, user, previous=good)
  config = every_task(max_drop_vs_blessed=0.01)
  blessed, reasons, _ = blessing.bless(result, config)
  drop = result['metrics']['previous_blessed']['a']['click']['auc']['point'] - (
      result['metrics']['ranker']['a']['click']['auc']['point'])
  assert drop > 0.01 and not blessed
  assert any(r.startswith('scenario a: click AUC') and 'previous blessed' in r
             for r in reasons)
  # Without the setting the previous ranker is reported, not a reason.
  assert blessing.bless(result, every_task())[0]


def test_an_undefined_metric_is_reported_untested_not_failed():
  labels, scenario, user, rng = _case()
  labels[scenario == 'b', 1] = 0  # no like in scenario b
  result = _evaluate(labels + rng.normal(size=labels.shape), labels, scenario, user)
  blessed, _, untested = blessing.bless(result, every_task())
  assert blessed
  assert 'scenario b: like AUC: undefined on the test split' in untested
  result['blessing'] = {'blessed': blessed, 'reasons': [], 'untested': untested,
                        'rule': blessing.rule(every_task())}
  text = report.format_summary(result)
  assert 'ranker BLESSED' in text and 'not tested (undefined)' in text
  assert len([line for line in text.splitlines() if line.strip().startswith('b ')]) == 2


def test_bad_settings_name_the_field():
  with pytest.raises(configs.ConfigError, match='ranking_evaluation.metrics'):
    every_task(metrics=('ndcg',))


def test_an_undefined_overall_metric_is_a_reason_not_to_bless():
  labels, scenario, user, rng = _case()
  scores = labels + rng.normal(size=labels.shape)
  labels[:, 1] = 0  # no like at all in the test window
  result = _evaluate(scores, labels, scenario, user)
  blessed, reasons, _ = blessing.bless(result, every_task())
  assert not blessed
  assert any(r.startswith('overall like AUC is undefined') for r in reasons)


def test_a_gauc_of_too_few_users_tests_nothing():
  labels, scenario, user, rng = _case()
  one = user[scenario == 'b'][0]
  labels[(scenario == 'b') & (user != one), 1] = 0  # one user of b with both classes
  result = _evaluate(labels + rng.normal(size=labels.shape), labels, scenario, user)
  assert result['counts']['b']['gauc_users']['like'] == 1
  blessed, reasons, untested = blessing.bless(result, every_task())
  assert blessed, reasons
  assert 'scenario b: like GAUC: 1 users with both classes, fewer than 20' in untested


def test_only_the_gain_tasks_must_gain_the_others_must_not_lose():
  labels, scenario, user, rng = _case()
  scores = labels + rng.normal(size=labels.shape)
  scores[:, 1] = 0.0  # like: scored as popularity scores it (nothing), level with it
  result = _evaluate(scores, labels, scenario, user)
  assert not blessing.bless(result, every_task())[0]
  click_only = configs.RankingEvaluationConfig(gain_tasks=('click',))
  blessed, reasons, _ = blessing.bless(result, click_only)
  assert blessed, reasons
  assert 'for click the overall interval' in blessing.rule(click_only)
  scores[:, 1] = -labels[:, 1] + rng.normal(size=len(scores))  # like: ranked backwards
  blessed, reasons, _ = blessing.bless(_evaluate(scores, labels, scenario, user), click_only)
  assert not blessed
  assert any(r.startswith('overall like AUC is significantly below popularity')
             for r in reasons)


def test_a_gain_task_the_spec_does_not_have_names_the_field():
  with pytest.raises(configs.ConfigError, match='ranking_evaluation.gain_tasks lists share'):
    configs.RankingEvaluationConfig(gain_tasks=('click', 'share')).gain_tasks_of(TASKS)
  assert configs.RankingEvaluationConfig(gain_tasks=()).gain_tasks_of(TASKS) == TASKS
