"""The blessing rule: beat per-scenario popularity everywhere (and do not regress)."""

from typing import Optional

from core import config as configs


def bless(recall: dict, config: configs.EvaluationConfig) -> tuple[bool, list[str]]:
  """(blessed, reasons it is not).

  `recall` is {'model': {scenario: {k: r}}, 'popular_per_scenario': ...,
  'previous_blessed': ... or None} as the Evaluator computes it. Blessed when, on every
  scenario and every K, the model's recall exceeds the per-scenario most-popular baseline
  by more than `bless_margin`, and, with `max_drop_vs_blessed` set, does not fall more
  than that below the previous blessed model.
  """
  reasons = []
  model, popular = recall['model'], recall['popular_per_scenario']
  previous: Optional[dict] = recall.get('previous_blessed')
  for scenario in sorted(s for s in model if s != 'all'):
    for k, value in model[scenario].items():
      baseline = popular[scenario][k]
      if not value > baseline + config.bless_margin:
        reasons.append(f'scenario {scenario}: recall@{k} {value:.4f} does not beat '
                       f'per-scenario popularity {baseline:.4f} by more than '
                       f'{config.bless_margin}')
      if previous is not None and config.max_drop_vs_blessed is not None:
        before = previous[scenario][k]
        if value < before - config.max_drop_vs_blessed:
          reasons.append(f'scenario {scenario}: recall@{k} {value:.4f} falls more than '
                         f'{config.max_drop_vs_blessed} below the blessed model\'s '
                         f'{before:.4f}')
  return not reasons, reasons
