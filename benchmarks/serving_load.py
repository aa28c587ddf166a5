"""Prints the HTTP service's latency and throughput on a release, over loopback.

    python -m benchmarks.serving_load [--release outputs/releases/latest] [--seconds 10]
        [--endpoint retrieve|recommend] [--candidates 200] [--clients 1,4,16,64]
        [--baseline-checkout DIR] [--max-batch 64] [--max-wait-ms 2] [--output FILE.json]

Starts `python -m serving serve` on a free loopback port, then:
  - single-query latency: sequential POSTs of one (user, scenario) to /v1/retrieve (top
    --k) or /v1/recommend (top --k of --candidates retrieved and ranked), p50/p99;
  - throughput: --clients concurrent clients (threads, one keep-alive connection each)
    for --seconds each: requests/s and latency p50/p99;
  - a reload under load: 16 clients while POST /admin/reload loads the same release
    again; p99 of the requests that started during the reload against those before it;
  - recommend only, after the service stops: batch mode (serving/batch.py, as
    `python -m serving recommend --requests`) over every user of the release's snapshot in
    one scenario (--batch-scenario, default the first): requests/s.
With --baseline-checkout DIR (a checkout of another commit, e.g. `git worktree add DIR
<commit>`), the same runs go first against the service of DIR's code, on the same release
and machine, and the table shows both. Requests draw known users of the release's
snapshot and its scenarios at random. The clients run on the same machine as the
service, so on 2 cores they compete with it: the figures are a floor for a dedicated
serving host.
"""

import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time

import numpy as np

from serving import batch
from serving import recommender as recommender_lib
from serving.release import load_release


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


ADMIN_TOKEN = 'benchmark-token'


def _start(release: str, port: int, code: str, flags: list[str]) -> subprocess.Popen:
  """The service of the checkout `code` on port."""
  process = subprocess.Popen(
      [sys.executable, '-m', 'serving', 'serve', '--release', release, '--port', str(port),
       '--no-verify', *flags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
      cwd=code, env=dict(os.environ, TF_USE_LEGACY_KERAS='1', PYTHONPATH=code,
                         DSMOE_ADMIN_TOKEN=ADMIN_TOKEN))
  deadline = time.time() + 600
  while time.time() < deadline:
    try:
      connection = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
      connection.request('GET', '/healthz')
      if connection.getresponse().status == 200:
        return process
    except OSError:
      time.sleep(0.5)
  process.kill()
  raise SystemExit('the service did not start')


class _Client:
  def __init__(self, port: int, path: str, bodies: list[bytes], seed: int):
    self.connection = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
    self.path = path
    self.bodies = bodies
    self.random = random.Random(seed)

  def call(self) -> float:
    body = self.random.choice(self.bodies)
    started = time.perf_counter()
    self.connection.request('POST', self.path, body,
                            {'Content-Type': 'application/json'})
    response = self.connection.getresponse()
    response.read()
    if response.status != 200:
      raise SystemExit(f'HTTP {response.status}')
    return time.perf_counter() - started


def _percentiles(latencies: list[float]) -> dict:
  ms = np.array(latencies) * 1000
  return {'p50_ms': round(float(np.percentile(ms, 50)), 2),
          'p99_ms': round(float(np.percentile(ms, 99)), 2)}


def _load(port: int, path: str, bodies: list[bytes], clients: int, seconds: float,
          during=None) -> tuple[list, float]:
  """clients threads calling for `seconds` (or until `during`, run on this thread,
  returns); ([(start, latency)], elapsed)."""
  results: list[list] = [[] for _ in range(clients)]
  done = threading.Event()

  def run(i):
    c = _Client(port, path, bodies, 100 + i)
    while not done.is_set():
      started = time.perf_counter()
      results[i].append((started, c.call()))

  threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
  started = time.perf_counter()
  for t in threads:
    t.start()
  if during is None:
    time.sleep(seconds)
  else:
    during()
  done.set()
  for t in threads:
    t.join()
  return [x for r in results for x in r], time.perf_counter() - started


def _reload_under_load(port: int, path: str, bodies: list[bytes], release: str) -> dict:
  """16 clients; after 3 s, POST /admin/reload of the same release; 3 s after it ends the
  load stops. p99 of requests started during the reload vs the 3 s before it."""
  window = {}

  def reload():
    time.sleep(3.0)
    window['start'] = time.perf_counter()
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=600)
    connection.request('POST', '/admin/reload', json.dumps({'release': release}),
                       {'Content-Type': 'application/json',
                        'Authorization': f'Bearer {ADMIN_TOKEN}'})
    response = connection.getresponse()
    response.read()
    window['end'] = time.perf_counter()
    window['status'] = response.status
    time.sleep(3.0)

  calls, _ = _load(port, path, bodies, 16, 0, during=reload)
  before = [latency for start, latency in calls
            if window['start'] - 3.0 <= start < window['start']]
  inside = [latency for start, latency in calls if window['start'] <= start < window['end']]
  return {'reload_seconds': round(window['end'] - window['start'], 1),
          'reload_status': window['status'], 'before': _percentiles(before),
          'during': _percentiles(inside) if inside else None,
          'requests_during': len(inside)}


def _measure(label: str, code: str, flags: list[str], args, bodies: list[bytes],
             path: str) -> dict:
  port = _free_port()
  process = _start(args.release, port, code, flags)
  figures = {'label': label, 'code': code, 'flags': flags}
  try:
    client = _Client(port, path, bodies, 1)
    for _ in range(20):  # warm-up
      client.call()
    figures['single'] = _percentiles([client.call() for _ in range(args.single_queries)])
    print(f'{label}: single query ({args.single_queries} sequential): {figures["single"]}',
          flush=True)
    figures['clients'] = {}
    for clients in args.clients:
      calls, elapsed = _load(port, path, bodies, clients, args.seconds)
      row = {'requests_per_s': round(len(calls) / elapsed, 1),
             **_percentiles([latency for _, latency in calls])}
      figures['clients'][clients] = row
      print(f'{label}: {clients:2d} concurrent clients: {row}', flush=True)
    if not args.no_reload:
      figures['reload'] = _reload_under_load(port, path, bodies, args.release)
      print(f'{label}: reload under load (16 clients): {figures["reload"]}', flush=True)
  finally:
    process.terminate()
    process.wait(timeout=60)
  return figures


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--release', default='outputs/releases/latest')
  parser.add_argument('--endpoint', choices=('retrieve', 'recommend'), default='retrieve')
  parser.add_argument('--k', type=int, default=None,
                      help='items per answer (default: 50 retrieve, 10 recommend)')
  parser.add_argument('--candidates', type=int, default=200,
                      help='recommend: items retrieved and ranked per request')
  parser.add_argument('--batch-scenario', default=None,
                      help='recommend: the scenario of the batch-mode run (default: the '
                      "release's first)")
  parser.add_argument('--seconds', type=float, default=10.0)
  parser.add_argument('--single-queries', type=int, default=300)
  parser.add_argument('--clients', default='1,4,16,64',
                      type=lambda v: [int(c) for c in v.split(',')])
  parser.add_argument('--baseline-checkout', default=None,
                      help="a checkout of other code to measure first (its service's own "
                      'defaults)')
  parser.add_argument('--max-batch', type=int, default=None,
                      help="this code's serve --max-batch (default: serve's)")
  parser.add_argument('--max-wait-ms', type=float, default=None)
  parser.add_argument('--no-reload', action='store_true', help='skip the reload run')
  parser.add_argument('--output', default=None, help='also write the figures as JSON')
  args = parser.parse_args()
  args.release = os.path.abspath(args.release)
  k = args.k or (50 if args.endpoint == 'retrieve' else 10)
  release = load_release(args.release, verify_checksums=False, ranker=False)
  rng = random.Random(0)
  users = rng.sample(sorted(release.snapshot), min(2000, len(release.snapshot)))
  extra = {'candidates': args.candidates} if args.endpoint == 'recommend' else {}
  bodies = [json.dumps({'user_id': u, 'scenario': rng.choice(release.scenarios), 'k': k,
                        **extra}).encode() for u in users]
  path = f'/v1/{args.endpoint}'
  print(f'release {release.version}: {release.corpus_size:,} items, {path}, k={k}'
        + (f', {args.candidates} candidates ranked by {release.manifest["ranker"]["model"]}'
           if extra else '') + f'; {os.cpu_count()} cores', flush=True)
  flags = []
  if args.max_batch is not None:
    flags += ['--max-batch', str(args.max_batch)]
  if args.max_wait_ms is not None:
    flags += ['--max-wait-ms', str(args.max_wait_ms)]
  here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  runs = []
  if args.baseline_checkout:
    runs.append(_measure('before', os.path.abspath(args.baseline_checkout), [], args,
                         bodies, path))
  runs.append(_measure('this code', here, flags, args, bodies, path))
  _table(runs, args.clients)
  if args.output:
    with open(args.output, 'w', encoding='utf-8') as f:
      json.dump({'release': release.version, 'endpoint': path, 'k': k, 'runs': runs}, f,
                indent=1)
  if args.endpoint == 'recommend':
    _batch_mode(load_release(args.release, verify_checksums=False),
                args.batch_scenario or release.scenarios[0], k, args.candidates)


def _table(runs: list[dict], clients: list[int]) -> None:
  print('\n| code | clients | requests/s | p50 ms | p99 ms |\n|---|---|---|---|---|')
  for run in runs:
    print(f'| {run["label"]} | 1 (sequential) | | {run["single"]["p50_ms"]} | '
          f'{run["single"]["p99_ms"]} |')
    for c in clients:
      row = run['clients'][c]
      print(f'| {run["label"]} | {c} | {row["requests_per_s"]} | {row["p50_ms"]} | '
            f'{row["p99_ms"]} |')
    if run.get('reload'):
      r = run['reload']
      during = r['during'] or {}
      print(f'| {run["label"]} | 16, reload ({r["reload_seconds"]} s, HTTP '
            f'{r["reload_status"]}) | | {during.get("p50_ms")} | {during.get("p99_ms")} '
            f'(before: {r["before"]["p99_ms"]}) |')


def _batch_mode(release, scenario: str, k: int, candidates: int) -> None:
  """Batch recommend (serving/batch.py) of every snapshot user in `scenario`."""
  import tempfile  # pylint: disable=g-import-not-at-top
  recommender = recommender_lib.Recommender(release)
  with tempfile.TemporaryDirectory() as scratch:
    requests = os.path.join(scratch, 'requests.csv')
    with open(requests, 'w', encoding='utf-8') as f:
      f.write('user_id,scenario\n')
      f.writelines(f'{user},{scenario}\n' for user in sorted(release.snapshot))
    summary = batch.run_batch(batch.Recommendation(recommender, k, candidates), requests,
                              os.path.join(scratch, 'out.jsonl'))
  print(f'batch mode, scenario {scenario}: {summary.ok:,} users in {summary.seconds:.1f} s '
        f'= {summary.ok / summary.seconds:,.1f} requests/s ({candidates} candidates each, '
        f'{batch.CHUNK} requests per chunk)')


if __name__ == '__main__':
  main()
