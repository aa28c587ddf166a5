"""Prints ScaNN's recall@k against exact search and its speed-up, for several settings.

    python -m benchmarks.scann_vs_exact [--release outputs/releases/latest]
                                        [--synthetic-items 1000000] [--queries 1000]

Two corpora, both at the release's embedding dimension:
  - KuaiRand: the release's item embeddings, the release's own ScaNN parameters;
  - synthetic: N items drawn around the release's item embeddings (a random release item
    plus Gaussian noise of half the items' per-dimension spread), so the geometry resembles a
    real catalogue; tree of about sqrt(N) leaves as the IndexBuilder would choose.
Queries are user embeddings of snapshot users in random scenarios. Exact search is a
brute-force dot product and top-k (TensorFlow matmul + top_k, batched, as the Evaluator
does it). Both are timed on the same batched queries on this machine; the speed ratio
is exact time / ScaNN time. Settings vary the leaves searched and the candidates
rescored exactly, on one built tree.
"""

import argparse
import random
import time

import numpy as np

from core import config as configs
from retrieval import evaluation
from retrieval import scann_index
from serving.release import load_release
from serving.retriever import RetrievalRequest
from serving.retriever import Retriever


def _exact(queries: np.ndarray, items: np.ndarray, k: int) -> tuple[np.ndarray, float]:
  evaluation.exact_top_k(queries[:10], items, k)  # warm-up
  started = time.perf_counter()
  indices = evaluation.exact_top_k(queries, items, k, chunk=250)
  return indices, time.perf_counter() - started


def _report(name: str, items: np.ndarray, queries: np.ndarray, k: int,
            settings: list[tuple[int, int]]) -> None:
  params = scann_index.parameters(len(items), configs.IndexConfig(k=k))
  started = time.perf_counter()
  searcher = scann_index.build_searcher(items, params)
  build = time.perf_counter() - started
  exact, exact_seconds = _exact(queries, items, k)
  print(f'\n{name}: {len(items):,} items x {items.shape[1]} dims, {len(queries):,} '
        f'queries, k={k}; tree of {params.num_leaves} leaves built in {build:.1f} s; '
        f'exact search {1000 * exact_seconds / len(queries):.3f} ms/query')
  print(f'  {"leaves searched":>15} {"reordered":>9} {"recall@" + str(k):>10} '
        f'{"ms/query":>9} {"speed-up":>8}')
  for leaves, reorder in settings:
    leaves = min(leaves, params.num_leaves)
    kwargs = dict(final_num_neighbors=k, leaves_to_search=leaves,
                  pre_reorder_num_neighbors=max(reorder, k))
    searcher.search_batched(queries[:10], **kwargs)  # warm-up
    started = time.perf_counter()
    approximate, _ = searcher.search_batched(queries, **kwargs)
    seconds = time.perf_counter() - started
    recall = scann_index.recall_against_exact(np.asarray(approximate), exact)
    print(f'  {leaves:>15} {reorder:>9} {recall:>10.4f} '
          f'{1000 * seconds / len(queries):>9.3f} {exact_seconds / seconds:>7.1f}x')


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--release', default='outputs/releases/latest')
  parser.add_argument('--synthetic-items', type=int, default=1_000_000)
  parser.add_argument('--queries', type=int, default=1000)
  parser.add_argument('--k', type=int, default=100)
  args = parser.parse_args()
  release = load_release(args.release, verify_checksums=False)
  retriever = Retriever(release)
  rng = random.Random(0)
  users = rng.sample(sorted(release.snapshot), min(args.queries, len(release.snapshot)))
  requests = [RetrievalRequest(u, rng.choice(release.scenarios)) for u in users]
  queries = np.concatenate([
      retriever.embed([retriever.check(r) for r in requests[i:i + 256]])
      for i in range(0, len(requests), 256)]).astype(np.float32)
  items = release.item_embeddings.astype(np.float32)
  params = scann_index.parameters(len(items), configs.IndexConfig(k=args.k))
  print(f'release {release.version}')
  _report('KuaiRand corpus', items, queries, args.k,
          [(params.num_leaves_to_search, params.reorder_candidates),
           (max(1, params.num_leaves_to_search // 2), 4 * args.k),
           (2 * params.num_leaves_to_search, 2 * params.reorder_candidates)])
  generator = np.random.default_rng(0)
  base = items[generator.integers(0, len(items), args.synthetic_items)]
  synthetic = (base + generator.normal(size=base.shape).astype(np.float32)
               * 0.5 * items.std(axis=0)).astype(np.float32)
  del base
  leaves = scann_index.parameters(len(synthetic), configs.IndexConfig(k=args.k))
  _report('synthetic corpus', synthetic, queries, args.k,
          [(leaves.num_leaves_to_search, leaves.reorder_candidates),
           (max(1, leaves.num_leaves_to_search // 2), 4 * args.k),
           (2 * leaves.num_leaves_to_search, 2 * leaves.reorder_candidates)])


if __name__ == '__main__':
  main()
