"""The reproduction's tables (Markdown and CSV) from its finished jobs.

Every number is a test-window Recall@K over the full corpus (the Evaluator's code), in
percent, as the mean ± sample standard deviation over seeds. Comparisons between two
models are paired over the test queries: each query's recall averaged over the seeds of
each model, the difference bootstrapped with the Evaluator's Poisson bootstrap
(retrieval/bootstrap.py, 1,000 resamples, 95% t interval); a difference is significant
when its interval excludes zero.
"""

import csv
import dataclasses
import json
import os
from typing import Optional

import numpy as np

from core import layout
from experiments import grid
from experiments import harness
from experiments import job as job_files
from experiments import scheduler
from retrieval import bootstrap
from retrieval import evaluation

KS = (50, 100)
RESAMPLES, CONFIDENCE, BOOTSTRAP_SEED = 1000, 0.95, 0


@dataclasses.dataclass
class Run:
  """One finished job: its scores, per-query recall, training summary and process record."""
  job: scheduler.Job
  scores: dict
  per_query: dict  # 'user_id', 'scenario', '<system>@<k>' arrays
  summary: dict
  record: dict

  @classmethod
  def load(cls, job: scheduler.Job) -> 'Run':
    with open(os.path.join(job.directory, job_files.SCORES_FILE)) as f:
      scores = json.load(f)
    with np.load(os.path.join(job.directory, job_files.PER_QUERY_FILE)) as arrays:
      per_query = {name: arrays[name] for name in arrays.files}
    record_path = os.path.join(job.directory, scheduler.RUN_FILE)
    record = json.load(open(record_path)) if os.path.exists(record_path) else {}
    return cls(job, scores, per_query,
               harness.training_summary(os.path.join(job.directory, job_files.MODEL_DIR)),
               record)

  def recall(self, scenario: str, k: int, system: str = evaluation.MODEL) -> float:
    return self.scores['recall'][system][scenario][str(k)]


Results = dict[tuple[str, str], list[Run]]  # (preset, variant name) -> runs over seeds


def collect(jobs: list[scheduler.Job]) -> Results:
  results: Results = {}
  for job in sorted(jobs, key=lambda j: j.seed):
    if not job.done:
      continue
    run = Run.load(job)
    for name in dict.fromkeys(name for _, name in job.names):  # a name of two experiments
      results.setdefault((job.preset, name), []).append(run)   # (DSMOE) counts once
  return results


def scenario_order(results: Results) -> list[str]:
  """The served scenarios by data share (the ingestion's mapping order), then 'all'."""
  run = next(iter(results.values()))[0]
  with open(os.path.join(run.job.directory, job_files.MODEL_DIR,
                         layout.FEATURE_SPACE_FILE)) as f:
    scenarios = json.load(f)['scenarios']
  return [s for s in scenarios if s in run.scores['queries']] + ['all']


def _mean_std(values) -> tuple[float, float]:
  values = np.asarray(values, np.float64)
  return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _cell(runs: list[Run], scenario: str, k: int) -> str:
  mean, std = _mean_std([100 * r.recall(scenario, k) for r in runs])
  return f'{mean:.2f} ± {std:.2f}'


def paired_difference(a: list[Run], b: list[Run], k: int) -> dict[str, bootstrap.Interval]:
  """Per scenario and 'all': interval of mean recall(a) - recall(b) over the test
  queries, each query's recall averaged over the seeds of each side."""
  for run in b:
    if not (np.array_equal(run.per_query['user_id'], a[0].per_query['user_id']) and
            np.array_equal(run.per_query['scenario'], a[0].per_query['scenario'])):
      raise ValueError(f'{run.job.label} was scored on other test queries than '
                       f'{a[0].job.label}: rerun both on the same data')
  key = f'{evaluation.MODEL}@{k}'
  difference = (np.mean([r.per_query[key] for r in a], axis=0) -
                np.mean([r.per_query[key] for r in b], axis=0))
  scenarios = a[0].per_query['scenario'].astype(str)
  weights = bootstrap.poisson_weights(len(difference), RESAMPLES, BOOTSTRAP_SEED)
  return bootstrap.grouped_intervals(difference, scenarios, weights, CONFIDENCE)


def _signed(interval: bootstrap.Interval) -> str:
  mark = '*' if interval.lower > 0 or interval.upper < 0 else ''
  return (f'{100 * interval.point:+.2f} [{100 * interval.lower:+.2f}, '
          f'{100 * interval.upper:+.2f}]{mark}')


def _header(scenarios: list[str], first: str, runs: list[Run]) -> list[str]:
  queries = runs[0].scores['queries']
  cells = []
  for s in scenarios:
    label = f'tab {s} ({queries[s]:,} q.)' if s != 'all' else 'all'
    cells += [f'{label} R@{k}' for k in KS]
  return [f'| {first} | ' + ' | '.join(cells) + ' |', '|' + '---|' * (len(cells) + 1)]


def _popularity_rows(runs: list[Run], scenarios: list[str]) -> list[str]:
  rows = []
  for system, label in ((evaluation.POPULAR, 'popular (overall)'),
                        (evaluation.POPULAR_PER_SCENARIO, 'popular per scenario')):
    rows.append(f'| {label} | ' + ' | '.join(
        f'{100 * runs[0].recall(s, k, system):.2f}' for s in scenarios for k in KS) + ' |')
  return rows


def comparison_table(results: Results, preset: str, names: list[str],
                     scenarios: list[str], first_column: str) -> str:
  """Rows `names` (those trained), popularity first, the best model of each column in
  bold."""
  rows = {n: results[(preset, n)] for n in names if (preset, n) in results}
  if not rows:
    return ''
  any_runs = next(iter(rows.values()))
  lines = _header(scenarios, first_column, any_runs) + _popularity_rows(any_runs, scenarios)
  best = {(s, k): max(rows, key=lambda n: np.mean([r.recall(s, k) for r in rows[n]]))
          for s in scenarios for k in KS}
  for name, runs in rows.items():
    cells = []
    for s in scenarios:
      for k in KS:
        cell = _cell(runs, s, k)
        cells.append(f'**{cell}**' if best[(s, k)] == name and len(rows) > 1 else cell)
    seeds = ','.join(str(r.job.seed) for r in runs)
    lines.append(f'| {name} (seeds {seeds}) | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def best_baseline_row(results: Results, preset: str, scenarios: list[str]) -> str:
  """DSMOE minus the best baseline of each column (by mean recall), paired over queries."""
  baselines = [n for n in grid.BASELINES if (preset, n) in results]
  if (preset, grid.DSMOE) not in results or not baselines:
    return ''
  dsmoe = results[(preset, grid.DSMOE)]
  cells = []
  for s in scenarios:
    for k in KS:
      best = max(baselines, key=lambda n: np.mean([r.recall(s, k)
                                                   for r in results[(preset, n)]]))
      interval = paired_difference(dsmoe, results[(preset, best)], k)[s]
      cells.append(f'{_signed(interval)} vs {best}')
  return '| DSMOE − best baseline | ' + ' | '.join(cells) + ' |'


def difference_rows(results: Results, preset: str, names: list[str], reference: str,
                    scenarios: list[str]) -> list[str]:
  if (preset, reference) not in results:
    return []
  lines = []
  for name in names:
    if name == reference or (preset, name) not in results:
      continue
    by_k = {k: paired_difference(results[(preset, name)], results[(preset, reference)], k)
            for k in KS}
    lines.append(f'| {name} − {reference} | ' + ' | '.join(
        _signed(by_k[k][s]) for s in scenarios for k in KS) + ' |')
  return lines


def table2(results: Results, preset: str, scenarios: list[str]) -> str:
  names = [v.name for v in grid.TABLE2]
  table = comparison_table(results, preset, names, scenarios, 'model')
  row = best_baseline_row(results, preset, scenarios)
  return table + ('\n' + row if row else '')


def table4(results: Results, preset: str, scenarios: list[str],
           lambda_names: list[str]) -> str:
  """The ablations (with each one's paired difference to DSMOE) and the distillation
  weight sweep (`lambda_names`: grid.lambda_variant names, lambda 0 = w/o distillation)."""
  ablations = [grid.DSMOE] + [v.name for v in grid.ABLATIONS]
  parts = []
  table = comparison_table(results, preset, ablations, scenarios, 'variant')
  if table:
    parts.append('\n'.join([table] + difference_rows(results, preset, ablations,
                                                      grid.DSMOE, scenarios)))
  table = comparison_table(results, preset, lambda_names, scenarios, 'distillation weight')
  if table:
    parts.append(table.replace('| w/o distillation (', '| lambda 0 = w/o distillation ('))
  return '\n\n'.join(parts)


def teachers(results: Results, preset: str, scenarios: list[str]) -> str:
  """DSMOE per teacher (grid.TEACHER_VARIANTS; DSMOE's is DCN-v2) with each one's paired
  difference to DSMOE, and each teacher's own validation AUC (where it stopped)."""
  names = [v.name for v in grid.TEACHER_VARIANTS]
  table = comparison_table(results, preset, names, scenarios, 'teacher of the student')
  if not table:
    return ''
  lines = [table] + difference_rows(results, preset, names, grid.DSMOE, scenarios)
  lines += ['', 'Teachers (validation AUC of the epoch kept, mean over seeds; the students '
                'above distil from them):']
  for name in names:
    runs = [r for r in results.get((preset, name), []) if r.summary.get('teacher')]
    if runs:
      aucs = [r.summary['teacher']['monitor']['best'] for r in runs]
      epochs = [r.summary['teacher']['epoch_kept'] for r in runs]
      teacher = 'DCN-v2' if name == grid.DSMOE else name.split(', ')[1]
      lines.append(f'- {teacher}: AUC {np.mean(aucs):.4f} (epochs kept '
                   f'{", ".join(map(str, epochs))})')
  return '\n'.join(lines)


def sweep_values(results: Results, preset: str, variants: tuple[grid.Variant, ...],
                 scenarios: list[str], seeds: list[int], k: int = 50) -> tuple[dict, str]:
  """({x: {scenario: (recall, below, above)}}, what the bars are) of a K or R sweep (x:
  the value after '=') over `seeds`: the mean and its standard deviation over seeds, or,
  with one seed, the run's recall and its 95% bootstrap interval over the test queries."""
  values, counts = {}, set()
  for variant in variants:
    runs = [r for r in results.get((preset, variant.name), []) if r.job.seed in seeds]
    if not runs:
      continue
    counts.add(len(runs))
    x = int(variant.name.split('=')[1])
    if len(runs) == 1:
      interval = lambda s: runs[0].scores['intervals'][evaluation.MODEL][s][str(k)]
      values[x] = {s: (interval(s)['point'], interval(s)['point'] - interval(s)['lower'],
                       interval(s)['upper'] - interval(s)['point']) for s in scenarios}
    else:
      values[x] = {s: (m, sd, sd) for s in scenarios
                   for m, sd in [_mean_std([r.recall(s, k) for r in runs])]}
  bars = ' and '.join(
      '95% bootstrap interval over the test queries of one seed' if n == 1 else
      f'mean ± std over {n} seeds' for n in sorted(counts))
  return values, bars


def table3(results: Results, preset: str, cost: dict) -> str:
  """Cost of each Table 2 model: static figures (experiments/cost.py, one process, one
  thread) and the grid's measured training (two jobs side by side, one thread each; the
  epoch times of runs that were not interrupted and resumed)."""
  lines = ['| model | parameters (towers) | MFLOPs / example (user + item) | step ms '
           '(same batch) | s / epoch | epochs kept | s to kept epoch | training s (all '
           'epochs) | peak memory MB |', '|' + '---|' * 9]
  for variant in grid.TABLE2:
    runs = results.get((preset, variant.name))
    static = cost.get(variant.name)
    if not runs or not static:
      continue
    runs = [r for r in runs if not _resumed(r.summary['student'])] or runs
    epoch_seconds = [_epoch_seconds(r.summary['student'], r.summary['rows_per_epoch'])
                     for r in runs]
    kept = [r.summary['student']['epoch_kept'] for r in runs]
    to_kept = [sum(s[:n]) for s, n in zip(epoch_seconds, kept)]
    training = [_student_seconds(r) for r in runs]
    peak = max(r.record.get('peak_rss_mb', float('nan')) for r in runs)
    teacher = ' + teacher' if static['distilled'] else ''
    lines.append(
        f'| {variant.name} | {static["parameters"]:,} | {static["user_mflops"]:.3f} + '
        f'{static["item_mflops"]:.3f} | {1000 * static["step_seconds"]:.0f} | '
        f'{np.mean([np.mean(s) for s in epoch_seconds]):.1f} | '
        f'{np.mean(kept):.1f} | {np.mean(to_kept):.0f}{teacher} | '
        f'{np.mean(training):.0f}{teacher} | {peak:.0f} |')
  teacher = cost.get('teacher')
  dsmoe = results.get((preset, grid.DSMOE))
  if teacher and dsmoe:
    phases = [r.summary['teacher'] for r in dsmoe if r.summary.get('teacher')]
    epochs = [_epoch_seconds(p, r.summary['rows_per_epoch']) for p, r in zip(phases, dsmoe)]
    lines.append(
        f'| teacher (DCN-v2, trained once per seed) | {teacher["parameters"]:,} | '
        f'{teacher["mflops"]:.3f} | {1000 * teacher["step_seconds"]:.0f} | '
        f'{np.mean([np.mean(e) for e in epochs]):.1f} | '
        f'{np.mean([p["epoch_kept"] for p in phases]):.1f} | '
        f'{np.mean([sum(e[:p["epoch_kept"]]) for e, p in zip(epochs, phases)]):.0f} | '
        f'{np.mean([sum(e) for e in epochs]):.0f} | |')
  return '\n'.join(lines)


def _resumed(phase: dict) -> bool:
  """A phase resumed after an interruption has epoch times of its last process only."""
  return len(phase['examples_per_second']) != phase['epochs_run']


def _epoch_seconds(phase: dict, rows_per_epoch: int) -> list[float]:
  return [rows_per_epoch / eps for eps in phase['examples_per_second']]


def _student_seconds(run: Run) -> float:
  return sum(_epoch_seconds(run.summary['student'], run.summary['rows_per_epoch']))


def write_csv(results: Results, path: str, scenarios: list[str]) -> None:
  """One row per (preset, variant, seed, scenario, K): recall with its bootstrap interval
  over queries, per-scenario popularity, epochs kept, training time and memory."""
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['preset', 'variant', 'experiments', 'seed', 'scenario', 'k', 'recall',
                     'lower', 'upper', 'popular_per_scenario', 'queries', 'teacher_epoch',
                     'student_epoch', 'training_seconds', 'peak_rss_mb', 'directory'])
    for (preset, name), runs in sorted(results.items()):
      for run in runs:
        experiments = ' '.join(sorted({e for e, n in run.job.names if n == name}))
        epochs = harness.kept_epochs(os.path.join(run.job.directory, job_files.MODEL_DIR))
        for scenario in scenarios:
          for k in KS:
            interval = run.scores['intervals'][evaluation.MODEL][scenario][str(k)]
            writer.writerow([
                preset, name, experiments, run.job.seed, scenario, k,
                f'{interval["point"]:.6f}', f'{interval["lower"]:.6f}',
                f'{interval["upper"]:.6f}',
                f'{run.recall(scenario, k, evaluation.POPULAR_PER_SCENARIO):.6f}',
                run.scores['queries'].get(scenario, sum(run.scores['queries'].values())),
                epochs.get('teacher', ''), epochs.get('student', ''),
                f'{run.summary["seconds"]:.1f}', f'{run.record.get("peak_rss_mb", 0):.0f}',
                os.path.relpath(run.job.directory)])


def paper_comparison(results: Results, preset: str, scenarios: list[str]) -> str:
  """The paper's Table 2/4 numbers beside this run's, scenarios in the same order (by data
  share): 'paper / ours' in percent."""
  lines = ['| model | ' + ' | '.join(f'K{i + 1} = tab {s} R@{k}' for i, s in
                                     enumerate(scenarios[:-1]) for k in KS) + ' |',
           '|' + '---|' * (2 * (len(scenarios) - 1) + 1)]
  for name, paper in {**grid.PAPER_TABLE2, **grid.PAPER_TABLE4}.items():
    runs = results.get((preset, name))
    cells = []
    for i, s in enumerate(scenarios[:-1]):
      for j, k in enumerate(KS):
        ours = f'{100 * np.mean([r.recall(s, k) for r in runs]):.2f}' if runs else '-'
        theirs = f'{paper[i][j]:.2f}' if i < len(paper) else '-'
        cells.append(f'{theirs} / {ours}')
    lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def load_cost(path: str) -> Optional[dict]:
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)
