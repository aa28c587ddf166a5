"""Prints the HTTP service's latency and throughput on a release, over loopback.

    python -m benchmarks.serving_load [--release outputs/releases/latest] [--seconds 10]
                                      [--endpoint retrieve|recommend] [--candidates 200]

Starts `python -m serving serve` on a free loopback port, then:
  - single-query latency: sequential POSTs of one (user, scenario) to /v1/retrieve (top
    --k) or /v1/recommend (top --k of --candidates retrieved and ranked), p50/p99;
  - throughput: 1, 4 and 16 concurrent clients (threads, one keep-alive connection each)
    for --seconds each: requests/s and latency p50/p99;
  - recommend only, after the service stops: batch mode (serving/batch.py, as
    `python -m serving recommend --requests`) over every user of the release's snapshot in
    one scenario (--batch-scenario, default the first): requests/s.
Requests draw known users of the release's snapshot and its scenarios at random. The
clients run on the same machine as the service, so on 2 cores they compete with it: the
figures are a floor for a dedicated serving host.
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


def _start(release: str, port: int) -> subprocess.Popen:
  process = subprocess.Popen(
      [sys.executable, '-m', 'serving', 'serve', '--release', release, '--port', str(port),
       '--no-verify'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
      env=dict(os.environ, TF_USE_LEGACY_KERAS='1'))
  deadline = time.time() + 300
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


def _percentiles(latencies: list[float]) -> str:
  ms = np.array(latencies) * 1000
  return f'p50 {np.percentile(ms, 50):6.1f} ms  p99 {np.percentile(ms, 99):6.1f} ms'


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
  args = parser.parse_args()
  k = args.k or (50 if args.endpoint == 'retrieve' else 10)
  release = load_release(args.release, verify_checksums=False)
  rng = random.Random(0)
  users = rng.sample(sorted(release.snapshot), min(2000, len(release.snapshot)))
  extra = {'candidates': args.candidates} if args.endpoint == 'recommend' else {}
  bodies = [json.dumps({'user_id': u, 'scenario': rng.choice(release.scenarios), 'k': k,
                        **extra}).encode() for u in users]
  path = f'/v1/{args.endpoint}'
  port = _free_port()
  process = _start(args.release, port)
  try:
    client = _Client(port, path, bodies, 1)
    for _ in range(20):  # warm-up
      client.call()
    latencies = [client.call() for _ in range(args.single_queries)]
    print(f'release {release.version}: {release.corpus_size:,} items, {path}, k={k}'
          + (f', {args.candidates} candidates ranked by {release.manifest["ranker"]["model"]}'
             if extra else ''))
    print(f'single query ({args.single_queries} sequential): {_percentiles(latencies)}')
    for clients in (1, 4, 16):
      results: list[list[float]] = [[] for _ in range(clients)]
      stop = time.perf_counter() + args.seconds

      def run(i):
        c = _Client(port, path, bodies, 100 + i)
        while time.perf_counter() < stop:
          results[i].append(c.call())

      threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
      started = time.perf_counter()
      for t in threads:
        t.start()
      for t in threads:
        t.join()
      elapsed = time.perf_counter() - started
      every = [x for r in results for x in r]
      print(f'{clients:2d} concurrent clients: {len(every) / elapsed:7.1f} requests/s  '
            f'{_percentiles(every)}')
  finally:
    process.terminate()
    process.wait(timeout=30)
  if args.endpoint == 'recommend':
    _batch_mode(release, args.batch_scenario or release.scenarios[0], k, args.candidates)


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
