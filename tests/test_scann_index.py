"""ScaNN index parameters, build, save/load and recall against exact search."""

import os

import numpy as np

from core import config as configs
from retrieval import evaluation as rev
from retrieval import scann_index


def test_parameters_follow_the_corpus_size_and_config_overrides():
  small = scann_index.parameters(1145, configs.IndexConfig())
  assert (small.num_leaves, small.num_leaves_to_search, small.reorder_candidates) == (
      34, 10, 1145)
  large = scann_index.parameters(1_000_000, configs.IndexConfig())
  assert (large.num_leaves, large.num_leaves_to_search, large.reorder_candidates) == (
      1000, 100, 1500)
  assert large.training_sample_size == 250_000
  tiny = scann_index.parameters(30, configs.IndexConfig())
  assert tiny.k == 30 and tiny.reorder_candidates == 30 and tiny.num_leaves_to_search <= 5
  custom = scann_index.parameters(5000, configs.IndexConfig(num_leaves=20, k=10))
  assert (custom.num_leaves, custom.k, custom.reorder_candidates) == (20, 10, 150)


def test_recall_against_exact():
  exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
  approximate = np.array([[4, 3, 2, 1], [5, 6, 9, 10]])
  assert scann_index.recall_against_exact(approximate, exact) == 0.75


def _data(rng):
  embeddings = rng.normal(size=(3000, 16)).astype(np.float32)
  return embeddings, np.array([f'item{i}' for i in range(3000)]), rng.normal(
      size=(50, 16)).astype(np.float32)


def test_save_and_load_give_the_same_searcher(tmp_path):
  embeddings, ids, queries = _data(np.random.default_rng(0))
  searcher = scann_index.build_searcher(
      embeddings, scann_index.parameters(3000, configs.IndexConfig(k=20)))
  scann_index.save(str(tmp_path / 'saved'), searcher, ids, embeddings)
  # A release is a copy of the index: it must load where it lands, the original gone.
  os.rename(tmp_path / 'saved', tmp_path / 'moved')
  loaded, loaded_ids, loaded_embeddings = scann_index.load(str(tmp_path / 'moved'))
  np.testing.assert_array_equal(loaded_ids, ids)
  np.testing.assert_array_equal(loaded_embeddings, embeddings)
  np.testing.assert_array_equal(loaded.search_batched(queries, final_num_neighbors=20)[0],
                                searcher.search_batched(queries, final_num_neighbors=20)[0])


def test_searching_every_leaf_and_rescoring_every_item_is_exact():
  embeddings, _, queries = _data(np.random.default_rng(1))
  params = scann_index.parameters(3000, configs.IndexConfig(
      k=20, num_leaves=30, num_leaves_to_search=30, reorder_candidates=3000))
  found, scores = scann_index.build_searcher(embeddings, params).search_batched(
      queries, final_num_neighbors=20)
  exact = rev.exact_top_k(queries, embeddings, 20)
  assert scann_index.recall_against_exact(found, exact) == 1.0
  np.testing.assert_allclose(scores, np.take_along_axis(queries @ embeddings.T, found, 1),
                             rtol=1e-4)  # reordering rescored exactly


def test_scale_benchmark_exact_search_and_shard_merge_estimate():
  """benchmarks/index_scale.py's chunked exact top-k and its sharded-recall estimate."""
  from benchmarks import index_scale
  rng = np.random.default_rng(2)
  items = rng.normal(size=(1000, 8)).astype(np.float32)
  queries = rng.normal(size=(20, 8)).astype(np.float32)
  np.testing.assert_array_equal(  # chunks smaller than k and not dividing the corpus
      index_scale.exact_top_k(queries, items, 10, chunk=7),
      np.argsort(-(queries @ items.T), axis=1)[:, :10])
  shard = index_scale._shard_of(np.arange(1000), 4)
  assert set(shard) == {0, 1, 2, 3} and 200 < np.sum(shard == 0) < 300
  rows = np.flatnonzero(shard == 0)
  exact = index_scale.exact_top_k(queries, items, 10)
  # A shard that returns its exact top-10: the merged top-10 is exact.
  shard_exact = index_scale.exact_top_k(queries, items[rows], 10)
  estimate = index_scale._merge_estimate(exact, rows, shard_exact, 4, 10)
  assert estimate['k_prime_10']['estimated_system_recall'] == 1.0
  assert 0 <= estimate['k_prime_2']['estimated_system_recall'] <= 1.0
