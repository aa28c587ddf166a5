"""Executor of RecallEvaluator (see component.py for what it computes)."""

import json
import os
from typing import Any

from absl import logging
import tensorflow as tf
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components import artifacts
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
    teachers = input_dict.get('teacher') or []
    teacher_dir = (os.path.join(teachers[0].uri, layout.TEACHER_SERVING_DIR)
                   if teachers and tf.io.gfile.exists(
                       os.path.join(teachers[0].uri, layout.TEACHER_SERVING_DIR))
                   else None)

    result = evaluation.evaluate(
        path_utils.serving_model_path(model.uri),
        [layout.split_pattern(examples.uri, split) for split in layout.with_history(
            (layout.TRAIN, layout.VALIDATION),
            artifact_utils.decode_split_names(examples.split_names))],
        layout.split_pattern(examples.uri, layout.TEST),
        layout.split_pattern(corpus.uri, layout.TEST), config, teacher_dir)
    blessed, reasons = blessing.bless(result, config)
    result['blessing'] = {'blessed': blessed, 'reasons': reasons,
                          'rule': blessing.rule(config)}
    result['model'] = {'uri': model.uri, 'id': model.id}

    out = artifact_utils.get_single_uri(output_dict['evaluation'])
    with tf.io.gfile.GFile(os.path.join(out, layout.METRICS_FILE), 'w') as f:
      json.dump(result, f, indent=2)
    text = report.format_summary(result)
    with tf.io.gfile.GFile(os.path.join(out, layout.EVALUATION_SUMMARY_FILE), 'w') as f:
      f.write(text + '\n')
    report.recall_chart(result, os.path.join(out, layout.CHART_FILE),
                        'DSMOE retrieval: Recall@K per scenario (test split)')
    logging.info('%s', text)

    artifacts.write_blessing(artifact_utils.get_single_instance(output_dict['blessing']),
                             blessed, model)
