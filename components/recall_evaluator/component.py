"""RecallEvaluator: Recall@K per scenario over the full item corpus, and the blessing.

Inputs: the trained model (exported towers), the raw examples (train split for the
popularity baselines, eval split for queries and ground truth), the raw item corpus,
optionally the teacher (its AUC per scenario) and the previous blessed model.
Outputs: evaluation (metrics.json, recall.png, summary.txt) and a standard ModelBlessing
(custom property blessed = 1 or 0), so TFX's LatestBlessedModelStrategy finds it.
"""

from typing import Optional

from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import channel
from tfx.types import component_spec
from tfx.types import standard_artifacts

from components import artifacts
from components.recall_evaluator import executor
from core import config as configs


class RecallEvaluatorSpec(component_spec.ComponentSpec):
  PARAMETERS = {
      'evaluation_config': component_spec.ExecutionParameter(type=str),  # JSON
  }
  INPUTS = {
      'model': component_spec.ChannelParameter(type=standard_artifacts.Model),
      'examples': component_spec.ChannelParameter(type=standard_artifacts.Examples),
      'item_corpus': component_spec.ChannelParameter(type=standard_artifacts.Examples),
      'teacher': component_spec.ChannelParameter(type=artifacts.TeacherModel,
                                                 optional=True),
      'baseline_model': component_spec.ChannelParameter(type=standard_artifacts.Model,
                                                        optional=True),
  }
  OUTPUTS = {
      'evaluation': component_spec.ChannelParameter(
          type=standard_artifacts.ModelEvaluation),
      'blessing': component_spec.ChannelParameter(type=standard_artifacts.ModelBlessing),
  }


class RecallEvaluator(base_component.BaseComponent):
  SPEC_CLASS = RecallEvaluatorSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, model, examples, item_corpus, config: configs.EvaluationConfig,
               teacher: Optional[channel.BaseChannel] = None,
               baseline_model: Optional[channel.BaseChannel] = None):
    super().__init__(spec=RecallEvaluatorSpec(
        model=model, examples=examples, item_corpus=item_corpus, teacher=teacher,
        baseline_model=baseline_model,
        evaluation_config=configs.section_to_json(config),
        evaluation=channel.Channel(type=standard_artifacts.ModelEvaluation),
        blessing=channel.Channel(type=standard_artifacts.ModelBlessing)))
