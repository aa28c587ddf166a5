"""RecallEvaluator: Recall@K per scenario over the full item corpus, and the blessing.

Inputs: the trained model (exported towers), the raw examples (train and validation
splits for the popularity baselines, the test split for queries and ground truth), the
raw item corpus (its test split: items as of the test window's start), optionally the
teacher (its AUC per scenario). The blessing is retrieval/blessing.py's interval rule
against popularity; the comparison with the previous blessed model is the
BlessedModelComparison's, so that a model's blessing (which the refit depends on) does not
change when only the previous blessed model does.
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
               teacher: Optional[channel.BaseChannel] = None):
    super().__init__(spec=RecallEvaluatorSpec(
        model=model, examples=examples, item_corpus=item_corpus, teacher=teacher,
        evaluation_config=configs.section_to_json(config),
        evaluation=channel.Channel(type=standard_artifacts.ModelEvaluation),
        blessing=channel.Channel(type=standard_artifacts.ModelBlessing)))
