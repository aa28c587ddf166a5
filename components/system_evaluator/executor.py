"""Executor of SystemEvaluator (see component.py for what it computes)."""

import json
import os
from typing import Any

from absl import logging
import tensorflow as tf
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from core import config as configs
from core import layout
from ranking import system


class Executor(base_executor.BaseExecutor):

  def Do(self, input_dict: dict[str, list], output_dict: dict[str, list],
         exec_properties: dict[str, Any]) -> None:
    config = configs.section_from_json(configs.RecommendConfig,
                                       exec_properties['recommend_config'])
    evaluation = configs.section_from_json(configs.EvaluationConfig,
                                           exec_properties['evaluation_config'])
    model = artifact_utils.get_single_instance(input_dict['model'])
    ranker = artifact_utils.get_single_instance(input_dict['ranker'])
    result = system.evaluate(
        path_utils.serving_model_path(model.uri), path_utils.serving_model_path(ranker.uri),
        layout.split_pattern(artifact_utils.get_single_uri(input_dict['examples']),
                             layout.TEST),
        layout.split_pattern(artifact_utils.get_single_uri(input_dict['item_corpus']),
                             layout.TEST), config, evaluation)
    result['model'] = {'uri': model.uri, 'id': model.id}
    result['ranker'] = {'uri': ranker.uri, 'id': ranker.id}
    out = artifact_utils.get_single_uri(output_dict['evaluation'])
    with tf.io.gfile.GFile(os.path.join(out, layout.SYSTEM_METRICS_FILE), 'w') as f:
      json.dump(result, f, indent=2)
    text = system.format_table(result)
    with tf.io.gfile.GFile(os.path.join(out, layout.SYSTEM_SUMMARY_FILE), 'w') as f:
      f.write(text + '\n')
    logging.info('%s', text)
