"""The ranking stage on KuaiRand: every ranker's AUC and GAUC per scenario and task.

    python -m experiments.rankers [--seeds 42 43 44] [--variants MDL MTmixAtt ...]
                                  [--output-dir outputs] [--results-dir DIR] [--workers 2]
                                  [--set KEY=VALUE ...] [--quick] [--report-only]
                                  [--window test|validation]

1. Data: the pipeline's ingestion, validation and Transform (data_only; TFX's cache when
   `make run` ran with the same output directory). Exposures carry the dataset spec's
   ranking tasks (logs.tasks).
2. Jobs: each (variant, seed) trains with training/ranking.py (train window; early
   stopping on the validation window's mean AUC over the tasks) in a process of its own
   with one TensorFlow thread, `--workers` side by side, and scores the validation and
   the test window's raw exposures through the Transform graph. A finished job (its
   <window>_scores.npz exist) is not trained again.
3. Report of `--window`: results.md, results.csv, paired.md of the test window (the
   default), validation_results.md etc. of the validation window (to choose a variant
   without looking at the test window): per scenario and task, AUC and GAUC
   (users with both classes, exposure-weighted) as mean +- std over the seeds, next to
   the popularity baseline (each item's positive rate per task in the windows before the
   reported one, smoothed); and
   each ranker's paired difference to the popularity baseline and to MDL, bootstrapped
   over users (ranking/evaluation.py), on the seeds' mean scores.
"""

import argparse
import concurrent.futures
import csv
import datetime
import hashlib
import json
import multiprocessing
import os
import sys
import time

import numpy as np

from core import config as configs
from core import layout

QUICK = ('ranker.epochs=2', 'ranker.patience=1')
VARIANTS = {
    'shared-bottom': ('ranker.model=shared_bottom',),
    'MMoE': ('ranker.model=mmoe',),
    'RankMixer': ('ranker.model=rankmixer',),
    'MDL': ('ranker.model=mdl',),
    'MDL w/o task tokens': ('ranker.model=mdl', 'ranker.use_task_tokens=false'),
    'MDL w/o scenario tokens': ('ranker.model=mdl', 'ranker.use_scenario_tokens=false'),
    'MDL w/o global token': ('ranker.model=mdl', 'ranker.use_global_token=false'),
    'MDL w/o domain attention': ('ranker.model=mdl', 'ranker.use_domain_attention=false'),
    'MTmixAtt': ('ranker.model=mtmixatt',),
    'MDL w/o item outcomes': ('ranker.model=mdl', 'ranker.item_outcome_features=false'),
    'MDL w/o history attention': ('ranker.model=mdl', 'ranker.history_attention=false'),
    'MDL as in the paper': ('ranker.model=mdl', 'ranker.item_outcome_features=false',
                            'ranker.history_attention=false'),
    'MMoE w/o item outcomes': ('ranker.model=mmoe', 'ranker.item_outcome_features=false'),
    'MMoE w/o history attention': ('ranker.model=mmoe', 'ranker.history_attention=false'),
    'MMoE as in the paper': ('ranker.model=mmoe', 'ranker.item_outcome_features=false',
                             'ranker.history_attention=false'),
}
WINDOWS = (layout.VALIDATION, layout.TEST)  # the windows every job scores


def scores_file(directory: str, window: str) -> str:
  return os.path.join(directory, f'{window}_scores.npz')
POPULARITY = 'popularity'
WEIGHTS = 'weights/ranker'  # Keras checkpoint prefix of a job's kept epoch
REFERENCE = 'MDL'


def job_directory(results_dir: str, name: str, config: configs.PipelineConfig,
                  data_dict: dict) -> str:
  """runs/seed<seed>/<name>-<fingerprint of the ranker, transform and model sections and
  of the data (the run's artifacts and dataset spec, tasks in their order)>: a job's scores
  are never paired with another run's exposures."""
  fingerprint = hashlib.sha256((configs.section_to_json(config.ranker) +
                                configs.section_to_json(config.transform) +
                                configs.section_to_json(config.model) +
                                json.dumps(data_dict, sort_keys=True)).encode()).hexdigest()
  slug = name.replace(' ', '_').replace('/', '_')
  return os.path.join(results_dir, 'runs', f'seed{config.training.seed}',
                      f'{slug}-{fingerprint[:10]}')


def _space(data, config: configs.PipelineConfig):
  """The rankers' FeatureSpace (training/ranking.feature_space), from one run's data."""
  import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top
  from core import schemas  # pylint: disable=g-import-not-at-top
  from core.scenario_mapping import ScenarioMapping  # pylint: disable=g-import-not-at-top
  from training import ranking  # pylint: disable=g-import-not-at-top
  tft_output = tft.TFTransformOutput(data.transform_graph)
  space = ranking.feature_space(data.spec, tft_output, config.transform.num_oov_buckets,
                                ScenarioMapping.load(data.scenario_mapping).values,
                                schemas.read(os.path.join(data.schema, 'schema.pbtxt')),
                                config.ranker.item_outcome_features)
  return space, tft_output


def run_job(directory: str, data_dict: dict, overrides: list) -> str:
  """Trains and scores one (variant, seed) into `directory` (in a worker process)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  from experiments import harness  # pylint: disable=g-import-not-at-top
  from training import ranking  # pylint: disable=g-import-not-at-top
  harness.show_progress()
  data = harness.RunData.from_dict(data_dict)
  config = configs.load_config('', overrides)
  tasks = data.spec.logs.task_names
  space, tft_output = _space(data, config)
  started = time.time()
  model, summary = ranking.train_ranker(
      config.ranker, config.training.seed, space, tasks, tft_output,
      layout.split_pattern(data.transformed_examples, layout.TRAIN),
      layout.split_pattern(data.transformed_examples, layout.VALIDATION),
      os.path.join(directory, 'work'))
  summary['train_seconds'] = time.time() - started
  scored = {window: ranking.score_raw(model, tft_output, space,
                                      layout.split_pattern(data.examples, window), tasks)
            for window in WINDOWS}
  summary['wall_seconds'] = time.time() - started
  summary['overrides'] = list(overrides)
  summary['data'] = data_dict  # the run it trained on (figures rebuild the model on it)
  summary['test_exposures'] = int(len(scored[layout.TEST].probabilities))
  model.save_weights(os.path.join(directory, WEIGHTS))
  with open(os.path.join(directory, 'summary.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  for window, window_scores in scored.items():
    np.savez_compressed(scores_file(directory, window),
                        probabilities=window_scores.probabilities)
  return directory


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--seeds', type=int, nargs='+', default=[42, 43, 44])
  parser.add_argument('--variants', nargs='+', choices=list(VARIANTS), default=list(VARIANTS))
  parser.add_argument('--output-dir', default='outputs')
  parser.add_argument('--results-dir', default='outputs/experiments/rankers')
  parser.add_argument('--workers', type=int, default=2)
  parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE')
  parser.add_argument('--quick', action='store_true', help='2 epochs: checks the outputs')
  parser.add_argument('--report-only', action='store_true',
                      help='train nothing: the report of the finished jobs')
  parser.add_argument('--window', choices=WINDOWS, default=layout.TEST,
                      help='the window reported (validation: to choose a variant)')
  args = parser.parse_args(argv)
  started = time.time()
  from experiments import harness  # pylint: disable=g-import-not-at-top
  from pipeline import local_runner  # pylint: disable=g-import-not-at-top
  base = [f'output_dir={args.output_dir}'] + list(QUICK if args.quick else ()) + args.set
  config = configs.load_config('', base)
  results_dir = config.path(args.results_dir)
  os.makedirs(results_dir, exist_ok=True)
  local_runner.configure_logging(os.path.join(config.path(config.output_dir), 'logs'),
                                 verbose=False)
  local_runner.run(config, data_only=True)
  data = harness.RunData.latest(config)
  print(f'data ready in {time.time() - started:.0f} s', flush=True)
  jobs = {}
  for seed in args.seeds:
    for name in args.variants:
      overrides = base + list(VARIANTS[name]) + [f'training.seed={seed}']
      directory = job_directory(results_dir, name, configs.load_config('', overrides),
                                data.to_dict())
      jobs[(name, seed)] = (directory, overrides)
  todo = [(d, o) for d, o in jobs.values()
          if not all(os.path.exists(scores_file(d, w)) for w in WINDOWS)]
  if args.report_only and todo:
    raise SystemExit(f'error: {len(todo)} jobs not finished; run without --report-only')
  print(f'{len(jobs)} jobs, {len(todo)} to train with {args.workers} workers', flush=True)
  context = multiprocessing.get_context('spawn')
  with concurrent.futures.ProcessPoolExecutor(args.workers, mp_context=context) as pool:
    futures = {}
    for directory, overrides in todo:
      os.makedirs(directory, exist_ok=True)
      futures[pool.submit(run_job, directory, data.to_dict(), overrides)] = directory
    for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
      future.result()
      print(f'  [{done}/{len(todo)}] {futures[future]}; '
            f'{(time.time() - started) / 60:.0f} min so far', flush=True)
  grid_seconds = time.time() - started
  report(data, jobs, args, results_dir, grid_seconds)
  return 0


def report(data, jobs: dict, args, results_dir: str, grid_seconds: float) -> None:
  """results.md and results.csv from the finished jobs."""
  from ranking import exposures  # pylint: disable=g-import-not-at-top
  from ranking import evaluation  # pylint: disable=g-import-not-at-top
  from ranking import report as ranking_report  # pylint: disable=g-import-not-at-top
  from training import ranking  # pylint: disable=g-import-not-at-top
  tasks = data.spec.logs.task_names
  window = args.window
  test = exposures.read(layout.split_pattern(data.examples, window), tasks)
  history = (layout.TRAIN, layout.VALIDATION)[:1 + (window == layout.TEST)]  # before it
  before = [exposures.read(layout.split_pattern(data.examples, w), tasks) for w in history]
  popularity = evaluation.popularity_scores(
      np.concatenate([b.items for b in before]), np.concatenate([b.labels for b in before]),
      test.items)
  per_seed, summaries = {}, {}
  for (name, seed), (directory, _) in jobs.items():
    with np.load(scores_file(directory, window)) as scores:
      per_seed.setdefault(name, {})[seed] = scores['probabilities']
    with open(os.path.join(directory, 'summary.json')) as f:
      summaries[(name, seed)] = json.load(f)
    if (summaries[(name, seed)]['tasks'] != list(tasks) or
        per_seed[name][seed].shape != test.labels.shape):
      raise SystemExit(f'error: {directory} scored other exposures or tasks than this '
                       f'run\'s {window} window; delete it to train again')
  def point(result, system, scenario, task, metric):
    value = result['metrics'][system][scenario][task][metric]
    return None if value is None else value['point']
  seeds_results = {}
  for seed in args.seeds:
    systems = {POPULARITY: popularity}
    systems.update({name: per_seed[name][seed] for name in per_seed})
    seeds_results[seed] = evaluation.evaluate(systems, test.labels, test.scenarios,
                                              test.users, tasks, resamples=2)
  first = {POPULARITY: popularity}
  first.update({name: per_seed[name][args.seeds[0]] for name in per_seed})
  paired = [evaluation.evaluate(first, test.labels, test.scenarios, test.users, tasks,
                                reference=reference)
            for reference in (POPULARITY, REFERENCE) if reference in first]
  scenarios = sorted(set(test.scenarios.tolist())) + ['all']
  rows, lines = [], []
  names = [POPULARITY] + list(per_seed)
  for metric in ('auc', 'gauc'):
    lines += [f'\n### {metric.upper()} on the {window} window (mean ± std over seeds '
              f'{", ".join(map(str, args.seeds))})\n',
              '| scenario | task | ' + ' | '.join(names) + ' |',
              '|---|---|' + '---|' * len(names)]
    for scenario in scenarios:
      for task in tasks:
        cells = []
        for name in names:
          by_seed = [(s, point(seeds_results[s], name, scenario, task, metric))
                     for s in args.seeds]
          values = [v for _, v in by_seed if v is not None]
          rows += [{'metric': metric, 'scenario': scenario, 'task': task, 'system': name,
                    'seed': s, 'value': v} for s, v in by_seed if v is not None]
          cells.append(f'{100 * np.mean(values):.2f} ± {100 * np.std(values):.2f}'
                       if values else 'n/a')
        lines.append(f'| {scenario} | {task} | ' + ' | '.join(cells) + ' |')
  prefix = '' if window == layout.TEST else f'{window}_'  # the test report keeps its names
  with open(os.path.join(results_dir, f'{prefix}results.csv'), 'w', newline='') as f:
    writer = csv.DictWriter(f, ['metric', 'scenario', 'task', 'system', 'seed', 'value'])
    writer.writeheader()
    writer.writerows(rows)
  cost = ['| ranker | parameters | epochs kept / run | train s (mean) | examples/s |',
          '|---|---|---|---|---|']
  for name in per_seed:
    runs = [summaries[(name, s)] for s in args.seeds]
    cost.append(f'| {name} | {runs[0]["parameters"]:,} | '
                + ', '.join(f'{r["epoch_kept"]}/{r["epochs_run"]}' for r in runs)
                + f' | {np.mean([r["train_seconds"] for r in runs]):.0f} | '
                f'{np.mean([np.mean(r["examples_per_second"]) for r in runs]):,.0f} |')
  text = '\n'.join([
      '# Rankers on KuaiRand-Pure (experiments/rankers.py)', '',
      f'{datetime.datetime.now().isoformat(timespec="seconds")}; '
      f'{os.cpu_count()} cores; {len(jobs)} jobs; {grid_seconds / 60:.0f} min wall.',
      f'{window.capitalize()} window: {len(test.users):,} exposures of '
      f'{len(set(test.users.tolist())):,} users. AUC over exposures; GAUC: mean of the '
      f'users\' AUCs (users with both classes), weighted by their exposures. Popularity: '
      f'each item\'s positive rate per task over the windows before it '
      f'({", ".join(history)}), '
      f'smoothed toward the task\'s rate.',
      *lines, '', '### Training', '', *cost, '',
      f'### Paired differences over all scenarios, seed {args.seeds[0]}', '',
      'AUC difference in points, 95% Poisson bootstrap over users (paired: the same '
      'resampled users for both); * = the interval excludes 0. Every scenario and GAUC: '
      'paired.md.', '', *_difference_table(paired, tasks)])
  with open(os.path.join(results_dir, f'{prefix}results.md'), 'w') as f:
    f.write(text + '\n')
  with open(os.path.join(results_dir, f'{prefix}paired.md'), 'w') as f:
    f.write('\n'.join(ranking_report.format_table(result) + '\n' for result in paired))
  print(text)


def _difference_table(paired: list, tasks) -> list[str]:
  """Rows: systems; columns: each task's AUC difference to each reference, scenario 'all'."""
  columns = [(result, task) for result in paired for task in tasks]
  lines = ['| ranker | ' + ' | '.join(f'{t} − {r["reference"]}' for r, t in columns) + ' |',
           '|---|' + '---|' * len(columns)]
  systems = [s for s in paired[0]['systems'] if s != paired[0]['reference']]
  for system in systems:
    cells = []
    for result, task in columns:
      key = f'{system}_minus_{result["reference"]}'
      value = result['differences'].get(key, {}).get('all', {}).get(task, {}).get('auc')
      if value is None or value['lower'] is None:
        cells.append('')
        continue
      star = '*' if value['lower'] > 0 or value['upper'] < 0 else ''
      cells.append(f'{100 * value["point"]:+.2f} [{100 * value["lower"]:+.2f}, '
                   f'{100 * value["upper"]:+.2f}]{star}')
    lines.append(f'| {system} | ' + ' | '.join(cells) + ' |')
  return lines


if __name__ == '__main__':
  sys.exit(main())
