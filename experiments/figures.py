"""The sensitivity figures (the paper's Figures 2 and 3): Recall@50 per scenario against
the number of experts K or the SAP rank R, with error bars (tables.sweep_values says
which) and per-scenario popularity as a dashed line."""

import numpy as np


def sweep_figure(values: dict, popularity: dict, scenarios: list[str], xlabel: str,
                 path: str, title: str, log2: bool = False) -> None:
  """values: {x: {scenario: (recall, below, above)}}; popularity: {scenario: recall}."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  xs = sorted(values)
  fig, axes = plt.subplots(1, len(scenarios), figsize=(2.6 * len(scenarios), 2.8))
  for ax, scenario in zip(np.atleast_1d(axes), scenarios):
    centers = [100 * values[x][scenario][0] for x in xs]
    bars = [[100 * values[x][scenario][1] for x in xs],
            [100 * values[x][scenario][2] for x in xs]]
    ax.errorbar(xs, centers, yerr=bars, marker='o', capsize=3, label='DSMOE')
    ax.axhline(100 * popularity[scenario], color='grey', linestyle='--', linewidth=1,
               label='popular per scenario')
    if log2:
      ax.set_xscale('log', base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_title('all scenarios' if scenario == 'all' else f'tab {scenario}', fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(labelsize=7)
  np.atleast_1d(axes)[0].set_ylabel('test Recall@50 (%)', fontsize=8)
  np.atleast_1d(axes)[0].legend(fontsize=6)
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=130)
  plt.close(fig)
