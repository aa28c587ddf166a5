"""Executor of IndexBuilder (see component.py)."""

import dataclasses
import json
import os
import time
from typing import Any

from absl import logging
import tensorflow as tf
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components import retrieval_eval as rev
from components.index_builder import retrieval_model
from components.index_builder import scann_index
from models import export
from pipeline import configs

RETRIEVAL_MODEL_DIR = 'retrieval_model'


class Executor(base_executor.BaseExecutor):

  def Do(self, input_dict: dict[str, list], output_dict: dict[str, list],
         exec_properties: dict[str, Any]) -> None:
    config = configs.from_dict(configs.IndexConfig,
                               json.loads(exec_properties['index_config']))
    model_dir = path_utils.serving_model_path(
        artifact_utils.get_single_uri(input_dict['model']))
    corpus = artifact_utils.get_single_uri(input_dict['item_corpus'])
    examples = artifact_utils.get_single_uri(input_dict['examples'])
    out = artifact_utils.get_single_uri(output_dict['index'])

    towers = rev.load_towers(model_dir)
    item_ids, embeddings = rev.corpus_embeddings(towers.item,
                                                 rev.split_pattern(corpus, 'corpus'))
    params = scann_index.parameters(len(item_ids), config)
    started = time.perf_counter()
    searcher = scann_index.build_searcher(embeddings, params)
    build_seconds = time.perf_counter() - started
    scann_index.save(out, searcher, item_ids, embeddings)
    retrieval_model.save_retrieval_model(
        os.path.join(model_dir, export.USER_TOWER_DIR), item_ids, embeddings, params,
        os.path.join(out, RETRIEVAL_MODEL_DIR))

    queries = rev.eval_queries(rev.read_events(rev.split_pattern(examples, 'eval')))
    query_embeddings = rev.embed(towers.user, queries.examples)
    exact = rev.exact_top_k(query_embeddings, embeddings, params.k)
    approximate, _ = searcher.search_batched(query_embeddings,
                                             final_num_neighbors=params.k)
    manifest = {
        'corpus_size': int(len(item_ids)),
        'dimension': int(embeddings.shape[1]),
        'distance': 'dot_product',
        'parameters': dataclasses.asdict(params),
        'model_fingerprint': export.towers_fingerprint(model_dir),
        'user_tower_fingerprint': export.directory_fingerprint(
            os.path.join(model_dir, export.USER_TOWER_DIR)),
        'build_seconds': build_seconds,
        'recall_vs_exact': {'k': params.k, 'queries': int(len(query_embeddings)),
                            'recall': scann_index.recall_against_exact(approximate, exact)},
    }
    with tf.io.gfile.GFile(os.path.join(out, scann_index.MANIFEST), 'w') as f:
      json.dump(manifest, f, indent=2)
    logging.info('ScaNN index of %d items: recall@%d against exact %.4f on %d queries',
                 len(item_ids), params.k, manifest['recall_vs_exact']['recall'],
                 len(query_embeddings))
