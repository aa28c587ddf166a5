"""Executor of RankerTrainer: TFX's generic Trainer executor with the scenario mapping and
a resumable backup directory passed to the run_fn (keys in core/layout.py)."""

from tfx.components.trainer import executor as trainer_executor
from tfx.types import artifact_utils

from core import layout


class Executor(trainer_executor.GenericExecutor):

  def _GetFnArgs(self, input_dict, output_dict, exec_properties):
    fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
    config = dict(fn_args.custom_config or {})
    config[layout.TRAINER_SCENARIO_MAPPING] = artifact_utils.get_single_uri(
        input_dict['scenario_mapping'])
    config[layout.TRAINER_BACKUP_DIR] = layout.trainer_backup_dir(
        input_dict, exec_properties, artifact_utils.get_single_uri(output_dict['model']))
    fn_args.custom_config = config
    return fn_args
