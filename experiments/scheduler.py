"""Plans the reproduction's training jobs and runs them, a few processes at a time.

A job is one configuration (preset + overrides) and seed, in its own directory keyed by
the configuration's fingerprint (experiments/harness.py), so two names for the same
configuration (lambda 1 and DSMOE, say) train once. Distilled jobs of one seed and one
teacher configuration share a teacher: the first of them (DSMOE when it is among them)
trains it, the others wait for it and distil from it.

Each job runs `python -m experiments.job DIR` with one TensorFlow thread: the models are
too small for a second thread to help (measured: one job uses 96% of one core with two
threads), so two jobs side by side on two cores train twice as much. The scheduler keeps
each job's wall time and peak resident memory (the job's own figure) in DIR/run.json. A job that
finished before is not run again; a failed job is reported and its dependents skipped.
"""

import dataclasses
import datetime
import hashlib
import json
import os
import subprocess
import sys
import time
from typing import Optional

from core import config as configs
from experiments import grid
from experiments import harness
from experiments import job as job_files
from pipeline import pipeline

RUN_FILE = 'run.json'  # wall time, peak memory, exit code of the job's process
LOG_FILE = 'log.txt'


@dataclasses.dataclass
class Job:
  directory: str
  preset: str  # a label of grid.PRESETS
  seed: int
  overrides: tuple[str, ...]  # on the preset, training-relevant only
  names: list[tuple[str, str]]  # (experiment, variant name) asking for this configuration
  teacher_key: Optional[str]  # None: trained without a teacher
  teacher_from: Optional['Job'] = None  # the job whose teacher this one distils from

  @property
  def label(self) -> str:
    return f'{self.names[0][1]} ({self.preset}, seed {self.seed})'

  @property
  def done(self) -> bool:
    return job_files.finished(self.directory)

  @property
  def code(self) -> Optional[str]:
    """The fingerprint of the code the job ran (None: not recorded)."""
    path = os.path.join(self.directory, job_files.SPEC_FILE)
    if not os.path.exists(path):
      return None
    with open(path) as f:
      return json.load(f).get('code')

  @property
  def teacher_dir(self) -> Optional[str]:
    return os.path.join(self.teacher_from.directory, 'teacher') if self.teacher_from else None


def teacher_key(config: configs.PipelineConfig) -> str:
  """What a teacher depends on: the Transform, the training schedule and sampling, the
  teacher's own settings and the model settings it shares (training/trainer.py's teacher
  config); not the student's architecture nor the distillation weight."""
  distillation = {k: v for k, v in dataclasses.asdict(config.distillation).items()
                  if k not in ('enabled', 'weight', 'teacher_source')}
  model = {k: getattr(config.model, k) for k in ('embedding_dim', 'hidden_units',
                                                 'history_pooling', 'popularity_features')}
  parts = [dataclasses.asdict(config.transform), dataclasses.asdict(config.training),
           distillation, model]
  if config.distillation.teacher in configs.RANKERS:  # a ranker teacher's sizes
    parts.append(config.ranker.architecture())
  text = json.dumps(parts, sort_keys=True, default=list)
  return hashlib.sha256(text.encode()).hexdigest()[:10]


def plan(root: str, base: list[str], experiments: dict[str, tuple[grid.Variant, ...]],
         presets: dict[str, list[str]], seeds: dict[str, list[int]]) -> list[Job]:
  """The jobs of `experiments` (name -> variants) under their presets and seeds (name ->
  preset labels, name -> seeds), deduplicated, teachers assigned, in the order to run them: by
  experiment and preset as given, and within each, teacher trainers first, then jobs
  without a teacher, then the teachers' pupils."""
  jobs: dict[str, Job] = {}
  group = {}  # directory -> index of the first (experiment, preset) asking for it
  for experiment, variants in experiments.items():
    for preset in presets[experiment]:
      for seed in seeds[experiment]:
        for variant in variants:
          overrides = tuple(base) + variant.overrides + (f'training.seed={seed}',)
          config = configs.load_config('', overrides, grid.PRESETS[preset])
          directory = os.path.join(root, 'runs', preset, f'seed{seed}',
                                   harness.config_fingerprint(config))
          if directory not in jobs:
            jobs[directory] = Job(directory, preset, seed, overrides, [],
                                  teacher_key(config) if config.distillation.enabled
                                  else None)
          if (experiment, variant.name) not in jobs[directory].names:
            jobs[directory].names.append((experiment, variant.name))
          group.setdefault(directory, (list(experiments).index(experiment),
                                       presets[experiment].index(preset)))
  producers: dict[str, Job] = {}
  for job in sorted((j for j in jobs.values() if j.teacher_key),
                    key=lambda j: not any(n == grid.DSMOE for _, n in j.names)):
    producer = producers.setdefault(job.teacher_key, job)
    if producer is not job:
      job.teacher_from = producer
  kind = lambda j: 2 if j.teacher_from else 0 if j.teacher_key else 1
  return sorted(jobs.values(), key=lambda j: (group[j.directory], kind(j)))


def run(jobs: list[Job], data: harness.RunData, workers: int,
        threads: int = 1) -> dict[str, str]:
  """Runs the jobs not done yet, `workers` at a time, on `data` (resolved once, so a
  pipeline run in the same output directory meanwhile changes nothing);
  {directory: error} of the failed."""
  pending = [j for j in jobs if not j.done]
  total, started_all = len(pending), time.time()
  print(f'{len(jobs)} jobs, {len(jobs) - total} done before, {total} to train with '
        f'{workers} workers', flush=True)
  running: dict[int, tuple[Job, subprocess.Popen, float]] = {}
  code_version = pipeline.code_fingerprint()
  failed: dict[str, str] = {}
  finished = 0
  while pending or running:
    for job in list(pending):
      if len(running) >= workers:
        break
      if job.teacher_from and job.teacher_from.directory in failed:
        failed[job.directory] = f'its teacher ({job.teacher_from.label}) failed'
        pending.remove(job)
        continue
      if job.teacher_from and not job.teacher_from.done:
        continue
      pending.remove(job)
      process = _start(job, data, threads, code_version)
      running[process.pid] = (job, process, time.time())
    if not running:
      continue
    # The Popen objects stay referenced in `running`, so subprocess never reaps a job
    # before this wait sees it.
    pid, status = os.waitpid(-1, 0)
    job, process, started = running.pop(pid)
    code = process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.time() - started
    record = {'exit_code': code, 'wall_seconds': seconds, 'threads': threads,
              'ended': datetime.datetime.now().isoformat(timespec='seconds')}
    process = os.path.join(job.directory, job_files.PROCESS_FILE)
    if os.path.exists(process):
      with open(process) as f:
        record.update(json.load(f))
    with open(os.path.join(job.directory, RUN_FILE), 'w') as f:
      json.dump(record, f, indent=2)
    finished += 1
    if code or not job.done:
      failed[job.directory] = f'exit code {code}, see {os.path.join(job.directory, LOG_FILE)}'
      print(f'  FAILED {job.label}: {failed[job.directory]}', flush=True)
      continue
    elapsed = time.time() - started_all
    print(f'  [{finished}/{total}] {job.label}: {seconds:.0f} s, '
          f'{record.get("peak_rss_mb", 0):.0f} MB; {_headline(job)}; '
          f'{elapsed / 60:.0f} min so far', flush=True)
  return failed


def _start(job: Job, data: harness.RunData, threads: int,
           code_version: str) -> subprocess.Popen:
  os.makedirs(job.directory, exist_ok=True)
  spec = {'data': data.to_dict(), 'preset': grid.PRESETS[job.preset],
          'overrides': list(job.overrides), 'teacher': job.teacher_dir, 'threads': threads,
          'names': job.names, 'code': code_version}
  with open(os.path.join(job.directory, job_files.SPEC_FILE), 'w') as f:
    json.dump(spec, f, indent=2)
  log = open(os.path.join(job.directory, LOG_FILE), 'a')
  process = subprocess.Popen([sys.executable, '-m', 'experiments.job', job.directory],
                             stdout=log, stderr=subprocess.STDOUT, cwd=configs.REPO_ROOT,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
  log.close()
  return process


def _headline(job: Job) -> str:
  with open(os.path.join(job.directory, job_files.SCORES_FILE)) as f:
    scores = json.load(f)
  epochs = harness.kept_epochs(os.path.join(job.directory, job_files.MODEL_DIR))
  recall = scores['recall']['model']['all']
  return (f'epochs kept {epochs.get("teacher", "-")}/{epochs["student"]}, test Recall@50 '
          f'{recall["50"]:.4f} @100 {recall["100"]:.4f}')
