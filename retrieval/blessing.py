"""The blessing rule: not significantly worse than per-scenario popularity on any scenario,
significantly better overall; and, optionally, no regression against the last blessed
model (checked apart, by the BlessedModelComparison, so that the blessing of a model does
not change when only the last blessed model does)."""

from core import config as configs
from retrieval import evaluation


def rule(config: configs.EvaluationConfig) -> str:
  """The rule in words, for the report."""
  level = f'{config.confidence:.0%}'
  return (f'on every scenario and K the {level} interval of recall(model) - recall(popular '
          f'per scenario) reaches above -{config.worse_margin}, and for every K the '
          f'overall interval lies above {config.overall_min_gain}')


def bless(result: dict, config: configs.EvaluationConfig) -> tuple[bool, list[str]]:
  """(blessed, reasons it is not), from evaluation.evaluate's result.

  Not blessed when, on a scenario and K, the upper bound of the difference to per-scenario
  popularity is below -worse_margin (significantly worse), or when, for a K, the overall
  (query-weighted) lower bound is not above overall_min_gain (not significantly better).
  """
  reasons = []
  difference = result['intervals'][evaluation.DIFFERENCE]
  for scenario in sorted(s for s in difference if s != 'all'):
    for k, interval in difference[scenario].items():
      if interval['upper'] < -config.worse_margin:
        reasons.append(f'scenario {scenario}: recall@{k} is significantly below per-scenario '
                       f'popularity: difference {_interval(interval)} lies below '
                       f'-{config.worse_margin}')
  for k, interval in difference['all'].items():
    if not interval['lower'] > config.overall_min_gain:
      reasons.append(f'overall recall@{k} is not significantly above per-scenario popularity: '
                     f'difference {_interval(interval)} does not lie above '
                     f'{config.overall_min_gain}')
  return not reasons, reasons


def regressions(comparison: dict, config: configs.EvaluationConfig) -> list[str]:
  """With max_drop_vs_blessed set, the scenarios and K where the model's recall falls more
  than that below the previous blessed model's; with significant_drop_vs_blessed, those
  where the interval of the paired difference lies below -worse_margin
  (evaluation.compare's result)."""
  if not comparison.get('recall'):
    return []
  reasons = []
  if config.significant_drop_vs_blessed:
    change = comparison['intervals'][evaluation.CHANGE]
    for scenario in sorted(change):
      for k, interval in change[scenario].items():
        if interval['upper'] < -config.worse_margin:
          reasons.append(f'scenario {scenario}: recall@{k} is significantly below the '
                         f'blessed model\'s: difference {_interval(interval)} lies below '
                         f'-{config.worse_margin}')
  if config.max_drop_vs_blessed is None:
    return reasons
  model = comparison['recall'][evaluation.MODEL]
  previous = comparison['recall'][evaluation.PREVIOUS]
  for scenario in sorted(s for s in model if s != 'all'):
    for k, value in model[scenario].items():
      before = previous[scenario][k]
      if value < before - config.max_drop_vs_blessed:
        reasons.append(f'scenario {scenario}: recall@{k} {value:.4f} falls more than '
                       f'{config.max_drop_vs_blessed} below the blessed model\'s '
                       f'{before:.4f}')
  return reasons


def _interval(interval: dict) -> str:
  return f'{interval["point"]:+.4f} [{interval["lower"]:+.4f}, {interval["upper"]:+.4f}]'
