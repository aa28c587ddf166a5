"""What the Evaluator reports: the summary table and the bar chart of recall per scenario,
the model against the baselines (from evaluation.evaluate's result)."""

import matplotlib

matplotlib.use('Agg')  # files only, no display
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

LABELS = {'model': 'model', 'previous_blessed': 'previous blessed',
          'popular': 'most popular', 'popular_per_scenario': 'most popular per scenario'}


def recall_chart(recall: dict, ks, path: str, title: str) -> None:
  """One panel per K; bars per scenario (and all) for each model/baseline."""
  series = [name for name in LABELS if recall.get(name)]
  scenarios = [s for s in recall['model'] if s != 'all'] + ['all']
  figure, axes = plt.subplots(1, len(ks), figsize=(6 * len(ks), 4), squeeze=False)
  width = 0.8 / len(series)
  for ax, k in zip(axes[0], ks):
    for i, name in enumerate(series):
      values = [recall[name][s][str(k)] for s in scenarios]
      ax.bar([x + i * width for x in range(len(scenarios))], values, width,
             label=LABELS[name])
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


COLUMNS = {'model': 'model', 'previous_blessed': 'blessed', 'popular': 'popular',
           'popular_per_scenario': 'pop/scen'}


def format_summary(result: dict, ks) -> str:
  """Recall per scenario of the model next to the baselines; AUCs; the blessing."""
  recall = result['recall']
  names = [n for n in COLUMNS if recall.get(n)]
  header = ' '.join(f'{COLUMNS[n]}@{k}'.rjust(12) for k in ks for n in names)
  lines = [f'Recall@K over the full corpus of {result["corpus_size"]:,} items, eval split '
           f'(blessed = previous blessed model, pop/scen = most popular per scenario)',
           f'  {"scenario":>8} {"queries":>8} {header}']
  for scenario in list(result['queries']) + ['all']:
    queries = (sum(result['queries'].values()) if scenario == 'all'
               else result['queries'][scenario])
    values = ' '.join(f'{recall[n][scenario][str(k)]:>12.4f}' for k in ks for n in names)
    lines.append(f'  {scenario:>8} {queries:>8,} {values}')
  for name, per_scenario in result['auc'].items():
    aucs = ', '.join(f'{s} {v:.4f}' if v is not None else f'{s} n/a'
                     for s, v in per_scenario.items())
    lines.append(f'  AUC {name} (clicks vs exposures): {aucs}')
  verdict = result.get('blessing')
  if verdict:
    lines.append('  BLESSED' if verdict['blessed'] else
                 '  NOT BLESSED: ' + '; '.join(verdict['reasons']))
  return '\n'.join(lines)
