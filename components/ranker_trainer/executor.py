"""Executor of RankerTrainer: TFX's generic Trainer executor with the scenario mapping, a
resumable backup directory and, for a refit, the evaluated ranker's schedule passed to the
run_fn (keys in core/layout.py)."""

import json
import os

import tensorflow as tf
from tfx.components.trainer import executor as trainer_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from core import layout


class Executor(trainer_executor.GenericExecutor):

  def _GetFnArgs(self, input_dict, output_dict, exec_properties):
    fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
    config = dict(fn_args.custom_config or {})
    config[layout.TRAINER_SCENARIO_MAPPING] = artifact_utils.get_single_uri(
        input_dict['scenario_mapping'])
    config[layout.TRAINER_BACKUP_DIR] = layout.trainer_backup_dir(
        input_dict, exec_properties, artifact_utils.get_single_uri(output_dict['model']))
    schedule = input_dict.get('schedule_model') or []
    if schedule:
      evaluated = path_utils.serving_model_path(artifact_utils.get_single_uri(schedule))
      with tf.io.gfile.GFile(os.path.join(evaluated, layout.TRAINING_SUMMARY_FILE)) as f:
        summary = json.load(f)
      config[layout.RANKER_REFIT_OF] = json.dumps({
          'epochs': summary['epoch_kept'],
          'fingerprint': layout.directory_fingerprint(evaluated)})
    fn_args.custom_config = config
    return fn_args
