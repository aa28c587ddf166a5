"""Executor of BlessedModelComparison (see component.py)."""

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
from retrieval import blessing
from retrieval import evaluation
from retrieval import report


class Executor(base_executor.BaseExecutor):

  def Do(self, input_dict: dict[str, list], output_dict: dict[str, list],
         exec_properties: dict[str, Any]) -> None:
    config = configs.section_from_json(configs.EvaluationConfig,
                                       exec_properties['evaluation_config'])
    model = artifact_utils.get_single_instance(input_dict['model'])
    baselines = [b for b in input_dict.get('baseline_model') or [] if b.id != model.id]
    comparison = {}
    if baselines:
      examples = artifact_utils.get_single_uri(input_dict['examples'])
      corpus = artifact_utils.get_single_uri(input_dict['item_corpus'])
      comparison = evaluation.compare(
          path_utils.serving_model_path(model.uri),
          _towers_dir(baselines[0].uri),
          layout.split_pattern(examples, layout.TEST),
          layout.split_pattern(corpus, layout.TEST), config)
      comparison['baseline'] = {'uri': baselines[0].uri, 'id': baselines[0].id}
    comparison['regressions'] = blessing.regressions(comparison, config)
    out = artifact_utils.get_single_uri(output_dict['comparison'])
    with tf.io.gfile.GFile(os.path.join(out, layout.COMPARISON_FILE), 'w') as f:
      json.dump(comparison, f, indent=2)
    text = report.format_comparison(comparison)
    with tf.io.gfile.GFile(os.path.join(out, layout.COMPARISON_SUMMARY_FILE), 'w') as f:
      f.write(text + '\n')
    logging.info('%s', text)


def _towers_dir(uri: str) -> str:
  """A Model artifact's exported towers: its serving directory, or the artifact itself
  (a release, which holds the towers at its top; a refresh's baseline)."""
  serving = path_utils.serving_model_path(uri)
  return serving if tf.io.gfile.exists(serving) else uri
