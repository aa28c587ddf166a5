"""What the Evaluator reports: the summary table and the bar chart of recall per scenario,
the model against the baselines, with intervals (from evaluation.evaluate's result)."""

import matplotlib

matplotlib.use('Agg')  # files only, no display
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

from retrieval import evaluation  # pylint: disable=g-import-not-at-top

LABELS = {evaluation.MODEL: 'model', evaluation.POPULAR: 'most popular',
          evaluation.POPULAR_PER_SCENARIO: 'most popular per scenario'}
COLUMNS = {evaluation.MODEL: 'model', evaluation.POPULAR: 'popular',
           evaluation.POPULAR_PER_SCENARIO: 'pop/scen'}


def recall_chart(result: dict, path: str, title: str) -> None:
  """One panel per K; bars per scenario (and all) for each model/baseline, with the
  bootstrap intervals as error bars."""
  recall, intervals, ks = result['recall'], result['intervals'], result['ks']
  series = [name for name in LABELS if recall.get(name)]
  scenarios = [s for s in recall[evaluation.MODEL] if s != 'all'] + ['all']
  figure, axes = plt.subplots(1, len(ks), figsize=(6 * len(ks), 4), squeeze=False)
  width = 0.8 / len(series)
  for ax, k in zip(axes[0], ks):
    for i, name in enumerate(series):
      values = [recall[name][s][str(k)] for s in scenarios]
      bounds = [intervals[name][s][str(k)] for s in scenarios]
      errors = [[max(v - b['lower'], 0) for v, b in zip(values, bounds)],
                [max(b['upper'] - v, 0) for v, b in zip(values, bounds)]]
      ax.bar([x + i * width for x in range(len(scenarios))], values, width,
             yerr=errors, capsize=2, label=LABELS[name])
    ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(scenarios))])
    ax.set_xticklabels(scenarios)
    ax.set_xlabel('scenario')
    ax.set_ylabel(f'Recall@{k}')
    ax.set_title(f'Recall@{k} over the full item corpus')
    ax.grid(axis='y', alpha=0.3)
  axes[0][0].legend(fontsize=8)
  figure.suptitle(title)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)


def format_summary(result: dict) -> str:
  """Recall per scenario of the model next to the baselines, with intervals; AUCs; the
  blessing."""
  recall, intervals = result['recall'], result['intervals']
  names = [n for n in COLUMNS if recall.get(n)]
  boot = result['bootstrap']
  lines = [f'Recall@K on the test split over the full corpus of {result["corpus_size"]:,} '
           f'items; [{boot["confidence"]:.0%} interval] by a paired Poisson bootstrap over '
           f'the queries ({boot["resamples"]:,} resamples). pop/scen = most popular per '
           f'scenario.']
  for k in result['ks']:
    header = ' '.join(f'{COLUMNS[n] + "@" + str(k):>10}' for n in names[1:])
    lines.append(f'  {"scenario":>8} {"queries":>8} {"model@" + str(k):>26} {header} '
                 f'{"model - pop/scen":>28}')
    for scenario in list(result['queries']) + ['all']:
      queries = (sum(result['queries'].values()) if scenario == 'all'
                 else result['queries'][scenario])
      model = intervals[evaluation.MODEL][scenario][str(k)]
      others = ' '.join(f'{recall[n][scenario][str(k)]:>10.4f}' for n in names[1:])
      difference = intervals[evaluation.DIFFERENCE][scenario][str(k)]
      lines.append(f'  {scenario:>8} {queries:>8,} {_with_interval(model, False):>26} '
                   f'{others} {_with_interval(difference, True):>28}')
  for name, per_scenario in result['auc'].items():
    aucs = ', '.join(f'{s} {v:.4f}' if v is not None else f'{s} n/a'
                     for s, v in per_scenario.items())
    lines.append(f'  AUC {name} (clicks vs exposures): {aucs}')
  verdict = result.get('blessing')
  if verdict:
    lines.append('  BLESSED' if verdict['blessed'] else
                 '  NOT BLESSED: ' + '; '.join(verdict['reasons']))
  return '\n'.join(lines)


def _with_interval(interval: dict, signed: bool) -> str:
  number = '{:+.4f}' if signed else '{:.4f}'
  bound = '{:+.3f}' if signed else '{:.3f}'
  return (number.format(interval['point']) + ' [' + bound.format(interval['lower']) + ', '
          + bound.format(interval['upper']) + ']')


def format_comparison(comparison: dict) -> str:
  """The model against the previous blessed model, on the same test queries."""
  if not comparison.get('recall'):
    return 'No previous blessed model to compare with.'
  intervals = comparison['intervals']
  lines = ['Against the previous blessed model on the same test queries '
           f'[{comparison["bootstrap"]["confidence"]:.0%} interval]:']
  for k in comparison['ks']:
    lines.append(f'  {"scenario":>8} {"model@" + str(k):>12} {"blessed@" + str(k):>12} '
                 f'{"model - blessed":>28}')
    for scenario in list(comparison['queries']) + ['all']:
      model = comparison['recall'][evaluation.MODEL][scenario][str(k)]
      before = comparison['recall'][evaluation.PREVIOUS][scenario][str(k)]
      change = intervals[evaluation.CHANGE][scenario][str(k)]
      lines.append(f'  {scenario:>8} {model:>12.4f} {before:>12.4f} '
                   f'{_with_interval(change, True):>28}')
  regressions = comparison.get('regressions')
  if regressions:
    lines.append('  REGRESSION, no release: ' + '; '.join(regressions))
  return '\n'.join(lines)
