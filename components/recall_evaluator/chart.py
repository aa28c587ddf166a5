"""The Evaluator's bar chart: recall per scenario, model against the baselines."""

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
