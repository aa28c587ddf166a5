"""SystemEvaluator: retrieval alone, retrieval + ranker, and the ranker over the whole
corpus, on the test split (ranking/system.py).

Inputs: the retrieval model evaluated on the test window (the Trainer's, trained on the
train window), the ranker (RankerTrainer's, same window), the raw examples (test queries)
and the item corpus (as of the test window's start). Output: evaluation with
system_metrics.json and system_summary.md (scenario x stage x Recall@k, NDCG@k with
intervals). It reports; it blesses nothing.
"""

from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import channel
from tfx.types import component_spec
from tfx.types import standard_artifacts

from components import artifacts
from components.system_evaluator import executor
from core import config as configs


class SystemEvaluatorSpec(component_spec.ComponentSpec):
  PARAMETERS = {
      'recommend_config': component_spec.ExecutionParameter(type=str),  # JSON
      'evaluation_config': component_spec.ExecutionParameter(type=str),  # bootstrap
  }
  INPUTS = {
      'model': component_spec.ChannelParameter(type=standard_artifacts.Model),
      'ranker': component_spec.ChannelParameter(type=artifacts.RankerModel),
      'examples': component_spec.ChannelParameter(type=standard_artifacts.Examples),
      'item_corpus': component_spec.ChannelParameter(type=standard_artifacts.Examples),
  }
  OUTPUTS = {
      'evaluation': component_spec.ChannelParameter(
          type=standard_artifacts.ModelEvaluation),
  }


class SystemEvaluator(base_component.BaseComponent):
  SPEC_CLASS = SystemEvaluatorSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, model, ranker, examples, item_corpus,
               config: configs.RecommendConfig, evaluation: configs.EvaluationConfig):
    super().__init__(spec=SystemEvaluatorSpec(
        model=model, ranker=ranker, examples=examples, item_corpus=item_corpus,
        recommend_config=configs.section_to_json(config),
        evaluation_config=configs.section_to_json(evaluation),
        evaluation=channel.Channel(type=standard_artifacts.ModelEvaluation)))
