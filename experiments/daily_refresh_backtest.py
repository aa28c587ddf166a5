"""A daily refresh replayed day by day inside the bundled data: stale, refreshed (warm
start), full retrain and popularity, each scored on the day after its data.

    python -m experiments.daily_refresh_backtest [--output-dir outputs] [--seed 42]

Three pipeline runs' data (ingestion + Transform, experiments/harness.py), one spec each:
    run 0  train .. 04-30, validation 05-01, test 05-02 .. 05-04   (choosing the refresh)
    run 1  train .. 05-01, validation 05-02, test 05-03 .. 05-04   (--output-dir's make run)
    run 2  train .. 05-02, validation 05-03, test 05-04
(runs 0 and 2 under OUTPUT_DIR/daily_refresh_backtest/). A refresh (models/warm_start.py)
starts the student and the teacher from the previous model's weights (new users and items
get new rows) and trains them 1 epoch on `day` (the newest day alone) or `window` (the
newest day and the days before it), at a learning rate of 1e-3 (training's) or 1e-4.

1. Choosing the refresh, on 05-02 only (no day scored below): gate 0 (run 0's train
   window, early stopping on 05-01) refreshed with 05-01 by each of the four variants,
   against the full retrain (gate 0's configuration on .. 05-01 from scratch, the epochs
   gate 0 kept); the variant with the best Recall@50 over all scenarios is chosen.
2. The backtest, with the chosen variant:
    gate        the release of the days .. 05-01 (run 1's train window, early stopping on
                05-02; the harness's `default`)
    refresh 1   gate refreshed with 05-02 (run 1's validation window)
    refresh 2   refresh 1 refreshed with 05-03 into run 2's vocabularies (users and items
                first seen on 05-02 get new rows)
    full k      the gate's configuration trained from scratch on every day up to the
                refresh's day for the epochs the gate kept (run k's train + validation)
   scored with the Evaluator's code on the next day, items and users as of its start:
    05-03  run 1's test window, its 05-03 events: stale (the gate, items as of 05-02's
           start: what it was released with), refresh 1, full 1, per-scenario popularity
    05-04  run 2's test window: stale, refresh 2, full 2, per-scenario popularity
Recall@50/100 per scenario with 95% intervals of the paired differences refresh - full
and refresh - stale, and the training wall time of each model. Writes
daily_refresh_backtest_seed<N>.md, .json and .png under OUTPUT_DIR/daily_refresh_backtest/.

What it does not replay: the gate chose its epochs on 05-02, a day refresh 1 trains on
(the full retrains use the same epochs). Every model of a day shares its run's Transform:
refresh 1 and full 1 train on 05-02 with the vocabularies of .. 05-01, so 05-02's new
users and items are out of vocabulary for both (refresh 2 gives them rows, starting from
their OOV bucket's, but 05-03's new ids are OOV for refresh 2 and full 2 alike); a real
refresh's Transform covers its new day, so both arms understate it alike. refresh - stale
is the model's refresh and the items' (their features as of the scored day) together
(experiments/refresh_backtest.py separates the two). The ingestion and index time of a
refresh are not in its wall time (benchmarks/new_day_ingestion.py measures the ingestion).
"""

import argparse
import dataclasses
import datetime
import json
import os
import sys
from typing import Optional

import tensorflow as tf
import yaml

from core import config as configs
from core import dataset_spec as ds
from core import examples as example_files
from core import feature_names as fnames
from core import layout
from experiments import harness
from retrieval import evaluation

ARMS = ('stale', 'refresh', 'full', 'popular per scenario')
DIFFERENCES = (('refresh - full', 'refresh_vs_full'), ('refresh - stale', 'refresh_vs_stale'))
# name: (window, learning rate); each 1 epoch.
VARIANTS = {'day, lr 1e-3': ('day', 1e-3), 'day, lr 1e-4': ('day', 1e-4),
            'window, lr 1e-3': ('window', 1e-3), 'window, lr 1e-4': ('window', 1e-4)}
EPOCHS = 1


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--output-dir', default='outputs')
  parser.add_argument('--seed', type=int, default=42)
  args = parser.parse_args(argv)
  harness.show_progress()
  overrides = [f'output_dir={args.output_dir}', f'training.seed={args.seed}']
  config = configs.load_config('', overrides)
  out = os.path.join(config.path(args.output_dir), 'daily_refresh_backtest')
  runs = {1: (config, harness.RunData.latest(config))}
  for number, (validation_days, test_days) in ((0, (1, 3)), (2, (1, 1))):
    run_config = _run_config(config, out, f'run{number}', overrides, validation_days,
                             test_days)
    runs[number] = (run_config, _prepared(run_config))

  choice = _choose(runs[0], out)
  window, learning_rate = VARIANTS[choice['chosen']]
  config_1, run1 = runs[1]
  config_2, run2 = runs[2]
  gate = _train(runs[1], 'default')
  refresh1 = _train(runs[1], f'refresh 05-02 {choice["chosen"]}', learning_rate,
                    warm_start_of=gate, warm_start_window=window)
  full1 = _train(runs[1], 'default refit', refit_of=gate)
  refresh2 = _train(runs[2], f'refresh 05-03 {choice["chosen"]}', learning_rate,
                    warm_start_of=refresh1, warm_start_window=window)
  full2 = _train(runs[2], 'full 05-03', refit_of=gate)

  stale_corpus = layout.split_pattern(run1.item_corpus, layout.TRAIN)  # 05-02's start
  day1 = _day_events(layout.split_pattern(run1.examples, layout.TEST), out, '2022-05-03',
                     run1.spec.split)
  days = {
      '2022-05-03': _score_day(run1, day1, gate, refresh1, full1, stale_corpus, config_1),
      '2022-05-04': _score_day(run2, layout.split_pattern(run2.examples, layout.TEST),
                               gate, refresh2, full2, stale_corpus, config_2),
  }
  models = (('gate', gate), ('refresh 05-02', refresh1), ('refresh 05-03', refresh2),
            ('full .. 05-02', full1), ('full .. 05-03', full2))
  results = {
      'choice': choice, 'days': days, 'seed': args.seed, 'epochs': EPOCHS,
      'training_seconds': {name: harness.training_summary(model)['seconds']
                           for name, model in models},
      'warm_start_ids': {name: harness.training_summary(model)['warm_start']['ids']
                         for name, model in models[1:3]},
  }
  os.makedirs(out, exist_ok=True)
  stem = os.path.join(out, f'daily_refresh_backtest_seed{args.seed}')
  with open(stem + '.json', 'w') as f:
    json.dump(results, f, indent=2)
  text = markdown(results)
  with open(stem + '.md', 'w') as f:
    f.write(text + '\n')
  plot(results, stem + '.png')
  print(text)
  return 0


def _train(run: tuple, name: str, learning_rate: Optional[float] = None, **kwargs) -> str:
  """harness.train of the run's config (with a refresh's learning rate) under its own
  output directory; kwargs: refit_of, or warm_start_of and warm_start_window."""
  config, data = run
  if learning_rate is not None:
    config = dataclasses.replace(config, training=dataclasses.replace(
        config.training, learning_rate=learning_rate))
  directory = harness.variant_directory(config.path(config.output_dir), config, name)
  return harness.train(data, config, directory, warm_start_epochs=EPOCHS, **kwargs)


def _choose(run0: tuple, out: str) -> dict:
  """Each variant's refresh of gate 0 with 05-01, scored on 05-02 against the full retrain
  and popularity; the one with the best Recall@50 over all scenarios."""
  config, data = run0
  gate = _train(run0, 'default')
  full = _train(run0, 'default refit', refit_of=gate)
  queries = _day_events(layout.split_pattern(data.examples, layout.TEST), out,
                        '2022-05-02', data.spec.split)
  corpus = layout.split_pattern(data.item_corpus, layout.TEST)
  before = [layout.split_pattern(data.examples, s) for s in (layout.TRAIN,
                                                             layout.VALIDATION)]
  scored = {'full': evaluation.evaluate(full, before, queries, corpus, config.evaluation)}
  for name, (window, learning_rate) in VARIANTS.items():
    refresh = _train(run0, f'refresh 05-01 {name}', learning_rate, warm_start_of=gate,
                     warm_start_window=window)
    scored[name] = evaluation.compare(refresh, full, queries, corpus, config.evaluation)
    scored[name]['seconds'] = harness.training_summary(refresh)['seconds']
  recall = lambda name: scored[name]['intervals'][evaluation.MODEL]['all']['50']['point']
  return {'day': '2022-05-02', 'scored': scored,
          'chosen': max(VARIANTS, key=recall)}


def _run_config(config: configs.PipelineConfig, out: str, name: str, overrides: list[str],
                validation_days: int, test_days: int) -> configs.PipelineConfig:
  """A run of the dataset spec with other window lengths, under OUT/name."""
  with open(config.local_path(config.dataset_spec)) as f:
    spec = yaml.safe_load(f)
  spec['split'].update(validation_days=validation_days, test_days=test_days)
  os.makedirs(out, exist_ok=True)
  path = os.path.join(out, f'{name}_dataset_spec.yaml')
  with open(path, 'w') as f:
    yaml.safe_dump(spec, f, sort_keys=False)
  return configs.load_config('', overrides + [f'output_dir={os.path.join(out, name)}',
                                              f'dataset_spec={os.path.abspath(path)}'])


def _prepared(config: configs.PipelineConfig) -> harness.RunData:
  """A run's ingestion and Transform (TFX's cache keeps them after the first time)."""
  try:
    return harness.RunData.latest(config)
  except FileNotFoundError:
    from pipeline import local_runner  # pylint: disable=g-import-not-at-top
    print(f'ingestion and Transform under {config.path(config.output_dir)}', flush=True)
    local_runner.run(config, data_only=True)
    return harness.RunData.latest(config)


def _day_events(pattern: str, out: str, day: str, split: ds.SplitSpec) -> str:
  """The events of one local day of an Examples split, in a file of their own."""
  start = split.day_start_ms(datetime.date.fromisoformat(day))
  end = split.day_start_ms(datetime.date.fromisoformat(day) + datetime.timedelta(days=1))
  path = os.path.join(out, 'days', f'{day}.gz')
  if os.path.exists(path):
    return path
  os.makedirs(os.path.dirname(path), exist_ok=True)
  kept = total = 0
  with tf.io.TFRecordWriter(path + '.partial', 'GZIP') as writer:
    for batch in example_files.record_batches(pattern):
      times = tf.io.parse_example(batch, {fnames.TIMESTAMP: tf.io.FixedLenFeature(
          [], tf.int64)})[fnames.TIMESTAMP].numpy()
      for record, moment in zip(batch.numpy(), times):
        total += 1
        if start <= moment < end:
          writer.write(record)
          kept += 1
  if not kept:
    raise ValueError(f'no event of {day} in {pattern}')
  os.rename(path + '.partial', path)
  print(f'{day}: {kept:,} of the {total:,} events of {pattern}', flush=True)
  return path


def _score_day(run: harness.RunData, queries: str, gate: str, refresh: str, full: str,
               stale_corpus: str, config: configs.PipelineConfig) -> dict:
  corpus = layout.split_pattern(run.item_corpus, layout.TEST)
  before = [layout.split_pattern(run.examples, s) for s in (layout.TRAIN, layout.VALIDATION)]
  scored = evaluation.evaluate(refresh, before, queries, corpus, config.evaluation)
  vs_full = evaluation.compare(refresh, full, queries, corpus, config.evaluation)
  vs_stale = evaluation.compare(refresh, gate, queries, corpus, config.evaluation,
                                baseline_corpus_pattern=stale_corpus)
  point = lambda result, system: {s: result['intervals'][system][s]
                                  for s in result['intervals'][system]}
  return {'queries': scored['queries'], 'ks': scored['ks'],
          'recall': {'stale': point(vs_stale, evaluation.PREVIOUS),
                     'refresh': point(scored, evaluation.MODEL),
                     'full': point(vs_full, evaluation.PREVIOUS),
                     'popular per scenario': point(scored,
                                                   evaluation.POPULAR_PER_SCENARIO)},
          'refresh_vs_full': point(vs_full, evaluation.CHANGE),
          'refresh_vs_stale': point(vs_stale, evaluation.CHANGE)}


def markdown(results: dict) -> str:
  """Per day: Recall@K per scenario of each arm, then the paired differences with 95%
  intervals; then the training wall times."""
  interval = lambda i: f'{i["point"]:+.4f} [{i["lower"]:+.4f}, {i["upper"]:+.4f}]'
  choice = results['choice']
  full = choice['scored']['full']
  scenarios = list(full['queries']) + ['all']
  lines = [f'**Choosing the refresh on {choice["day"]}** (gate 0 of the days .. 04-30, '
           f'refreshed with 05-01, {results["epochs"]} epoch; Recall@50; chosen: '
           f'{choice["chosen"]})', '',
           '| | ' + ' | '.join(f'tab {s} ({full["queries"][s]} q.)' if s != 'all'
                               else 'all' for s in scenarios) + ' | training |',
           '|' + '---|' * (len(scenarios) + 2)]
  for label, system in (('full retrain', evaluation.MODEL),
                        ('popular per scenario', evaluation.POPULAR_PER_SCENARIO)):
    lines.append(f'| {label} | ' + ' | '.join(
        f'{full["intervals"][system][s]["50"]["point"]:.4f}' for s in scenarios) + ' | |')
  for name in VARIANTS:
    result = choice['scored'][name]
    lines.append(f'| {name} | ' + ' | '.join(
        f'{result["intervals"][evaluation.MODEL][s]["50"]["point"]:.4f}'
        for s in scenarios) + f' | {result["seconds"]:.0f} s |')
    lines.append(f'| {name} - full retrain | ' + ' | '.join(
        interval(result['intervals'][evaluation.CHANGE][s]['50']) for s in scenarios) +
                 ' | |')
  lines.append('')
  for day, result in results['days'].items():
    scenarios = list(result['queries']) + ['all']
    lines += [f'**{day}** (scored day; the models saw the days before it)', '',
              '| | ' + ' | '.join(f'tab {s} ({result["queries"][s]} q.)' if s != 'all'
                                  else 'all' for s in scenarios) + ' |',
              '|' + '---|' * (len(scenarios) + 1)]
    for k in result['ks']:
      for arm in ARMS:
        lines.append(f'| {arm} @{k} | ' + ' | '.join(
            f'{result["recall"][arm][s][str(k)]["point"]:.4f}' for s in scenarios) + ' |')
      for label, key in DIFFERENCES:
        lines.append(f'| {label} @{k} | ' + ' | '.join(
            interval(result[key][s][str(k)]) for s in scenarios) + ' |')
    lines.append('')
  lines.append('Training wall time (2 cores): ' + ', '.join(
      f'{name} {value:.0f} s' for name, value in results['training_seconds'].items()) + '.')
  return '\n'.join(lines)


def plot(results: dict, path: str) -> None:
  """Recall@50 per scenario and day of each arm."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  days = list(results['days'])
  scenarios = list(results['days'][days[0]]['queries']) + ['all']
  figure, axes = plt.subplots(1, len(scenarios), figsize=(3.2 * len(scenarios), 3.2),
                              sharey=False)
  for axis, scenario in zip(axes, scenarios):
    for arm, marker in zip(ARMS, 'osD^'):
      values = [results['days'][d]['recall'][arm][scenario]['50'] for d in days]
      axis.errorbar(range(len(days)), [v['point'] for v in values],
                    yerr=[[v['point'] - v['lower'] for v in values],
                          [v['upper'] - v['point'] for v in values]],
                    marker=marker, capsize=3, label=arm)
    axis.set_xticks(range(len(days)), [d[5:] for d in days])
    axis.set_title(f'tab {scenario}' if scenario != 'all' else 'all scenarios')
  axes[0].set_ylabel('Recall@50 (95% interval)')
  axes[-1].legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=110)


if __name__ == '__main__':
  sys.exit(main())
