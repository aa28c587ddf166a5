"""ReleasePusher: writes a versioned release directory, only for a blessed model.

Inputs: the model (exported towers), its blessing and evaluation, the index built from
it, the scenario mapping and the user snapshot. Output: a standard PushedModel artifact
(custom properties pushed, pushed_version, pushed_destination). The release format is
core/release_format.py.
"""

from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import channel
from tfx.types import component_spec
from tfx.types import standard_artifacts

from components import artifacts
from components.release_pusher import executor


class ReleasePusherSpec(component_spec.ComponentSpec):
  PARAMETERS = {
      'releases_dir': component_spec.ExecutionParameter(type=str),
      'pipeline_name': component_spec.ExecutionParameter(type=str),
      'dataset': component_spec.ExecutionParameter(type=str),
  }
  INPUTS = {
      'model': component_spec.ChannelParameter(type=standard_artifacts.Model),
      'model_blessing': component_spec.ChannelParameter(
          type=standard_artifacts.ModelBlessing),
      'evaluation': component_spec.ChannelParameter(
          type=standard_artifacts.ModelEvaluation),
      'index': component_spec.ChannelParameter(type=artifacts.RetrievalIndex),
      'scenario_mapping': component_spec.ChannelParameter(type=artifacts.ScenarioMapping),
      'user_snapshot': component_spec.ChannelParameter(type=standard_artifacts.Examples),
  }
  OUTPUTS = {
      'pushed_model': component_spec.ChannelParameter(type=standard_artifacts.PushedModel),
  }


class ReleasePusher(base_component.BaseComponent):
  SPEC_CLASS = ReleasePusherSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, model, model_blessing, evaluation, index, scenario_mapping,
               user_snapshot, releases_dir: str, pipeline_name: str, dataset: str):
    super().__init__(spec=ReleasePusherSpec(
        model=model, model_blessing=model_blessing, evaluation=evaluation, index=index,
        scenario_mapping=scenario_mapping, user_snapshot=user_snapshot,
        releases_dir=releases_dir, pipeline_name=pipeline_name, dataset=dataset,
        pushed_model=channel.Channel(type=standard_artifacts.PushedModel)))
