"""Prints the CLI's time to first answer: `python -m serving query` from process start to
its JSON on stdout, on a release.

    python -m benchmarks.cold_start [--release outputs/releases/latest] [--runs 3]
                                    [--baseline-checkout DIR]

Each run is a fresh process (no warm Python), one known user of the release's snapshot,
k=10, with and without --no-verify (the checksum of every release file). The median and
the spread of --runs runs are printed; with --baseline-checkout DIR (a checkout of other
code, e.g. `git worktree add DIR <commit>`) that code is measured first, on the same
release. Then, in this process, where the time goes: importing TensorFlow, and each part
of load_release. The operating system's file cache is warm after the first run (the
release is read from memory): the figures are a restart, not a first boot from disk.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def _time_query(code: str, release: str, user: str, scenario: str, verify: bool) -> float:
  argv = [sys.executable, '-m', 'serving', 'query', '--release', release, '--user-id', user,
          '--scenario', scenario, '-k', '10'] + ([] if verify else ['--no-verify'])
  started = time.perf_counter()
  done = subprocess.run(argv, cwd=code, capture_output=True, text=True, timeout=900,
                        env=dict(os.environ, TF_USE_LEGACY_KERAS='1', PYTHONPATH=code))
  seconds = time.perf_counter() - started
  if done.returncode != 0 or 'items' not in json.loads(done.stdout or '{}'):
    raise SystemExit(f'{argv} failed: {done.stderr[-2000:]}')
  return seconds


def _import_seconds(code: str) -> float:
  """Importing the query path's modules (TensorFlow, ScaNN, ...) in a fresh process."""
  done = subprocess.run(
      [sys.executable, '-c', 'import time; t = time.perf_counter(); '
       'from serving import cli, recommender, release, retriever; '
       'print(time.perf_counter() - t)'], cwd=code, capture_output=True, text=True,
      timeout=600, env=dict(os.environ, TF_USE_LEGACY_KERAS='1', PYTHONPATH=code))
  return float(done.stdout.split()[-1])


def _breakdown(release_path: str, code: str) -> list[tuple[str, float]]:
  """Seconds per step of a query's start (imports in a fresh process, the rest here)."""
  steps = [('imports (tensorflow, scann, serving), fresh process', _import_seconds(code))]
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  # pylint: disable=g-import-not-at-top
  from core import layout
  from serving import release as release_lib
  # pylint: enable=g-import-not-at-top
  path = release_lib.resolve(release_path)
  t = time.perf_counter()
  with open(os.path.join(path, 'manifest.json'), encoding='utf-8') as f:
    release_lib._check_files(path, json.load(f))  # pylint: disable=protected-access
  steps.append(('checksums of every file', time.perf_counter() - t))
  t = time.perf_counter()
  tf.saved_model.load(os.path.join(path, layout.USER_TOWER_DIR))
  steps.append(('user tower SavedModel', time.perf_counter() - t))
  t = time.perf_counter()
  snapshot = release_lib._read_snapshot(path)  # pylint: disable=protected-access
  next(iter(snapshot))
  steps.append((f'user snapshot ({type(snapshot).__name__}, {len(snapshot):,} users)',
                time.perf_counter() - t))
  t = time.perf_counter()
  release_lib.load_release(path, verify_checksums=False, ranker=False)
  steps.append(('load_release(ranker=False), all of it', time.perf_counter() - t))
  t = time.perf_counter()
  release_lib.load_release(path, verify_checksums=False, ranker=True)
  steps.append(('load_release with the ranker (serve, recommend)', time.perf_counter() - t))
  return steps


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--release', default='outputs/releases/latest')
  parser.add_argument('--runs', type=int, default=3)
  parser.add_argument('--baseline-checkout', default=None)
  args = parser.parse_args()
  release = os.path.abspath(args.release)
  here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  from serving import release as release_lib  # pylint: disable=g-import-not-at-top
  loaded = release_lib.load_release(release, verify_checksums=False, ranker=False)
  user, scenario = next(iter(loaded.snapshot)), loaded.scenarios[0]
  print(f'release {loaded.version}: {len(loaded.snapshot):,} users, '
        f'{loaded.corpus_size:,} items; {os.cpu_count()} cores', flush=True)
  codes = ([('before', os.path.abspath(args.baseline_checkout))]
           if args.baseline_checkout else []) + [('this code', here)]
  print('| code | checksums | median s | runs (s) |\n|---|---|---|---|')
  for label, code in codes:
    for verify in (True, False):
      runs = [_time_query(code, release, user, scenario, verify) for _ in range(args.runs)]
      print(f'| {label} | {"verified" if verify else "--no-verify"} | '
            f'{statistics.median(runs):.2f} | {", ".join(f"{r:.2f}" for r in runs)} |',
            flush=True)
  print('\nwhere the time goes (this code, one process):')
  for step, seconds in _breakdown(release, here):
    print(f'  {step:55s} {seconds:6.2f} s')


if __name__ == '__main__':
  main()
