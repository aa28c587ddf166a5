"""ReleasePusher: writes a versioned release directory, only for a blessed model.

Inputs: the model to serve (the refit on every day: exported towers), the evaluated model
(trained on the train window) with its blessing, test evaluation and comparison with the
previous blessed model (a regression stops the release), the index built from
the served model, the scenario mapping, the user snapshot and the ingestion report (the
data windows, for the manifest's account of what the served model saw); optionally the
ranker to serve (the refit on every day of the evaluated one) with the evaluated ranker's
blessing and evaluation: a blessed ranker goes into the release as `ranker/` (with
`ranker_evaluation/`); one that is not blessed does not hold back the
retrieval release: the latest release's ranker is carried over, or, with none, the release
has no ranker, and the manifest says why. With a ranker, the release also holds the item
corpus as of the last event (`item_corpus/`, the candidates' item features) and
recommend.json (the blend of the recommend config over the ranker's tasks). With the
served model's teacher, its weights go in too (`teacher/warm_start/`, what a refresh
starts the teacher from). A refresh (`refresh_of`: the release it started from) trains no
ranker and carries that release's, and the manifest names the release. Output: a
standard PushedModel artifact (custom properties pushed, pushed_version,
pushed_destination). The release format is core/release_format.py.
"""

from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import channel
from tfx.types import component_spec
from tfx.types import standard_artifacts

from components import artifacts
from components.release_pusher import executor
from core import config as configs


class ReleasePusherSpec(component_spec.ComponentSpec):
  PARAMETERS = {
      'releases_dir': component_spec.ExecutionParameter(type=str),
      'pipeline_name': component_spec.ExecutionParameter(type=str),
      'dataset': component_spec.ExecutionParameter(type=str),
      'recommend_config': component_spec.ExecutionParameter(type=str),  # JSON
      # A refresh: the release it started from (the manifest says so; with no ranker
      # trained, that release's ranker is carried).
      'refresh_of': component_spec.ExecutionParameter(type=str, optional=True),
  }
  INPUTS = {
      'model': component_spec.ChannelParameter(type=standard_artifacts.Model),
      'evaluated_model': component_spec.ChannelParameter(type=standard_artifacts.Model),
      'model_blessing': component_spec.ChannelParameter(
          type=standard_artifacts.ModelBlessing),
      'evaluation': component_spec.ChannelParameter(
          type=standard_artifacts.ModelEvaluation),
      'comparison': component_spec.ChannelParameter(type=artifacts.ModelComparison),
      'index': component_spec.ChannelParameter(type=artifacts.RetrievalIndex),
      'scenario_mapping': component_spec.ChannelParameter(type=artifacts.ScenarioMapping),
      'user_snapshot': component_spec.ChannelParameter(type=standard_artifacts.Examples),
      'item_state': component_spec.ChannelParameter(type=standard_artifacts.Examples),
      'item_corpus': component_spec.ChannelParameter(type=standard_artifacts.Examples),
      'ingestion_report': component_spec.ChannelParameter(type=artifacts.IngestionReport),
      # The served model's teacher (distillation): its warm_start/ goes into the release.
      'teacher': component_spec.ChannelParameter(type=artifacts.TeacherModel,
                                                 optional=True),
      'ranker': component_spec.ChannelParameter(type=artifacts.RankerModel, optional=True),
      'ranker_blessing': component_spec.ChannelParameter(type=artifacts.RankerBlessing,
                                                         optional=True),
      'ranker_evaluation': component_spec.ChannelParameter(
          type=standard_artifacts.ModelEvaluation, optional=True),
  }
  OUTPUTS = {
      'pushed_model': component_spec.ChannelParameter(type=standard_artifacts.PushedModel),
  }


class ReleasePusher(base_component.BaseComponent):
  SPEC_CLASS = ReleasePusherSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, model, evaluated_model, model_blessing, evaluation, comparison, index,
               scenario_mapping, user_snapshot, item_state, item_corpus, ingestion_report,
               releases_dir: str, pipeline_name: str, dataset: str,
               recommend: configs.RecommendConfig, ranker=None, ranker_blessing=None,
               ranker_evaluation=None, teacher=None, refresh_of: str = ''):
    if len({ranker is None, ranker_blessing is None, ranker_evaluation is None}) > 1:
      raise ValueError('ReleasePusher takes the ranker with its blessing and evaluation, '
                       'all three or none')
    super().__init__(spec=ReleasePusherSpec(
        ranker=ranker, ranker_blessing=ranker_blessing, ranker_evaluation=ranker_evaluation,
        teacher=teacher, refresh_of=refresh_of,
        model=model, evaluated_model=evaluated_model, model_blessing=model_blessing,
        evaluation=evaluation, comparison=comparison, index=index,
        scenario_mapping=scenario_mapping,
        user_snapshot=user_snapshot, item_state=item_state, item_corpus=item_corpus,
        ingestion_report=ingestion_report, recommend_config=configs.section_to_json(recommend),
        releases_dir=releases_dir, pipeline_name=pipeline_name, dataset=dataset,
        pushed_model=channel.Channel(type=standard_artifacts.PushedModel)))
