"""What refreshing a release is worth: a backtest inside the bundled data.

    python -m experiments.refresh_backtest [--output-dir outputs/experiments] [--seed 42]

A release is gated on one window and then refreshed to the end of the logs before it is
served (pipeline/pipeline.py: refit and corpus as of the last event). The backtest replays
that one window earlier, on data the pipeline run already has:

    gate model      trained on the train window, early stopping on the validation window
                    (the tail study's `default` variant: the same directory, trained once)
    stale           the gate model, items and their time-dependent features as of the
                    validation window's start (what a release without refresh serves)
    fresh features  the gate model, items as of the test window's start
    refit           the gate's configuration trained on train + validation for the epochs
                    the gate kept, items as of the test window's start

and scores each on the test window (the next day after the refresh's data): Recall@50/100
per scenario, with paired bootstrap intervals of fresh features - stale (what refreshing
the item features is worth) and refit - fresh features (what refitting the model on the
newest day adds). Users' features and histories are as of the test window in all three
(the examples carry them), so the user-side refresh is not measured here; the refit keeps
the gate's vocabularies (users and items first seen in the validation window stay
out-of-vocabulary), unlike the pipeline's refit. Writes refresh_backtest.md and .json
under OUTPUT_DIR/refresh_backtest/.
"""

import argparse
import json
import os
import sys

from core import config as configs
from core import layout
from experiments import harness
from retrieval import evaluation

STEPS = (('item features refreshed (fresh features - stale)', 'features'),
         ('model refit on the newest day (refit - fresh features)', 'refit'))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--output-dir', default='outputs/experiments')
  parser.add_argument('--seed', type=int, default=42)
  args = parser.parse_args(argv)
  harness.show_progress()
  config = configs.load_config('', [f'output_dir={args.output_dir}',
                                    'ingestion.recent_click_features=true',
                                    f'training.seed={args.seed}'])
  data = harness.RunData.latest(config)
  root = config.path(args.output_dir)
  gate = harness.train(data, config, harness.variant_directory(root, config, 'default'))
  refit = harness.train(data, config, harness.variant_directory(root, config,
                                                                'default refit'),
                        refit_of=gate)
  test = layout.split_pattern(data.examples, layout.TEST)
  corpus = {when: layout.split_pattern(data.item_corpus, split)
            for when, split in (('stale', layout.TRAIN), ('fresh', layout.TEST))}
  results = {
      'features': evaluation.compare(gate, gate, test, corpus['fresh'], config.evaluation,
                                     baseline_corpus_pattern=corpus['stale']),
      'refit': evaluation.compare(refit, gate, test, corpus['fresh'], config.evaluation),
      'refit_vs_popularity': harness.score(data, refit, layout.TEST, config.evaluation),
      'epochs': harness.training_summary(refit)['student'],
  }
  out = os.path.join(root, 'refresh_backtest')
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, f'refresh_backtest_seed{args.seed}.json'), 'w') as f:
    json.dump(results, f, indent=2)
  text = markdown(results)
  with open(os.path.join(out, f'refresh_backtest_seed{args.seed}.md'), 'w') as f:
    f.write(text + '\n')
  print(text)
  return 0


def markdown(results: dict) -> str:
  """Recall per scenario of stale, fresh features, refit and popularity; then the two
  paired differences with 95% intervals."""
  features, refit = results['features'], results['refit']
  scenarios = list(features['queries']) + ['all']
  lines = ['| test window | ' + ' | '.join(
      f'tab {s} ({features["queries"][s]} q.)' if s != 'all' else 'all' for s in scenarios)
           + ' |', '|' + '---|' * (len(scenarios) + 1)]
  point = lambda result, system, k: [f'{result["intervals"][system][s][str(k)]["point"]:.4f}'
                                     for s in scenarios]
  interval = lambda i: f'{i["point"]:+.4f} [{i["lower"]:+.4f}, {i["upper"]:+.4f}]'
  for k in features['ks']:
    for label, result, system in (
        ('stale', features, evaluation.PREVIOUS),
        ('fresh features', features, evaluation.MODEL),
        ('refit', refit, evaluation.MODEL),
        ('popular per scenario', results['refit_vs_popularity'],
         evaluation.POPULAR_PER_SCENARIO)):
      lines.append(f'| {label} @{k} | ' + ' | '.join(point(result, system, k)) + ' |')
    for label, key in STEPS:
      lines.append(f'| {label} @{k} | ' + ' | '.join(
          interval(results[key]['intervals'][evaluation.CHANGE][s][str(k)])
          for s in scenarios) + ' |')
  return '\n'.join(lines)


if __name__ == '__main__':
  sys.exit(main())
