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

from core import config as configs
from core import layout
from retrieval import evaluation as rev
from retrieval import retrieval_model
from retrieval import scann_index


class Executor(base_executor.BaseExecutor):

  def Do(self, input_dict: dict[str, list], output_dict: dict[str, list],
         exec_properties: dict[str, Any]) -> None:
    config = configs.section_from_json(configs.IndexConfig, exec_properties['index_config'])
    model_dir = path_utils.serving_model_path(
        artifact_utils.get_single_uri(input_dict['model']))
    corpus = artifact_utils.get_single_uri(input_dict['item_corpus'])
    examples = artifact_utils.get_single_uri(input_dict['examples'])
    out = artifact_utils.get_single_uri(output_dict['index'])

    towers = rev.load_towers(model_dir)
    item_ids, embeddings = rev.corpus_embeddings(  # items as served: as of the last event
        towers.item, layout.split_pattern(corpus, layout.ALL))
    params = scann_index.parameters(len(item_ids), config)
    started = time.perf_counter()
    searcher = scann_index.build_searcher(embeddings, params)
    build_seconds = time.perf_counter() - started
    scann_index.save(out, searcher, item_ids, embeddings)
    retrieval_model.save_retrieval_model(
        os.path.join(model_dir, layout.USER_TOWER_DIR), item_ids, embeddings, params,
        os.path.join(out, layout.RETRIEVAL_MODEL_DIR))

    queries = rev.eval_queries(rev.read_events(layout.split_pattern(examples, layout.TEST)))
    query_embeddings = rev.embed(towers.user, queries.examples)
    exact = rev.exact_top_k(query_embeddings, embeddings, params.k)
    approximate, _ = searcher.search_batched(query_embeddings,
                                             final_num_neighbors=params.k)
    manifest = {
        'corpus_size': int(len(item_ids)),
        'dimension': int(embeddings.shape[1]),
        'distance': 'dot_product',
        'parameters': dataclasses.asdict(params),
        'model_fingerprint': layout.towers_fingerprint(model_dir),
        'user_tower_fingerprint': layout.directory_fingerprint(
            os.path.join(model_dir, layout.USER_TOWER_DIR)),
        'build_seconds': build_seconds,
        'recall_vs_exact': {'k': params.k, 'queries': int(len(query_embeddings)),
                            'recall': scann_index.recall_against_exact(approximate, exact)},
    }
    with tf.io.gfile.GFile(os.path.join(out, layout.INDEX_MANIFEST_FILE), 'w') as f:
      json.dump(manifest, f, indent=2)
    logging.info('ScaNN index of %d items: recall@%d against exact %.4f on %d queries',
                 len(item_ids), params.k, manifest['recall_vs_exact']['recall'],
                 len(query_embeddings))
