"""The ranker's blessing: retrieval's interval rule against popularity (retrieval/blessing.py)
on AUC and GAUC, and no regression against the previous blessed ranker.

From evaluation.evaluate's result with the popularity baseline as the reference:

- not blessed when, on any scenario, task and metric of `config.metrics`, the ranker is
  significantly worse than popularity by more than worse_margin (the upper bound of the
  paired difference below -worse_margin);
- not blessed when, for any task of config.gain_tasks (every task when empty) and any
  metric, the overall ('all') difference is not significantly above overall_min_gain (its
  lower bound at or below it); the overall difference of the other tasks is held to the
  scenarios' rule (not significantly worse);
- with max_drop_vs_blessed set and a previous blessed ranker scored on the same exposures,
  not blessed when a scenario's metric falls more than that below the previous ranker's.

A scenario's metric left undefined (a class missing, no user with both classes) or without
bounds (fewer than two resamples define it) tests nothing and is said so; an undefined
overall metric is a reason not to bless: a ranker is never blessed on no evidence.

Unlike retrieval, where the BlessedModelComparison checks the previous blessed model apart
(the refit depends on the blessing and must not rerun when only the previous model
changes), the regression is part of this blessing: nothing but the release depends on it.
"""

from typing import Optional

from core import config as configs
from ranking import evaluation


def rule(config: configs.RankingEvaluationConfig) -> str:
  """The rule in words, for the report."""
  metrics = ' and '.join(m.upper() for m in config.metrics)
  gain = (f'for {", ".join(config.gain_tasks)}' if config.gain_tasks else 'for every task')
  text = (f'for {metrics}, on every scenario and task the {config.confidence:.0%} interval '
          f'of metric(ranker) - metric(popularity) reaches above -{config.worse_margin}, '
          f'and {gain} the overall interval lies above {config.overall_min_gain} (the other '
          f'tasks: overall too, not below -{config.worse_margin})')
  if config.max_drop_vs_blessed is not None:
    text += (f'; no scenario\'s {metrics} more than {config.max_drop_vs_blessed} below the '
             f'previous blessed ranker\'s')
  return text


def bless(result: dict, config: configs.RankingEvaluationConfig
          ) -> tuple[bool, list[str], list[str]]:
  """(blessed, reasons it is not, what could not be tested)."""
  reasons, untested = [], []
  difference = result['differences'][f'{evaluation.RANKER}_minus_{evaluation.POPULARITY}']
  gain_tasks = config.gain_tasks_of(result['tasks'])
  for scenario, per_task in difference.items():
    for task, cells in per_task.items():
      must_gain = scenario == evaluation.ALL and task in gain_tasks
      for metric in config.metrics:
        cell = cells[metric]
        where = (f'overall {task} {metric.upper()}' if scenario == evaluation.ALL else
                 f'scenario {scenario}: {task} {metric.upper()}')
        users = result['counts'][scenario]['gauc_users'][task]
        if metric == 'gauc' and users < config.min_gauc_users:
          message = (f'{where}: {users} users with both classes, fewer than '
                     f'{config.min_gauc_users}')
          if must_gain:
            reasons.append(message)
          else:
            untested.append(message)
        elif (cell is None or cell['lower'] is None) and must_gain:
          reasons.append(f'{where} is undefined on the test split (a class is missing): '
                         f'nothing shows the ranker better than popularity')
        elif cell is None or cell['lower'] is None:
          untested.append(f'{where}: undefined on the test split')
        elif must_gain and not cell['lower'] > config.overall_min_gain:
          reasons.append(f'{where} is not significantly above popularity: difference '
                         f'{_interval(cell)} does not lie above {config.overall_min_gain}')
        elif not must_gain and cell['upper'] < -config.worse_margin:
          reasons.append(f'{where} is significantly below popularity: difference '
                         f'{_interval(cell)} lies below -{config.worse_margin}')
  reasons += regressions(result, config)
  return not reasons, reasons, untested


def regressions(result: dict, config: configs.RankingEvaluationConfig) -> list[str]:
  """With max_drop_vs_blessed set and the previous blessed ranker among the systems, the
  scenarios, tasks and metrics where the ranker falls more than that below it."""
  if config.max_drop_vs_blessed is None or evaluation.PREVIOUS not in result['metrics']:
    return []
  reasons = []
  for scenario, per_task in result['metrics'][evaluation.RANKER].items():
    if scenario == evaluation.ALL:
      continue
    for task, cells in per_task.items():
      for metric in config.metrics:
        now = _point(cells[metric])
        before = _point(result['metrics'][evaluation.PREVIOUS][scenario][task][metric])
        if now is not None and before is not None and (
            now < before - config.max_drop_vs_blessed):
          reasons.append(f'scenario {scenario}: {task} {metric.upper()} {now:.4f} falls '
                         f'more than {config.max_drop_vs_blessed} below the previous '
                         f'blessed ranker\'s {before:.4f}')
  return reasons


def _point(cell: Optional[dict]) -> Optional[float]:
  return None if cell is None else cell['point']


def _interval(cell: dict) -> str:
  return f'{cell["point"]:+.4f} [{cell["lower"]:+.4f}, {cell["upper"]:+.4f}]'
