"""The ScaNN index of the item corpus: parameters, build, files, recall against exact.

Files of an index directory (names in core/layout.py):
    scann/                 the serialized ScaNN searcher (scann.scann_ops_pybind)
    item_ids.txt           the item id of each index row, one per line
    item_embeddings.npy    the item embeddings [N, d] (for exact search and rebuilding)
    index_manifest.json    parameters, corpus size, fingerprints, recall against exact
"""

import dataclasses
import math
import os
import re

import numpy as np
import scann
import tensorflow as tf

from core import config as configs
from core import layout


@dataclasses.dataclass(frozen=True)
class ScannParameters:
  k: int
  num_leaves: int
  num_leaves_to_search: int
  reorder_candidates: int
  dims_per_block: int
  anisotropic_quantization_threshold: float
  training_sample_size: int


def parameters(corpus_size: int, config: configs.IndexConfig) -> ScannParameters:
  """Tree size from the corpus: ~sqrt(N) leaves, a tenth of them (at least 10) searched,
  15k candidates rescored exactly; every value the config sets wins.

  Measured (benchmarks/scann_vs_exact.py, 1,000,000 items of the KuaiRand release's
  geometry, k=100, 2 cores): 100 of 1,000 leaves and 1,500 candidates give recall 0.97
  against exact search at 9.7x its speed; 50 leaves and 400 candidates only 0.83.
  """
  leaves = config.num_leaves or max(1, round(math.sqrt(corpus_size)))
  leaves = min(leaves, corpus_size)
  to_search = config.num_leaves_to_search or max(min(10, leaves), math.ceil(0.1 * leaves))
  k = min(config.k, corpus_size)
  return ScannParameters(
      k=k, num_leaves=leaves, num_leaves_to_search=min(to_search, leaves),
      reorder_candidates=min(config.reorder_candidates or 15 * k, corpus_size),
      dims_per_block=config.dims_per_block,
      anisotropic_quantization_threshold=config.anisotropic_quantization_threshold,
      training_sample_size=min(corpus_size, 250_000))


def build_searcher(embeddings: np.ndarray, params: ScannParameters):
  """Tree partitioning + asymmetric hashing + exact reordering, dot-product similarity."""
  return (scann.scann_ops_pybind.builder(embeddings.astype(np.float32), params.k,
                                          'dot_product')
          .tree(num_leaves=params.num_leaves,
                num_leaves_to_search=params.num_leaves_to_search,
                training_sample_size=params.training_sample_size)
          .score_ah(params.dims_per_block,
                    anisotropic_quantization_threshold=
                    params.anisotropic_quantization_threshold)
          .reorder(params.reorder_candidates)
          .build())


_SCANN_ASSETS = 'scann_assets.pbtxt'  # ScaNN's list of the searcher's files


def save(directory: str, searcher, item_ids: np.ndarray, embeddings: np.ndarray) -> None:
  scann_dir = os.path.join(directory, layout.SCANN_DIR)
  tf.io.gfile.makedirs(scann_dir)
  searcher.serialize(scann_dir)
  # ScaNN records each asset by its absolute path; a bare file name is resolved against
  # the directory the searcher is loaded from, so the index (and a release holding a
  # copy of it) loads wherever it is copied to.
  assets = os.path.join(scann_dir, _SCANN_ASSETS)
  with tf.io.gfile.GFile(assets) as f:
    text = f.read()
  with tf.io.gfile.GFile(assets, 'w') as f:
    f.write(re.sub(r'asset_path: "[^"]*/([^"/]+)"', r'asset_path: "\1"', text))
  with tf.io.gfile.GFile(os.path.join(directory, layout.ITEM_IDS_FILE), 'w') as f:
    f.write(''.join(f'{item}\n' for item in item_ids))
  with tf.io.gfile.GFile(os.path.join(directory, layout.ITEM_EMBEDDINGS_FILE), 'wb') as f:
    np.save(f, embeddings.astype(np.float32))


def load(directory: str):
  """(searcher, item ids [N], embeddings [N, d]) of a saved index."""
  searcher = scann.scann_ops_pybind.load_searcher(
      os.path.join(directory, layout.SCANN_DIR))
  with tf.io.gfile.GFile(os.path.join(directory, layout.ITEM_IDS_FILE)) as f:
    item_ids = np.array(f.read().splitlines())
  with tf.io.gfile.GFile(os.path.join(directory, layout.ITEM_EMBEDDINGS_FILE), 'rb') as f:
    embeddings = np.load(f)
  return searcher, item_ids, embeddings


def recall_against_exact(approximate: np.ndarray, exact: np.ndarray) -> float:
  """Mean |ANN top-k ∩ exact top-k| / k over queries (rows of indices)."""
  if not len(exact):
    return float('nan')
  k = exact.shape[1]
  return float(np.mean([len(set(a[:k]) & set(e)) / k for a, e in zip(approximate, exact)]))
