"""Test-window Recall@K of the defaults and of the paper preset, over several seeds.

    python -m experiments.test_report [--output-dir outputs/experiments]
        [--seeds 42 43 44] [--presets default 'paper preset']

Needs the pipeline run the tail study needs (see experiments/tail_study.py). Each (preset,
seed) is trained like a tail-study variant (early stopping on the validation window; the
same directories, so a model the tail study trained is reused) and scored once on the test
window: Recall@50/100 per scenario next to per-scenario popularity (and, for reference,
on the validation window the choices were made on). Nothing is chosen here; this is the
report. Writes test_report.md and test_report.json under
OUTPUT_DIR/test_report/.
"""

import argparse
import json
import os
import sys

import numpy as np

from core import config as configs
from core import layout
from experiments import harness
from retrieval import evaluation

# name (as the tail study names it) -> preset
PRESETS = {'default': '', 'paper preset': 'paper'}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--output-dir', default='outputs/experiments')
  parser.add_argument('--seeds', type=int, nargs='+', default=[42, 43, 44])
  parser.add_argument('--presets', nargs='+', default=list(PRESETS), choices=list(PRESETS),
                      help='which of the presets to report (default: all)')
  args = parser.parse_args(argv)
  harness.show_progress()
  base = [f'output_dir={args.output_dir}', 'ingestion.recent_click_features=true']
  data_config = configs.load_config('', base)
  data = harness.RunData.latest(data_config)
  root = data_config.path(args.output_dir)
  results = {}
  for name in args.presets:
    preset = PRESETS[name]
    for seed in args.seeds:
      config = configs.load_config('', base + [f'training.seed={seed}'], preset)
      model_dir = harness.train(data, config, harness.variant_directory(root, config, name))
      results.setdefault(name, {})[seed] = {
          window: harness.cached_score(data, model_dir, window, config.evaluation)
          for window in (layout.VALIDATION, layout.TEST)}
      results[name][seed].update({
          'epochs': harness.kept_epochs(model_dir)})
  out = os.path.join(root, 'test_report')
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, 'test_report.json'), 'w') as f:
    json.dump(results, f, indent=2)
  text = '\n\n'.join(f'{window} window\n\n{markdown(results, window)}'
                     for window in (layout.TEST, layout.VALIDATION))
  with open(os.path.join(out, 'test_report.md'), 'w') as f:
    f.write(text + '\n')
  print(text)
  return 0


def markdown(results: dict, window: str) -> str:
  """Per scenario: mean over seeds ± their standard deviation, then the mean of the runs'
  95% bootstrap intervals (query sampling) in brackets; per-scenario popularity first
  (the same for every seed)."""
  first = next(iter(next(iter(results.values())).values()))[window]
  scenarios = list(first['queries']) + ['all']
  lines = ['| system | seeds | epochs kept (t/s) | ' + ' | '.join(
      f'tab {s} ({first["queries"][s]} q.)' if s != 'all' else 'all' for s in scenarios)
           + ' |', '|' + '---|' * (len(scenarios) + 3)]
  popular = first['intervals'][evaluation.POPULAR_PER_SCENARIO]
  for k in first['ks']:
    lines.append(f'| popular per scenario @{k} | | | ' + ' | '.join(
        f'{popular[s][str(k)]["point"]:.4f}' for s in scenarios) + ' |')
  for name, by_seed in results.items():
    runs = list(by_seed.values())
    epochs = ', '.join('/'.join(str(r['epochs'].get(p, '-')) for p in ('teacher', 'student'))
                       for r in runs)
    for system, label in ((evaluation.MODEL, name), (evaluation.DIFFERENCE,
                                                     f'{name} - popular per scenario')):
      for k in first['ks']:
        cells = [_cell([r[window]['intervals'][system][s][str(k)] for r in runs],
                       signed=system == evaluation.DIFFERENCE) for s in scenarios]
        lines.append(f'| {label} @{k} | {",".join(map(str, by_seed))} | {epochs} | '
                     + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def _cell(intervals: list, signed: bool) -> str:
  """'mean ± std [mean lower, mean upper]' of one scenario's runs."""
  points = np.array([i['point'] for i in intervals])
  std = points.std(ddof=1) if len(points) > 1 else 0.0
  form = '+.4f' if signed else '.4f'
  return (f'{points.mean():{form}} ± {std:.4f} [{np.mean([i["lower"] for i in intervals]):{form}}'
          f', {np.mean([i["upper"] for i in intervals]):{form}}]')


if __name__ == '__main__':
  sys.exit(main())
