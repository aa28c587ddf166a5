"""What wins the small scenarios: training variants scored on the validation window.

    python -m experiments.tail_study [--output-dir outputs/experiments] [--seed 42]
        [--only NAME ... | --table-only] [--set KEY=VALUE ...]

Needs a pipeline run whose ingestion wrote every popularity feature, in the same
output_dir: `python -m pipeline.local_runner --set output_dir=outputs/experiments
--set ingestion.recent_click_features=true` (its model is trained too; the harness only
reads the run's data). Each variant (beyond-the-paper options of core/config.py, one
flag at a time against the default) is trained by the Trainer's code with early stopping
on the validation window and scored there: Recall@50/100 per scenario with bootstrap
intervals, next to per-scenario popularity. The test window is not read. Writes
tail_study_seed<N>.md and .json under OUTPUT_DIR/tail_study/: every variant trained so
far with that seed, by this call or earlier ones.
"""

import argparse
import json
import os
import sys

from core import config as configs
from core import layout
from experiments import harness
from retrieval import evaluation

# name -> (overrides, preset); every variant is trained with the same seed and data.
VARIANTS = {
    'default': ([], ''),
    'paper preset': ([], 'paper'),
    'no fitted popularity weight': (['model.fitted_popularity_weight=false'], ''),
    'no popularity prior': (['model.scenario_popularity_prior=false'], ''),
    # The decayed recent clicks are in the default since 2026-12-02: this is without them.
    'all-time clicks only': (['model.popularity_features=[scenario_clicks]'], ''),
    'recent clicks only': (['model.popularity_features=[scenario_recent_clicks]'], ''),
    'recent clicks only, no prior': (['model.popularity_features=[scenario_recent_clicks]',
                                      'model.scenario_popularity_prior=false'], ''),
    'popularity-sampled negatives (0.75)': (['training.negative_sampling_power=0.75'], ''),
    'popularity-sampled negatives + logQ': (['training.negative_sampling_power=0.75',
                                            'training.logq_correction=true'], ''),
    '+ 4 in-batch negatives': (['training.in_batch_negatives=4'], ''),
    '+ 4 in-batch negatives + logQ': (['training.in_batch_negatives=4',
                                      'training.logq_correction=true'], ''),
    'scenario-balanced loss (0.5)': (['training.scenario_balance_power=0.5'], ''),
    '8 random negatives': (['training.negative_ratio=8'], ''),
    'sampled softmax': (['training.loss=sampled_softmax'], ''),
    'batch 1024': (['training.batch_size=1024'], ''),
    'learning rate 3e-4': (['training.learning_rate=0.0003'], ''),
    'accidental hits kept': (['training.remove_accidental_hits=false'], ''),
}


def variant_config(base: list[str], overrides: list[str], preset: str) -> configs.PipelineConfig:
  return configs.load_config('', base + overrides, preset)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--output-dir', default='outputs/experiments')
  parser.add_argument('--seed', type=int, default=42)
  parser.add_argument('--only', action='append', default=[],
                      help='variants to train now, in this order (default: all)')
  parser.add_argument('--table-only', action='store_true',
                      help='train nothing: the table of the variants trained so far')
  parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                      help='a change to the defaults every variant starts from')
  args = parser.parse_args(argv)
  unknown = sorted(set(args.only) - set(VARIANTS))
  if unknown:
    parser.error(f'--only: no variant {", ".join(unknown)}; the variants: '
                 f'{", ".join(VARIANTS)}')
  harness.show_progress()
  base = [f'output_dir={args.output_dir}', 'ingestion.recent_click_features=true',
          f'training.seed={args.seed}'] + args.set
  data_config = configs.load_config('', base)
  data = harness.RunData.latest(data_config)
  root = data_config.path(args.output_dir)
  for name in [] if args.table_only else args.only or VARIANTS:
    overrides, preset = VARIANTS[name]
    config = variant_config(base, overrides, preset)
    # The preset moves outputs elsewhere; the harness keeps every variant here.
    model_dir = harness.train(data, config, harness.variant_directory(root, config, name))
    result = harness.cached_score(data, model_dir, layout.VALIDATION, config.evaluation)
    print(f'{name}: {_line(result)}', flush=True)
  # The table: every variant trained so far with this seed (by this or earlier calls).
  rows = {}
  for name, (overrides, preset) in VARIANTS.items():
    model_dir = os.path.join(harness.variant_directory(
        root, variant_config(base, overrides, preset), name), 'model')
    if not os.path.exists(os.path.join(model_dir, layout.TRAINING_SUMMARY_FILE)):
      continue
    summary = harness.training_summary(model_dir)
    rows[name] = {'overrides': overrides, 'preset': preset,
                  'result': harness.cached_score(data, model_dir, layout.VALIDATION,
                                                 data_config.evaluation),
                  'epochs': harness.kept_epochs(model_dir),
                  'training_seconds': summary['seconds']}
  if not rows:
    parser.error('no variant of these defaults is trained yet: train some with --only '
                 '(or pass the --set changes they were trained with)')
  out = os.path.join(root, 'tail_study')
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, f'tail_study_seed{args.seed}.json'), 'w') as f:
    json.dump(rows, f, indent=2)
  with open(os.path.join(out, f'tail_study_seed{args.seed}.md'), 'w') as f:
    f.write(markdown(rows) + '\n')
  print(markdown(rows))
  return 0


def _line(result: dict) -> str:
  model = result['intervals'][evaluation.MODEL]
  return ', '.join(f'{s} {model[s]["50"]["point"]:.4f}' for s in model)


def markdown(rows: dict) -> str:
  """Validation Recall@50 / @100 per scenario [95% interval], per-scenario popularity
  first."""
  any_result = next(iter(rows.values()))['result']
  scenarios = list(any_result['queries']) + ['all']
  header = ('| variant | epochs (t/s) | ' +
            ' | '.join(f'tab {s} ({any_result["queries"].get(s, "")})' if s != 'all'
                       else 'all' for s in scenarios) + ' |')
  lines = [header, '|' + '---|' * (len(scenarios) + 2)]
  cell = lambda i: f'{i["point"]:.3f} [{i["lower"]:.3f}, {i["upper"]:.3f}]'
  popular = any_result['intervals'][evaluation.POPULAR_PER_SCENARIO]
  for k in any_result['ks']:
    lines.append(f'| **popular per scenario @{k}** | | ' +
                 ' | '.join(cell(popular[s][str(k)]) for s in scenarios) + ' |')
  for name, row in rows.items():
    model = row['result']['intervals'][evaluation.MODEL]
    epochs = '/'.join(str(row['epochs'].get(p, '-')) for p in ('teacher', 'student'))
    for k in row['result']['ks']:
      lines.append(f'| {name} @{k} | {epochs} | ' +
                   ' | '.join(cell(model[s][str(k)]) for s in scenarios) + ' |')
  return '\n'.join(lines)


if __name__ == '__main__':
  sys.exit(main())
