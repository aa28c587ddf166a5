"""Reproduces the DSMOE paper's experiments on the bundled data: tables and figures.

    make experiments [ARGS="..."]
    python -m experiments.reproduce [--quick] [--seeds 42 43 44] [--workers 2]
        [--experiments table2 table4 experts rank teachers] [--variants NAME ...]
        [--table2-presets paper default]
        [--sweep-presets paper] [--output-dir outputs] [--results-dir DIR]
        [--set KEY=VALUE ...] [--report-only] [--docs DIR]

1. Data: the pipeline's ingestion, validation and Transform (`pipeline.local_runner`
   with data_only) under --output-dir; with the same output directory as `make run`
   they come from its cache, so nothing is ingested twice. The results directory
   records (data.json) which artifacts its jobs train on and keeps using them.
2. Jobs (experiments/grid.py, experiments/scheduler.py): every variant of the chosen
   experiments, per preset and seed, trained by the Trainer's run_fn with its protocol
   (early stopping on the validation window, the best epoch kept), then scored once on
   the test window by the Evaluator's code. `--workers` jobs run side by side (one
   TensorFlow thread each). A finished (configuration, seed) is never trained again: a
   second call resumes where the first stopped, and `--report-only` trains nothing.
3. Cost (experiments/cost.py): parameters, FLOPs and step time of every model of Table
   2, in a process of its own once the jobs are done.
4. Report (RESULTS_DIR): results.md (every table, the paper's numbers beside ours, the
   run's date, machine, commit and wall time), results.csv (one row per preset, variant,
   seed, scenario and K), table2_<preset>.md, table3.md, table4_<preset>.md,
   fig2_experts_<preset>.png, fig3_rank_<preset>.png, fig4_case_study_<preset>.png,
   teachers_<preset>.md (beyond the paper: DSMOE distilled from each teacher).
   The command fails when a table or figure it should have written is missing.
   --docs DIR copies the report and figures there (the README's Results come from it).

--quick: the fixture data (1,394 rows) with 8 of its features, one seed, at most 2
student and 1 teacher epochs, one baseline and one point per sweep: a check, in CI, that
every table and figure is produced (its numbers mean nothing).
Nothing is chosen on the test window: the test numbers are only reported.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from typing import Optional

import yaml

from core import config as configs
from core import dataset_spec as ds
from core import layout
from core import schemas
from experiments import figures
from experiments import grid
from experiments import harness
from experiments import inspect as case_study
from experiments import job as job_files
from experiments import scheduler
from experiments import tables
from retrieval import evaluation

FIXTURE_DIR = 'tests/testdata/kuairand_fixture'
# --quick: a few of KuaiRand's features (the Transform builds 8 vocabularies, not 36).
QUICK_FEATURES = ('user_active_degree', 'follow_user_num', 'fans_user_num_range',
                  'onehot_feat0', 'author_id', 'video_type', 'video_duration', 'tag')
QUICK_TRAINING = ('training.epochs=2', 'training.patience=1',
                  'distillation.teacher_epochs=1', 'evaluation.bootstrap_resamples=200')
EXPERIMENTS = ('table2', 'table4', 'experts', 'rank', 'teachers')


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--quick', action='store_true',
                      help='fixture data, one seed, 2 epochs: checks every output')
  parser.add_argument('--seeds', type=int, nargs='+',
                      help='seeds of Tables 2 and 4 (default 42 43 44)')
  parser.add_argument('--sweep-seeds', type=int, nargs='+',
                      help='seeds of the K and R sweeps (default: the first seed)')
  parser.add_argument('--workers', type=int, default=2)
  parser.add_argument('--experiments', nargs='+', choices=EXPERIMENTS, default=EXPERIMENTS)
  parser.add_argument('--variants', nargs='+', metavar='NAME',
                      help='only the variants of these names (as in the tables), e.g. '
                           '"DSMOE, MDL teacher"')
  parser.add_argument('--table2-presets', nargs='+', choices=list(grid.PRESETS),
                      default=list(grid.PRESETS))
  parser.add_argument('--sweep-presets', nargs='+', choices=list(grid.PRESETS),
                      default=['paper'], help='presets of Table 4 and the K and R sweeps')
  parser.add_argument('--output-dir', help="the pipeline outputs holding the data "
                      "(default: make run's outputs; --quick: outputs/experiments/quick)")
  parser.add_argument('--results-dir')
  parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                      help='a config change for the data and every variant')
  parser.add_argument('--report-only', action='store_true',
                      help='train nothing: the report of the jobs finished so far')
  parser.add_argument('--docs', help='copy the report and figures to this directory')
  args = parser.parse_args(argv)
  started = time.time()
  experiments = {name: tuple(v for v in variants
                             if not args.variants or v.name in args.variants)
                 for name, variants in grid.experiment_variants(args.quick).items()
                 if name in args.experiments}
  experiments = {name: variants for name, variants in experiments.items() if variants}
  if not experiments:
    print(f'error: no variant of {", ".join(args.experiments)} is named '
          f'{", ".join(args.variants)}', file=sys.stderr)
    return 2
  seeds = args.seeds or ([42] if args.quick else [42, 43, 44])
  sweep_seeds = args.sweep_seeds or seeds[:1]
  output_dir = args.output_dir or ('outputs/experiments/quick' if args.quick else 'outputs')
  results_dir = configs.load_config().path(
      args.results_dir or os.path.join('outputs', 'experiments',
                                       'quick_report' if args.quick else 'reproduction'))
  data_overrides = [f'output_dir={output_dir}'] + (
      _quick_data(output_dir) if args.quick else []) + args.set
  base = data_overrides + (list(QUICK_TRAINING) if args.quick else [])
  data_config = configs.load_config('', data_overrides)
  _check_data(results_dir, data_config)
  presets = {name: args.table2_presets if name == 'table2' else args.sweep_presets
             for name in experiments}
  jobs = scheduler.plan(results_dir, base, experiments, presets, {
      name: sweep_seeds if name in ('experts', 'rank') else seeds for name in experiments})
  failed = {}
  if not args.report_only:
    failed = scheduler.run(jobs, _pinned_data(results_dir, data_config), args.workers)
  grid_seconds = time.time() - started
  results = tables.collect(jobs)
  if not results:
    print('error: no job has finished yet; run without --report-only', file=sys.stderr)
    return 1
  cost = None
  if 'table2' in experiments:
    cost = _cost(results, results_dir, base, args.table2_presets[0], experiments['table2'],
                 args.report_only)
  run_records = [os.path.join(j.directory, scheduler.RUN_FILE) for j in jobs]
  written, missing = report(results, jobs, experiments, presets, cost, results_dir, {
      'date': datetime.datetime.now().isoformat(timespec='seconds'),
      'machine': _machine(), 'commit': _commit(), 'seeds': seeds,
      'sweep_seeds': sweep_seeds, 'workers': args.workers, 'quick': args.quick,
      'wall_seconds': None if args.report_only else grid_seconds,
      'job_seconds': sum(json.load(open(path))['wall_seconds'] for path in run_records
                         if os.path.exists(path)),
      'jobs': len(jobs), 'jobs_done': sum(j.done for j in jobs)})
  unfinished = [j.label for j in jobs if not j.done]
  print(f'\nreport: {os.path.join(results_dir, "results.md")} ({len(written)} files); '
        f'{time.time() - started:.0f} s')
  if args.docs:
    os.makedirs(args.docs, exist_ok=True)
    for path in written:
      shutil.copy(path, args.docs)
  for label in unfinished:
    print(f'not finished: {label}', file=sys.stderr)
  for directory, error in failed.items():
    print(f'failed: {directory}: {error}', file=sys.stderr)
  for name in missing:
    print(f'missing: {name} (nothing to put in it)', file=sys.stderr)
  if missing or unfinished or failed:
    print(f'error: {len(unfinished)} jobs not finished, {len(failed)} failed, '
          f'{len(missing)} outputs missing', file=sys.stderr)
    return 1
  return 0


def _check_data(results_dir: str, config: configs.PipelineConfig) -> None:
  """Jobs are keyed by their configuration, not by the data: a results directory serves
  one dataset. Its data.json records which (the data files' contents, the dataset spec,
  the ingestion and Transform settings); another dataset is refused."""
  spec = ds.DatasetSpec.from_yaml(config.local_path(config.dataset_spec)).to_dict()
  spec['logs'].pop('tasks', None)  # the rankers' labels: no retrieval model reads them
  data = {'data_dir': config.data_dir,
          'files': layout.directory_fingerprint(config.path(config.data_dir)),
          'dataset_spec': spec,
          'ingestion': json.loads(configs.section_to_json(config.ingestion)),
          'transform': json.loads(configs.section_to_json(config.transform))}
  path = os.path.join(results_dir, 'data.json')
  if os.path.exists(path):
    with open(path) as f:
      recorded = json.load(f)
    recorded.pop('artifacts', None)
    if recorded != json.loads(json.dumps(data)):
      differs = [k for k in data if recorded.get(k) != json.loads(json.dumps(data[k]))]
      raise SystemExit(f'error: {results_dir} holds jobs trained on other data (its '
                       f'{", ".join(differs)} differ): pass another --results-dir, or '
                       f'delete it to train again')
    return
  os.makedirs(results_dir, exist_ok=True)
  with open(path, 'w') as f:
    json.dump(data, f, indent=2)


def _pinned_data(results_dir: str, config: configs.PipelineConfig) -> harness.RunData:
  """The ingestion and Transform artifacts every job of the results directory trains on:
  those its data.json records when they still exist, else the pipeline's (run now, from
  TFX's cache when nothing changed), recorded there. A Transform run again (after a code
  change, or by `make run` in the same outputs) can differ in the last float digits
  (tf.Transform's mean and variance sum in no fixed order), so a grid keeps its own."""
  path = os.path.join(results_dir, 'data.json')
  with open(path) as f:
    recorded = json.load(f)
  pinned = recorded.get('artifacts')
  if pinned and all(os.path.exists(v) for k, v in pinned.items() if k != 'spec'):
    print(f'data: the artifacts recorded in {path}', flush=True)
    return harness.RunData.from_dict(pinned)
  _prepare_data(config)
  data = harness.RunData.latest(config)
  recorded['artifacts'] = data.to_dict()
  with open(path, 'w') as f:
    json.dump(recorded, f, indent=2)
  return data


def _quick_data(output_dir: str) -> list[str]:
  """Overrides for the fixture with QUICK_FEATURES only: that dataset spec and the
  curated schemas without the other features, written under output_dir/quick_spec."""
  defaults = configs.load_config('', [f'output_dir={output_dir}'])
  spec = ds.DatasetSpec.from_yaml(defaults.local_path(defaults.dataset_spec))
  small = spec.with_features(QUICK_FEATURES)
  directory = os.path.join(defaults.path(output_dir), 'quick_spec')
  os.makedirs(directory, exist_ok=True)
  overrides = [f'data_dir={FIXTURE_DIR}']
  with open(os.path.join(directory, 'dataset_spec.yaml'), 'w') as f:
    yaml.safe_dump(json.loads(small.to_json()), f, sort_keys=False)
  overrides.append(f'dataset_spec={os.path.join(directory, "dataset_spec.yaml")}')
  left_out = set(spec.feature_names) - set(small.feature_names)
  for key in ('events_schema', 'item_corpus_schema'):
    path = os.path.join(directory, os.path.basename(getattr(defaults, key)))
    schemas.write(schemas.without_features(
        schemas.read(defaults.local_path(getattr(defaults, key))), left_out), path)
    overrides.append(f'{key}={path}')
  return overrides


def _prepare_data(config: configs.PipelineConfig) -> None:
  """Ingestion, validation and Transform (cached by TFX when they ran before)."""
  from pipeline import local_runner  # pylint: disable=g-import-not-at-top
  log = local_runner.configure_logging(os.path.join(config.path(config.output_dir), 'logs'),
                                       verbose=False)
  started = time.time()
  print(f'data: ingestion and Transform of {config.path(config.data_dir)} under '
        f'{config.path(config.output_dir)} (log {log})', flush=True)
  local_runner.run(config, data_only=True)
  print(f'data ready in {time.time() - started:.0f} s', flush=True)


def _cost(results: tables.Results, results_dir: str, base: list[str], preset: str,
          variants: tuple[grid.Variant, ...], report_only: bool) -> dict:
  """experiments/cost.py's figures for Table 2's models under `preset` (measured once),
or None when there are none (yet)."""
  path = os.path.join(results_dir, f'cost_{preset}.json')
  runs = [runs[0] for (p, _), runs in results.items() if p == preset]
  if os.path.exists(path) or report_only or not runs:
    return tables.load_cost(path)
  any_run = runs[0]
  request = {'feature_space': os.path.join(any_run.job.directory, job_files.MODEL_DIR,
                                           layout.FEATURE_SPACE_FILE),
             'preset': grid.PRESETS[preset], 'overrides': base,
             'variants': [[v.name, list(v.overrides)] for v in variants],
             'threads': 1, 'output': path}
  request_path = os.path.join(results_dir, f'cost_{preset}_request.json')
  with open(request_path, 'w') as f:
    json.dump(request, f, indent=2)
  print('measuring the cost of every model (experiments/cost.py)', flush=True)
  with open(os.path.join(results_dir, f'cost_{preset}_log.txt'), 'w') as log:
    subprocess.run([sys.executable, '-m', 'experiments.cost', request_path], check=True,
                   stdout=log, stderr=subprocess.STDOUT, cwd=configs.REPO_ROOT,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
  return tables.load_cost(path)


def report(results: tables.Results, jobs: list[scheduler.Job], experiments: dict,
           presets: dict, cost: Optional[dict], results_dir: str,
           info: dict) -> tuple[list[str], list[str]]:
  """Writes every table, figure and results.md; returns (paths written, names of the
  outputs that should be there but have nothing to show yet)."""
  os.makedirs(results_dir, exist_ok=True)
  scenarios = tables.scenario_order(results)
  written, missing, sections = [], [], []

  def write(name: str, text: str) -> str:
    if not text.strip():
      missing.append(name)
      return '(nothing yet)'
    path = os.path.join(results_dir, name)
    with open(path, 'w') as f:
      f.write(text + '\n')
    written.append(path)
    return text

  popularity = next(iter(results.values()))[0]
  for preset in presets.get('table2', []):
    sections.append(f'## Table 2: Recall@K per scenario, {preset} preset\n\n' +
                    write(f'table2_{preset}.md', tables.table2(results, preset, scenarios)))
  if 'table2' in presets and 'paper' in presets['table2']:
    sections.append('## The paper\'s numbers beside ours (paper / ours, %)\n\n' +
                    tables.paper_comparison(results, 'paper', scenarios))
  if 'table2' in presets:
    preset = presets['table2'][0]
    sections.append(f'## Table 3: cost, {preset} preset\n\n' + write(
        'table3.md', tables.table3(results, preset, cost) if cost else ''))
  for preset in presets.get('table4', []):
    lambdas = [grid.lambda_variant(0).name] + [
        v.name for v in experiments['table4'] if v.name.startswith('lambda')]
    sections.append(f'## Table 4: ablations and distillation weight, {preset} preset\n\n' +
                    write(f'table4_{preset}.md',
                          tables.table4(results, preset, scenarios, lambdas)))
  for preset in presets.get('teachers', []):
    sections.append(f'## Teachers (beyond the paper): DSMOE distilled from each, {preset} '
                    f'preset\n\n' + write(f'teachers_{preset}.md',
                                          tables.teachers(results, preset, scenarios)))
  for experiment, figure, xlabel, log2 in (('experts', 'fig2_experts', 'experts K', False),
                                           ('rank', 'fig3_rank', 'SAP rank R', True)):
    heading = 'Figure 2: experts K' if experiment == 'experts' else 'Figure 3: SAP rank R'
    for preset in presets.get(experiment, []):
      name = f'{figure}_{preset}.png'
      values, bars = tables.sweep_values(results, preset, experiments[experiment],
                                         scenarios, info['sweep_seeds'])
      if not values:
        missing.append(name)
        continue
      figures.sweep_figure(
          values,
          {s: popularity.recall(s, 50, evaluation.POPULAR_PER_SCENARIO) for s in scenarios},
          scenarios, xlabel, os.path.join(results_dir, name), f'DSMOE, {preset} preset: '
          f'test Recall@50 against {xlabel} ({bars})', log2=log2)
      written.append(os.path.join(results_dir, name))
      sections.append(f'## {heading}, {preset} preset\n\n![{figure} {preset}]({name})')
  for preset in dict.fromkeys(sum((presets[e] for e in presets), [])):
    runs = results.get((preset, grid.DSMOE))
    name = f'fig4_case_study_{preset}.png'
    if not (runs and runs[0].summary.get('scenario_profile')):
      missing.append(name)
      continue
    case_study.case_study_figure(runs[0].summary['scenario_profile'],
                                 os.path.join(results_dir, name),
                                 f'DSMOE, {preset} preset, seed {runs[0].job.seed}')
    written.append(os.path.join(results_dir, name))
    sections.append(f'## Figure 4: case study, {preset} preset (seed {runs[0].job.seed})'
                    f'\n\n![case study]({name})\n\n```\n'
                    f'{case_study.describe(runs[0].summary["scenario_profile"])}\n```')
  csv_path = os.path.join(results_dir, 'results.csv')
  tables.write_csv(results, csv_path, scenarios)
  written.append(csv_path)
  write('results.md', _head(info, results) + '\n\n' + '\n\n'.join(sections))
  with open(os.path.join(results_dir, 'run_info.json'), 'w') as f:
    json.dump(info, f, indent=2)
  return written, missing


def _head(info: dict, results: tables.Results) -> str:
  wall = (f'{info["wall_seconds"] / 60:.0f} min' if info['wall_seconds'] is not None
          else 'not measured (report only)')
  codes = {r.job.code for runs in results.values() for r in runs}
  return (
      f'# DSMOE on KuaiRand-Pure: the paper\'s experiments\n\n'
      f'Run {info["date"]} on {info["machine"]}, commit {info["commit"]}; seeds '
      f'{", ".join(map(str, info["seeds"]))} (K and R sweeps: '
      f'{", ".join(map(str, info["sweep_seeds"]))}); {info["jobs_done"]} of {info["jobs"]} '
      f'jobs finished; this call\'s wall time {wall} with {info["workers"]} workers (the '
      f'jobs\' own wall times add up to {info["job_seconds"] / 60:.0f} min); the jobs ran '
      f'{len(codes)} version{"s" if len(codes) > 1 else ""} of the code'
      f'{"; QUICK MODE (fixture data, 2 epochs): a check, not results" if info["quick"] else ""}'
      '.\n\nTest window Recall@K over the full corpus in %, mean ± std over seeds; **bold**: '
      'best of the column. Differences (a − b) are paired over the test queries (each '
      'query\'s recall averaged over seeds), 95% Poisson-bootstrap interval, * = '
      'significant; DSMOE is compared with the baseline that is best on the test window in '
      'each column (the hardest comparison; a report, not a choice). Early stopping and '
      'every choice used the validation window only.')


def _machine() -> str:
  cpu = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      cpu = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
  except (OSError, StopIteration):
    pass
  memory = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2 ** 30
  return f'{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, Python {platform.python_version()}'


def _commit() -> str:
  try:
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True,
                            text=True, cwd=configs.REPO_ROOT, check=True).stdout.strip()
    dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                           capture_output=True, text=True, cwd=configs.REPO_ROOT).stdout
    return commit + (' (with uncommitted changes)' if dirty.strip() else '')
  except (OSError, subprocess.CalledProcessError):
    return 'unknown'


if __name__ == '__main__':
  sys.exit(main())
