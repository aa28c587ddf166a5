"""Measures the ScaNN index at catalogue scale: build, memory, disk, recall, speed-up.

    nice -n 10 python -m benchmarks.index_scale [--items 10000000] [--queries 1000]
        [--k 100] [--seed 0] [--shards 4] [--release outputs/bench/releases/latest]
        [--no-release] [--dim 0] [--settings LEAVES:REORDER,...] [--index-dir DIR]
        [--output index_scale.json]

What it builds is what the IndexBuilder would build at that corpus size: the parameters of
retrieval/scann_index.parameters(N, core.config.IndexConfig(k=k)) (about sqrt(N) leaves, a
tenth searched, 15k candidates reordered exactly), built by scann_index.build_searcher and
written by scann_index.save. Figures: docs/serving/index_scale.md.

Corpus: N synthetic items at the served embedding dimension, a seeded Gaussian mixture.
  - anchored (when the release has index/item_embeddings.npy): each item is a random
    release item plus Gaussian noise of half the release items' per-dimension spread (as
    benchmarks/scann_vs_exact.py does), so the corpus is a mixture of as many clusters as
    the release has items, with the release's geometry (a strong common mean direction,
    uneven per-dimension spread, the popularity-prior entries);
  - otherwise (or --no-release): a mixture of --clusters (4,096) components of unequal
    weights (Dirichlet): centres = a global mean (N(0, 1) per dimension) + N(0, s_j^2) with
    per-dimension spreads s_j ~ U(0.2, 1.0), items = centre + N(0, (s_j / 2)^2). The
    dimension is then --dim or the release's (model.output_dim 64 + 4 scenarios x 1
    popularity feature of the scenario popularity prior = 68).
Queries, --queries of each set:
  - item-like: fresh draws of the same mixture (another random stream: not corpus items);
  - user (only with a loadable release): the release user tower's embeddings of random
    snapshot users, each in a random scenario (what the service searches with). On the
    anchored corpus, item-like queries all point along the items' common mean direction and
    share many of their top-k items; user queries spread far more (see
    distinct_items_in_exact_top_k).

Exact: brute-force dot product in float32 numpy over item chunks (queries x chunk scores,
argpartition, running top-k), memory bounded by --exact-chunk items. Batched: all queries at
once (numpy's BLAS on every core), timed on the first query set (its cost does not depend
on the queries). Single query: one gemv over the corpus + argpartition, on --exact-single
queries.

ScaNN: search_batched (one thread), search_batched_parallel (all cores) and search (one
query at a time), warmed up first; recall@k is scann_index.recall_against_exact of the
batched result against exact, with the spread over queries (std, 5th percentile, minimum,
a bootstrap 95% interval of the mean). --settings: recall and batched queries/s of other
(leaves searched, candidates reordered) on the same tree.

Memory: peak RSS (VmHWM, reset before the build through /proc/self/clear_refs) during the
build, with the corpus array (and TensorFlow, and the user tower if loaded) already in
memory; the RSS a fresh process needs to serve the saved index (scann_index.load: the
searcher, the item ids and the embeddings), measured in a subprocess. Disk: the bytes of
each saved file.

--shards S: then measures ONE shard the same way: the items whose hashed row id falls in
shard 0 of S (about N / S items, the same distribution), with its own parameters, and
estimates the recall of an S-shard deployment against the global exact top-k from this one
shard: a front merging the shards' top-k' by their exactly reordered scores keeps every
global top-k item that its shard returned, so the system's recall is (global top-k items
returned by their shards) / k; the estimate takes the fraction of the global top-k items
in shard 0 that shard 0 returns within its top-k' as every shard's.
"""

import argparse
import datetime
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from core import config as configs
from core import layout
from core import release_format
from retrieval import scann_index

_DEFAULT_DIM = configs.ModelConfig().output_dim + 4 * len(
    configs.ModelConfig().popularity_features)  # 64 + 4 KuaiRand scenarios x 1 = 68
_GB = 1024 ** 3


def _status() -> dict:
  """{VmRSS, VmHWM: bytes} of this process."""
  values = {}
  with open('/proc/self/status') as f:
    for line in f:
      name, _, rest = line.partition(':')
      if name in ('VmRSS', 'VmHWM'):
        values[name] = int(rest.split()[0]) * 1024
  return values


def _reset_peak() -> bool:
  try:
    with open('/proc/self/clear_refs', 'w') as f:
      f.write('5')  # resets VmHWM to the current RSS (Linux >= 4.0)
    return True
  except OSError:
    return False


# -- the corpus ---------------------------------------------------------------------------


def _components(args, rng) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, str]:
  """(centres [C, d], weights [C] or None for uniform, noise scale [d], description)."""
  path = os.path.join(args.release, release_format.INDEX_DIR, layout.ITEM_EMBEDDINGS_FILE)
  if args.release and os.path.exists(path) and not args.no_release:
    anchors = np.load(path).astype(np.float32)
    if args.dim and args.dim != anchors.shape[1]:
      raise SystemExit(f'--dim {args.dim} but the release embeddings have '
                       f'{anchors.shape[1]} dimensions')
    return (anchors, None, 0.5 * anchors.std(axis=0),
            f'anchored on {len(anchors):,} release item embeddings ({path}): a random one '
            f'plus N(0, (0.5 x per-dimension std)^2)')
  dim = args.dim or _DEFAULT_DIM
  spread = rng.uniform(0.2, 1.0, dim).astype(np.float32)
  mean = rng.normal(size=dim).astype(np.float32)
  centres = (mean + rng.normal(size=(args.clusters, dim)) * spread).astype(np.float32)
  weights = rng.dirichlet(np.ones(args.clusters))
  return (centres, weights, 0.5 * spread,
          f'Gaussian mixture of {args.clusters:,} components (Dirichlet weights), centres '
          f'N(mean, s_j^2), s_j ~ U(0.2, 1), items centre + N(0, (s_j / 2)^2)')


def _draw(n: int, centres, weights, noise, rng, chunk: int = 1_000_000) -> np.ndarray:
  out = np.empty((n, centres.shape[1]), np.float32)
  for start in range(0, n, chunk):
    size = min(chunk, n - start)
    picked = rng.choice(len(centres), size, p=weights)
    out[start:start + size] = centres[picked]
    out[start:start + size] += rng.standard_normal(
        (size, centres.shape[1]), dtype=np.float32) * noise
  return out


def _shard_of(rows: np.ndarray, shards: int) -> np.ndarray:
  """Shard of each row id: a multiplicative hash (Knuth), as a front would hash item ids."""
  hashed = (rows.astype(np.uint64) * np.uint64(2654435761)) % np.uint64(2 ** 32)
  return ((hashed >> np.uint64(16)) % np.uint64(shards)).astype(np.int64)  # high bits


# -- exact search -------------------------------------------------------------------------


def exact_top_k(queries: np.ndarray, items: np.ndarray, k: int,
                chunk: int = 131_072) -> np.ndarray:
  """Indices [Q, k] of the largest dot products, best first (float32 numpy, item chunks)."""
  best_scores = np.full((len(queries), 0), -np.inf, np.float32)
  best_rows = np.zeros((len(queries), 0), np.int64)
  for start in range(0, len(items), chunk):
    scores = queries @ items[start:start + chunk].T
    take = min(k, scores.shape[1])
    top = np.argpartition(scores, scores.shape[1] - take, axis=1)[:, -take:]
    scores = np.concatenate([best_scores, np.take_along_axis(scores, top, 1)], axis=1)
    rows = np.concatenate([best_rows, top + start], axis=1)
    if scores.shape[1] > k:
      keep = np.argpartition(scores, scores.shape[1] - k, axis=1)[:, -k:]
      scores, rows = np.take_along_axis(scores, keep, 1), np.take_along_axis(rows, keep, 1)
    best_scores, best_rows = scores, rows
  order = np.argsort(-best_scores, axis=1)
  return np.take_along_axis(best_rows, order, 1)


def _exact_single(query: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
  scores = items @ query
  top = np.argpartition(scores, len(scores) - k)[-k:]
  return top[np.argsort(-scores[top])]


# -- one measurement ----------------------------------------------------------------------


def _disk(directory: str) -> dict:
  sizes = {}
  for name in (layout.SCANN_DIR, layout.ITEM_EMBEDDINGS_FILE, layout.ITEM_IDS_FILE):
    path = os.path.join(directory, name)
    if os.path.isdir(path):
      sizes[name] = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
    else:
      sizes[name] = os.path.getsize(path)
  sizes['total'] = sum(sizes.values())
  sizes['scann_files'] = {f: os.path.getsize(os.path.join(directory, layout.SCANN_DIR, f))
                          for f in sorted(os.listdir(os.path.join(directory,
                                                                  layout.SCANN_DIR)))}
  return sizes


def _serving_memory(directory: str) -> dict:
  """RSS of a fresh process loading the saved index (scann_index.load) and searching."""
  out = subprocess.run([sys.executable, '-m', 'benchmarks.index_scale', '--probe-load',
                        directory], capture_output=True, text=True, check=True,
                       env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'})
  return json.loads(out.stdout.strip().splitlines()[-1])


def _probe_load(directory: str) -> None:
  import scann  # the same imports as the service: TensorFlow comes with ScaNN
  before = _status()['VmRSS']
  searcher = scann.scann_ops_pybind.load_searcher(os.path.join(directory, layout.SCANN_DIR))
  searcher_only = _status()['VmRSS']
  del searcher
  gc.collect()
  searcher, item_ids, embeddings = scann_index.load(directory)
  searcher.search(embeddings[0])
  status = _status()
  print(json.dumps({'process_before_load': before,
                    'searcher_only': searcher_only - before,
                    'index_loaded': status['VmRSS'] - before,
                    'process_rss': status['VmRSS'], 'process_peak': status['VmHWM'],
                    'items': len(item_ids)}))


def _spread(per_query: np.ndarray, rng) -> dict:
  means = rng.choice(per_query, (1000, len(per_query))).mean(axis=1)
  return {'mean': float(per_query.mean()), 'std': float(per_query.std()),
          'p5': float(np.percentile(per_query, 5)), 'min': float(per_query.min()),
          'mean_ci95': [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]}


def _timed(function, *args, **kwargs):
  started = time.perf_counter()
  result = function(*args, **kwargs)
  return result, time.perf_counter() - started


def _search(searcher, queries: np.ndarray, exact: np.ndarray, k: int, rng) -> dict:
  """Recall and queries/s of ScaNN on one query set (exact: its exact top-k)."""
  searcher.search_batched(queries[:10])
  searcher.search_batched_parallel(queries[:10])
  (approximate, _), batched_seconds = _timed(searcher.search_batched, queries)
  (parallel, _), parallel_seconds = _timed(searcher.search_batched_parallel, queries)
  singles, single_seconds = _timed(lambda: [searcher.search(q)[0] for q in queries])
  approximate = np.asarray(approximate)
  recall = scann_index.recall_against_exact(approximate, exact)
  per_query = np.array([len(set(a[:k]) & set(e)) / k for a, e in zip(approximate, exact)])
  assert abs(per_query.mean() - recall) < 1e-9
  q = len(queries)
  return {
      'queries': q,
      'distinct_items_in_exact_top_k': int(len(np.unique(exact))),
      'recall_at_k': {'k': k, **_spread(per_query, rng),
                      'single_query_mean': scann_index.recall_against_exact(
                          np.array([np.asarray(s)[:k] for s in singles]), exact),
                      'parallel_mean': scann_index.recall_against_exact(
                          np.asarray(parallel), exact)},
      'qps': {'scann_batched_1_thread': q / batched_seconds,
              'scann_batched_parallel': q / parallel_seconds,
              'scann_single': q / single_seconds},
      '_approximate': approximate}


def measure(items: np.ndarray, query_sets: dict, k: int, directory: str, args,
            rng) -> tuple[dict, dict, dict]:
  """Figures of one index; also {query set: exact top-k}, {query set: ScaNN top-k}."""
  params = scann_index.parameters(len(items), configs.IndexConfig(k=k))
  print(f'  {len(items):,} items: {params.num_leaves} leaves, {params.num_leaves_to_search} '
        f'searched, {params.reorder_candidates} reordered; building...', flush=True)
  gc.collect()
  rss_before = _status()['VmRSS']
  peak_reset = _reset_peak()
  cpu = time.process_time()
  searcher, build_seconds = _timed(scann_index.build_searcher, items, params)
  build_cpu_seconds = time.process_time() - cpu  # all threads: the machine may be shared
  status = _status()
  print(f'  built in {build_seconds:.1f} s; peak RSS {status["VmHWM"] / _GB:.2f} GiB; '
        'saving...', flush=True)
  _, save_seconds = _timed(scann_index.save, directory, searcher,
                           np.arange(len(items)).astype(str), items)
  disk = _disk(directory)
  serving = _serving_memory(directory)
  print(f'  saved in {save_seconds:.1f} s, {disk["total"] / _GB:.2f} GiB; serving RSS '
        f'{serving["process_rss"] / _GB:.2f} GiB; exact search...', flush=True)

  # Exact search costs the same whatever the queries: timed on the first set only.
  first = next(iter(query_sets.values()))
  exact_top_k(first[:10], items[:args.exact_chunk], k)  # warm-up
  exacts, exact_seconds = {}, None
  for name, queries in query_sets.items():
    exacts[name], seconds = _timed(exact_top_k, queries, items, k, args.exact_chunk)
    exact_seconds = exact_seconds or seconds
  single_queries = first[:args.exact_single]
  _exact_single(first[0], items, k)
  _, exact_single_seconds = _timed(lambda: [_exact_single(q, items, k) for q in single_queries])
  exact_qps = {'exact_batched': len(first) / exact_seconds,
               'exact_single': len(single_queries) / exact_single_seconds}
  print(f'  exact: {exact_seconds:.1f} s batched, '
        f'{1000 * exact_single_seconds / len(single_queries):.0f} ms/query single; '
        'ScaNN search...', flush=True)

  figures = {
      'items': len(items), 'dimension': items.shape[1],
      'parameters': dict(params.__dict__),
      'build_seconds': build_seconds, 'build_cpu_seconds': build_cpu_seconds,
      'save_seconds': save_seconds,
      'memory': {
          'corpus_array': items.nbytes,
          'rss_before_build': rss_before,
          'peak_rss_during_build': status['VmHWM'] if peak_reset else None,
          'peak_rss_process': _max_rss(),
          'rss_after_build': status['VmRSS'],
          'searcher_added_rss': status['VmRSS'] - rss_before,
          'serving_process': serving},
      'disk_bytes': disk,
      'exact_qps': exact_qps,
      'exact_single_queries_timed': len(single_queries),
      'query_sets': {}}
  approximates = {}
  for name, queries in query_sets.items():
    found = _search(searcher, queries, exacts[name], k, rng)
    approximates[name] = found.pop('_approximate')
    found['qps'].update(exact_qps)
    found['speed_up'] = {
        'single': found['qps']['scann_single'] / exact_qps['exact_single'],
        'batched_1_thread': found['qps']['scann_batched_1_thread']
                            / exact_qps['exact_batched'],
        'batched_parallel': found['qps']['scann_batched_parallel']
                            / exact_qps['exact_batched']}
    figures['query_sets'][name] = found
  figures['settings'] = {}
  for leaves, reorder in args.settings:  # other search settings of the same built tree
    leaves = min(leaves, params.num_leaves)
    kwargs = dict(final_num_neighbors=k, leaves_to_search=leaves,
                  pre_reorder_num_neighbors=max(reorder, k))
    row = figures['settings'][f'{leaves}:{reorder}'] = {}
    for name, queries in query_sets.items():
      searcher.search_batched(queries[:10], **kwargs)
      (found, _), seconds = _timed(searcher.search_batched, queries, **kwargs)
      per_query = np.array([len(set(a[:k]) & set(e)) / k
                            for a, e in zip(np.asarray(found), exacts[name])])
      row[name] = {'recall_mean': float(per_query.mean()),
                   'recall_p5': float(np.percentile(per_query, 5)),
                   'qps_batched_1_thread': len(queries) / seconds}
  del searcher
  gc.collect()
  return figures, exacts, approximates


def _max_rss() -> int:
  import resource
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _merge_estimate(global_exact: np.ndarray, shard_rows: np.ndarray,
                    shard_found: np.ndarray, shards: int, k: int) -> dict:
  """Recall@k of an S-shard deployment against the global exact top-k, from shard 0.

  The merged top-k holds every global top-k item its shard returned, so the system's
  recall is (global top-k items returned by their shards) / k; the estimate takes the
  fraction shard 0 returns of the global top-k items it holds as every shard's.
  """
  in_shard = np.isin(global_exact, shard_rows)  # [Q, k]: global top-k items in shard 0
  counts = in_shard.sum(axis=1)
  found_rows = shard_rows[shard_found]  # shard 0's ANN top-k, as global rows
  estimate = {'global_top_k_in_shard': {
      'mean': float(counts.mean()), 'max': int(counts.max()),
      'p99': float(np.percentile(counts, 99))}}
  for k_prime in sorted({max(1, k // shards), max(1, 2 * k // shards), k // 2, k}):
    found = np.array([len(set(g[m]) & set(f[:k_prime]))
                      for g, m, f in zip(global_exact, in_shard, found_rows)])
    estimate[f'k_prime_{k_prime}'] = {
        'estimated_system_recall': float(found.sum() / max(1, counts.sum())),
        'queries_whose_shard_share_fits': float(np.mean(counts <= k_prime))}
  return estimate


# -- the table ----------------------------------------------------------------------------


def _table(columns: dict[str, dict]) -> str:
  def gib(b):
    return f'{b / _GB:.2f} GiB' if b is not None else 'n/a'

  rows = [
      ('items x dims', lambda f: f'{f["items"]:,} x {f["dimension"]}'),
      ('leaves / searched / reordered', lambda f: '{} / {} / {}'.format(
          f['parameters']['num_leaves'], f['parameters']['num_leaves_to_search'],
          f['parameters']['reorder_candidates'])),
      ('build s', lambda f: f'{f["build_seconds"]:.1f}'),
      ('build CPU s (all threads)', lambda f: '{:.1f}'.format(
          f['build_cpu_seconds']) if 'build_cpu_seconds' in f else 'n/a'),
      ('corpus array', lambda f: gib(f['memory']['corpus_array'])),
      ('peak RSS during build', lambda f: gib(f['memory']['peak_rss_during_build'])),
      ('  of it above the RSS before', lambda f: gib(
          f['memory']['peak_rss_during_build'] - f['memory']['rss_before_build']
          if f['memory']['peak_rss_during_build'] else None)),
      ('RSS added by the searcher', lambda f: gib(f['memory']['searcher_added_rss'])),
      ('serving process RSS', lambda f: gib(f['memory']['serving_process']['process_rss'])),
      ('  of it the loaded index', lambda f: gib(
          f['memory']['serving_process']['index_loaded'])),
      ('  of it the searcher only', lambda f: gib(
          f['memory']['serving_process']['searcher_only'])),
      ('disk: scann/', lambda f: gib(f['disk_bytes'][layout.SCANN_DIR])),
      ('disk: index total', lambda f: gib(f['disk_bytes']['total'])),
      ('qps exact single', lambda f: f'{f["exact_qps"]["exact_single"]:.1f}'),
      ('qps exact batched (2 cores)', lambda f: f'{f["exact_qps"]["exact_batched"]:.1f}'),
  ]
  sets = next(iter(columns.values()))['query_sets']
  for name in sets:
    def of(f, name=name):
      return f['query_sets'][name]
    rows += [
        (f'[{name} queries]', lambda f: ''),
        ('  distinct items in exact top-k', lambda f, of=of: '{:,}'.format(
            of(f)['distinct_items_in_exact_top_k'])),
        ('  recall@k mean [95% CI]', lambda f, of=of: '{:.4f} [{:.4f}, {:.4f}]'.format(
            of(f)['recall_at_k']['mean'], *of(f)['recall_at_k']['mean_ci95'])),
        ('  recall@k std / p5 / min', lambda f, of=of: '{:.3f} / {:.2f} / {:.2f}'.format(
            of(f)['recall_at_k']['std'], of(f)['recall_at_k']['p5'],
            of(f)['recall_at_k']['min'])),
        ('  qps ScaNN single', lambda f, of=of: f'{of(f)["qps"]["scann_single"]:.1f}'),
        ('  speed-up single', lambda f, of=of: f'{of(f)["speed_up"]["single"]:.1f}x'),
        ('  qps ScaNN batched 1 thread', lambda f, of=of: '{:.1f}'.format(
            of(f)['qps']['scann_batched_1_thread'])),
        ('  qps ScaNN batched parallel', lambda f, of=of: '{:.1f}'.format(
            of(f)['qps']['scann_batched_parallel'])),
        ('  speed-up batched 1 thr / par', lambda f, of=of: '{:.1f}x / {:.1f}x'.format(
            of(f)['speed_up']['batched_1_thread'], of(f)['speed_up']['batched_parallel'])),
    ]
  names = list(columns)
  lines = [f'{"":<32}' + ''.join(f'{n:>26}' for n in names)]
  for label, cell in rows:
    lines.append(f'{label:<32}' + ''.join(f'{cell(columns[n]):>26}' for n in names))
  return '\n'.join(lines)


def _user_queries(release: str, count: int, seed: int) -> np.ndarray | None:
  """Embeddings of `count` release snapshot users in random scenarios, or None."""
  try:
    import random
    from serving.release import load_release
    from serving.retriever import RetrievalRequest
    from serving.retriever import Retriever
    loaded = load_release(release, verify_checksums=False)
    retriever = Retriever(loaded)
    rng = random.Random(seed)
    users = rng.sample(sorted(loaded.snapshot), min(count, len(loaded.snapshot)))
    requests = [RetrievalRequest(u, rng.choice(loaded.scenarios)) for u in users]
    return np.concatenate([
        retriever.embed([retriever.check(r) for r in requests[i:i + 256]])
        for i in range(0, len(requests), 256)]).astype(np.float32)
  except Exception as error:  # the benchmark runs without a (loadable) release
    print(f'no user queries ({type(error).__name__}: {error})', flush=True)
    return None


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--items', type=int, default=10_000_000)
  parser.add_argument('--queries', type=int, default=1000)
  parser.add_argument('--k', type=int, default=100)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--shards', type=int, default=0,
                      help='also measure shard 0 of this many (0: none)')
  parser.add_argument('--release', default='outputs/bench/releases/latest',
                      help='anchors the corpus on its index/item_embeddings.npy and adds '
                      'user queries if present')
  parser.add_argument('--no-release', action='store_true',
                      help='the Gaussian-mixture corpus and no user queries')
  parser.add_argument('--dim', type=int, default=0,
                      help=f'without a release: the dimension (0: {_DEFAULT_DIM})')
  parser.add_argument('--clusters', type=int, default=4096)
  parser.add_argument('--exact-chunk', type=int, default=131_072)
  parser.add_argument('--exact-single', type=int, default=100,
                      help='queries timed one at a time by exact search')
  parser.add_argument('--settings', default='',
                      help='other search settings to time on each built tree: '
                      'LEAVES:REORDER,... (leaves searched, candidates reordered)')
  parser.add_argument('--index-dir', default='',
                      help='where to save the indexes (kept); default a deleted temp dir')
  parser.add_argument('--output', default='', help='JSON of every figure')
  parser.add_argument('--probe-load', default='', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.probe_load:
    _probe_load(args.probe_load)
    return
  args.settings = [tuple(int(v) for v in setting.split(':'))
                   for setting in args.settings.split(',') if setting]

  started = datetime.datetime.now(datetime.timezone.utc)
  rng = np.random.default_rng(args.seed)
  centres, weights, noise, description = _components(args, rng)
  query_sets = {'item-like': _draw(args.queries, centres, weights, noise,
                                   np.random.default_rng([args.seed, 2]))}
  if weights is None:  # anchored on a release: its users too
    users = _user_queries(args.release, args.queries, args.seed)
    if users is not None:
      query_sets['user'] = users
    gc.collect()
  items = _draw(args.items, centres, weights, noise, np.random.default_rng([args.seed, 1]))
  del centres
  print(f'{args.items:,} items x {items.shape[1]} dims, k={args.k}: {description}; '
        + ', '.join(f'{len(q):,} {n} queries' for n, q in query_sets.items()), flush=True)
  root = args.index_dir or tempfile.mkdtemp(prefix='index_scale_')
  result = {
      'command': ' '.join(sys.argv), 'started': started.isoformat(timespec='seconds'),
      'machine': {'cpus': os.cpu_count(), 'platform': platform.platform(),
                  'processor': _cpu_model(), 'memory_bytes': _mem_total(),
                  'load_average_at_start': os.getloadavg()},
      'corpus': description,
      'queries': {'item-like': 'fresh draws of the items\' mixture (not corpus items)',
                  'user': 'the release user tower\'s embeddings of snapshot users, each in '
                          'a random scenario'},
      'exact': 'float32 numpy, item chunks of %d' % args.exact_chunk,
  }
  try:
    figures, exacts, _ = measure(items, query_sets, args.k, os.path.join(root, 'full'),
                                 args, np.random.default_rng([args.seed, 3]))
    columns = {f'{args.items:,} items': figures}
    result['full'] = figures
    if not args.index_dir:
      shutil.rmtree(os.path.join(root, 'full'), ignore_errors=True)
    if args.shards > 1:
      shard_rows = np.flatnonzero(_shard_of(np.arange(args.items), args.shards) == 0)
      shard_items = items[shard_rows]
      del items
      gc.collect()
      print(f'shard 0 of {args.shards}: {len(shard_rows):,} items', flush=True)
      shard, _, shard_found = measure(shard_items, query_sets, args.k,
                                      os.path.join(root, 'shard0'), args,
                                      np.random.default_rng([args.seed, 4]))
      shard['of'] = args.shards
      shard['merge_estimate'] = {
          name: _merge_estimate(exacts[name], shard_rows, shard_found[name], args.shards,
                                args.k) for name in query_sets}
      result['shard'] = shard
      columns[f'shard 1/{args.shards}: {len(shard_rows):,}'] = shard
  finally:
    if not args.index_dir:
      shutil.rmtree(root, ignore_errors=True)
  result['machine']['load_average_at_end'] = os.getloadavg()
  result['finished'] = datetime.datetime.now(datetime.timezone.utc).isoformat(
      timespec='seconds')
  print()
  print(_table(columns))
  for name, estimate in result.get('shard', {}).get('merge_estimate', {}).items():
    share = estimate['global_top_k_in_shard']
    print(f'\n{args.shards}-shard deployment, {name} queries, estimated from shard 0: '
          f'global top-{args.k} items in the shard mean {share["mean"]:.1f}, p99 '
          f'{share["p99"]:.0f}, max {share["max"]}')
    for key, value in estimate.items():
      if key.startswith('k_prime_'):
        print(f"  k'={key[8:]:>4}: recall@{args.k} against global exact "
              f"{value['estimated_system_recall']:.4f} (queries whose shard share fits "
              f"in k': {value['queries_whose_shard_share_fits']:.3f})")
  for column, figures in columns.items():
    if figures.get('settings'):
      print(f'\n{column}: other search settings (batched, 1 thread)')
      for setting, row in figures['settings'].items():
        leaves, reorder = setting.split(':')
        print(f'  {leaves:>5} leaves {reorder:>6} reordered: ' + '; '.join(
            f'{name} recall {v["recall_mean"]:.4f} (p5 {v["recall_p5"]:.2f}) '
            f'{v["qps_batched_1_thread"]:.0f} q/s' for name, v in row.items()))
  print(f'\nload average at start {result["machine"]["load_average_at_start"]}, '
        f'at end {result["machine"]["load_average_at_end"]}')
  if args.output:
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, 'w') as f:
      json.dump(result, f, indent=1)
    print(f'wrote {args.output}')


def _cpu_model() -> str:
  try:
    with open('/proc/cpuinfo') as f:
      return next(l.split(':', 1)[1].strip() for l in f if l.startswith('model name'))
  except (OSError, StopIteration):
    return platform.processor()


def _mem_total() -> int:
  try:
    with open('/proc/meminfo') as f:
      return int(next(l for l in f if l.startswith('MemTotal')).split()[1]) * 1024
  except (OSError, StopIteration):
    return 0


if __name__ == '__main__':
  main()
