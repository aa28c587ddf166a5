"""RankingEvaluator: the ranker's AUC and GAUC per scenario and task, and its blessing.

Inputs: the trained ranker (its SavedModel from raw features), the raw examples (the train
and validation windows for the popularity baseline, the test window's exposures to score)
and, optionally, the previous blessed ranker (scored on the same exposures). The numbers
are ranking/evaluation.py's (user-level paired Poisson bootstrap), the blessing
ranking/blessing.py's interval rule against popularity, as retrieval's.
Outputs: evaluation (ranking_metrics.json, ranking_summary.md, summary.txt) and a
RankerBlessing (custom property blessed = 1 or 0) that the ReleasePusher reads and TFX's
LatestBlessedModelStrategy resolves.
"""

from typing import Optional

from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import channel
from tfx.types import component_spec
from tfx.types import standard_artifacts

from components import artifacts
from components.ranking_evaluator import executor
from core import config as configs


class RankingEvaluatorSpec(component_spec.ComponentSpec):
  PARAMETERS = {
      'ranking_evaluation_config': component_spec.ExecutionParameter(type=str),  # JSON
  }
  INPUTS = {
      'model': component_spec.ChannelParameter(type=artifacts.RankerModel),
      'examples': component_spec.ChannelParameter(type=standard_artifacts.Examples),
      'baseline_model': component_spec.ChannelParameter(type=artifacts.RankerModel,
                                                        optional=True),
  }
  OUTPUTS = {
      'evaluation': component_spec.ChannelParameter(
          type=standard_artifacts.ModelEvaluation),
      'blessing': component_spec.ChannelParameter(type=artifacts.RankerBlessing),
  }


class RankingEvaluator(base_component.BaseComponent):
  SPEC_CLASS = RankingEvaluatorSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, model, examples, config: configs.RankingEvaluationConfig,
               baseline_model: Optional[channel.BaseChannel] = None):
    super().__init__(spec=RankingEvaluatorSpec(
        model=model, examples=examples, baseline_model=baseline_model,
        ranking_evaluation_config=configs.section_to_json(config),
        evaluation=channel.Channel(type=standard_artifacts.ModelEvaluation),
        blessing=channel.Channel(type=artifacts.RankerBlessing)))
