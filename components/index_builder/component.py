"""IndexBuilder: the item tower over the corpus -> a ScaNN index and a retrieval model.

The corpus is indexed as it is served: its time-dependent item features as of the last
event (the item_corpus split 'all'). Output `index` (RetrievalIndex): the serialized
ScaNN searcher with the item ids and embeddings, a TFRS ScaNN retrieval SavedModel, and
index_manifest.json with the parameters, the fingerprint of the model that built it, and
ScaNN's recall against exact search on the test split's queries.
"""

from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import channel
from tfx.types import component_spec
from tfx.types import standard_artifacts

from components import artifacts
from components.index_builder import executor
from core import config as configs


class IndexBuilderSpec(component_spec.ComponentSpec):
  PARAMETERS = {'index_config': component_spec.ExecutionParameter(type=str)}  # JSON
  INPUTS = {
      'model': component_spec.ChannelParameter(type=standard_artifacts.Model),
      'item_corpus': component_spec.ChannelParameter(type=standard_artifacts.Examples),
      'examples': component_spec.ChannelParameter(type=standard_artifacts.Examples),
  }
  OUTPUTS = {'index': component_spec.ChannelParameter(type=artifacts.RetrievalIndex)}


class IndexBuilder(base_component.BaseComponent):
  SPEC_CLASS = IndexBuilderSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, model, item_corpus, examples, config: configs.IndexConfig):
    super().__init__(spec=IndexBuilderSpec(
        model=model, item_corpus=item_corpus, examples=examples,
        index_config=configs.section_to_json(config),
        index=channel.Channel(type=artifacts.RetrievalIndex)))
