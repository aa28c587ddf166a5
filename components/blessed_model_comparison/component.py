"""BlessedModelComparison: the trained model against the previous blessed one.

Inputs: the trained model, the raw examples (the test split's queries), the raw item
corpus (its test split) and, optionally, the previous blessed model (TFX's
LatestBlessedModelStrategy; in a refresh, the release it started from, imported).
Output: a ModelComparison artifact (comparison.json, summary.txt): recall per scenario of
both on the same test queries, intervals of the paired difference, and the regressions
(beyond evaluation.max_drop_vs_blessed; with evaluation.significant_drop_vs_blessed,
significantly below it), which stop the ReleasePusher. Kept apart from the RecallEvaluator so that its blessing, on which the
refit depends, does not change when only the previous blessed model does.
"""

from typing import Optional

from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import channel
from tfx.types import component_spec
from tfx.types import standard_artifacts

from components import artifacts
from components.blessed_model_comparison import executor
from core import config as configs


class BlessedModelComparisonSpec(component_spec.ComponentSpec):
  PARAMETERS = {
      'evaluation_config': component_spec.ExecutionParameter(type=str),  # JSON
  }
  INPUTS = {
      'model': component_spec.ChannelParameter(type=standard_artifacts.Model),
      'examples': component_spec.ChannelParameter(type=standard_artifacts.Examples),
      'item_corpus': component_spec.ChannelParameter(type=standard_artifacts.Examples),
      'baseline_model': component_spec.ChannelParameter(type=standard_artifacts.Model,
                                                        optional=True),
  }
  OUTPUTS = {
      'comparison': component_spec.ChannelParameter(type=artifacts.ModelComparison),
  }


class BlessedModelComparison(base_component.BaseComponent):
  SPEC_CLASS = BlessedModelComparisonSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, model, examples, item_corpus, config: configs.EvaluationConfig,
               baseline_model: Optional[channel.BaseChannel] = None):
    super().__init__(spec=BlessedModelComparisonSpec(
        model=model, examples=examples, item_corpus=item_corpus,
        baseline_model=baseline_model,
        evaluation_config=configs.section_to_json(config),
        comparison=channel.Channel(type=artifacts.ModelComparison)))
