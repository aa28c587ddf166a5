"""Executor of RankingEvaluator (see component.py for what it computes)."""

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
from ranking import blessing
from ranking import evaluation
from ranking import report


class Executor(base_executor.BaseExecutor):

  def Do(self, input_dict: dict[str, list], output_dict: dict[str, list],
         exec_properties: dict[str, Any]) -> None:
    config = configs.section_from_json(configs.RankingEvaluationConfig,
                                       exec_properties['ranking_evaluation_config'])
    model = artifact_utils.get_single_instance(input_dict['model'])
    examples = artifact_utils.get_single_instance(input_dict['examples'])
    # The previous blessed ranker; not itself (a rerun of an unchanged pipeline).
    previous = [m for m in input_dict.get('baseline_model') or [] if m.id != model.id]
    result = evaluation.evaluate_exported(
        path_utils.serving_model_path(model.uri),
        [layout.split_pattern(examples.uri, split) for split in layout.with_history(
            (layout.TRAIN, layout.VALIDATION),
            artifact_utils.decode_split_names(examples.split_names))],
        layout.split_pattern(examples.uri, layout.TEST), config,
        path_utils.serving_model_path(previous[0].uri) if previous else None)
    blessed, reasons, untested = blessing.bless(result, config)
    result['blessing'] = {'blessed': blessed, 'reasons': reasons, 'untested': untested,
                          'rule': blessing.rule(config)}
    result['model'] = {'uri': model.uri, 'id': model.id}
    result['previous_blessed'] = ({'uri': previous[0].uri, 'id': previous[0].id}
                                  if previous else None)

    out = artifact_utils.get_single_uri(output_dict['evaluation'])
    with tf.io.gfile.GFile(os.path.join(out, layout.RANKING_METRICS_FILE), 'w') as f:
      json.dump(result, f, indent=2)
    with tf.io.gfile.GFile(os.path.join(out, layout.RANKING_SUMMARY_FILE), 'w') as f:
      f.write(report.format_table(result) + '\n')
    text = report.format_summary(result)
    with tf.io.gfile.GFile(os.path.join(out, layout.EVALUATION_SUMMARY_FILE), 'w') as f:
      f.write(text + '\n')
    logging.info('%s', text)

    artifacts.write_blessing(artifact_utils.get_single_instance(output_dict['blessing']),
                             blessed, model)
