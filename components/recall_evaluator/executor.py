"""Executor of RecallEvaluator (see component.py for what it computes)."""

import json
import os
from typing import Any

from absl import logging
import tensorflow as tf
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils
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
    examples = artifact_utils.get_single_instance(input_dict['examples'])
    corpus = artifact_utils.get_single_instance(input_dict['item_corpus'])
    baselines = input_dict.get('baseline_model') or []
    teachers = input_dict.get('teacher') or []
    baseline_dir = (path_utils.serving_model_path(baselines[0].uri)
                    if baselines and baselines[0].id != model.id else None)
    teacher_dir = (os.path.join(teachers[0].uri, layout.TEACHER_SERVING_DIR)
                   if teachers and tf.io.gfile.exists(
                       os.path.join(teachers[0].uri, layout.TEACHER_SERVING_DIR))
                   else None)

    result = evaluation.evaluate(
        path_utils.serving_model_path(model.uri),
        layout.split_pattern(examples.uri, layout.TRAIN),
        layout.split_pattern(examples.uri, layout.EVAL),
        layout.split_pattern(corpus.uri, layout.CORPUS), config, baseline_dir, teacher_dir)
    blessed, reasons = blessing.bless(result['recall'], config)
    result['blessing'] = {'blessed': blessed, 'reasons': reasons,
                          'rule': f'recall > per-scenario popularity + '
                                  f'{config.bless_margin} on every scenario and K'}
    result['model'] = {'uri': model.uri, 'id': model.id}

    out = artifact_utils.get_single_uri(output_dict['evaluation'])
    with tf.io.gfile.GFile(os.path.join(out, layout.METRICS_FILE), 'w') as f:
      json.dump(result, f, indent=2)
    text = report.format_summary(result, config.recall_ks)
    with tf.io.gfile.GFile(os.path.join(out, layout.EVALUATION_SUMMARY_FILE), 'w') as f:
      f.write(text + '\n')
    report.recall_chart(result['recall'], config.recall_ks,
                        os.path.join(out, layout.CHART_FILE),
                        'DSMOE retrieval: Recall@K per scenario (eval split)')
    logging.info('%s', text)

    blessing_artifact = artifact_utils.get_single_instance(output_dict['blessing'])
    blessing_artifact.set_int_custom_property('blessed', int(blessed))
    blessing_artifact.set_int_custom_property('current_model_id', model.id)
    blessing_artifact.set_string_custom_property('current_model', model.uri)
    io_utils.write_string_file(os.path.join(
        blessing_artifact.uri, layout.BLESSED_FILE if blessed else layout.NOT_BLESSED_FILE),
        '')
