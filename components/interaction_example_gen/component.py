"""InteractionExampleGen: raw interaction logs + feature tables -> validated-ready examples.

Outputs:
  examples:         tf.Examples of events, splits 'train', 'validation', 'test' (the time
                    windows of the dataset spec) and 'all' (every event as a training
                    example, for the model refit on all days).
  item_corpus:      tf.Examples of every item with its features, splits 'train', 'test'
                    and 'all': time-dependent features as of the end of the training
                    window, the start of the test window and the last event.
  user_snapshot:    tf.Examples of every user: features and behaviour sequence as of the
                    last event (what serving looks up by user id), split 'users'.
  item_state:       every item's counts as of the last event (ingestion/records.ItemState),
                    split 'items': with the snapshot, what ingesting the next day alone
                    starts from (ingest.PreviousDays).
  scenario_mapping: raw scenario value -> index (ScenarioMapping artifact).
  report:           the ingestion summary (counts of rows read, kept, dropped, defaulted).

It uses TFX's FileBasedDriver: the driver fingerprints the input files (names, sizes,
modification times), so a rerun on unchanged files hits the cache and changed files do not.
"""

from tfx.components.example_gen import driver
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import channel
from tfx.types import component_spec
from tfx.types import standard_artifacts

from components import artifacts
from components.interaction_example_gen import executor
from core import config as configs
from core import dataset_spec as ds


class InteractionExampleGenSpec(component_spec.ComponentSpec):
  PARAMETERS = {
      # Read by FileBasedDriver: the data directory and one "split" per raw table.
      'input_base': component_spec.ExecutionParameter(type=str),
      'input_config': component_spec.ExecutionParameter(type=example_gen_pb2.Input),
      'dataset_spec': component_spec.ExecutionParameter(type=str),  # DatasetSpec JSON
      'ingestion_config': component_spec.ExecutionParameter(type=str),  # IngestionConfig
      # A refresh: the release it starts from; the logs' newest day must come after it.
      'after_release': component_spec.ExecutionParameter(type=str, optional=True),
      # A refresh: training examples of its last days only (ingest.build_ingestion).
      'window_days': component_spec.ExecutionParameter(type=int, optional=True),
  }
  INPUTS = {}
  OUTPUTS = {
      'examples': component_spec.ChannelParameter(type=standard_artifacts.Examples),
      'item_corpus': component_spec.ChannelParameter(type=standard_artifacts.Examples),
      'user_snapshot': component_spec.ChannelParameter(type=standard_artifacts.Examples),
      'item_state': component_spec.ChannelParameter(type=standard_artifacts.Examples),
      'scenario_mapping': component_spec.ChannelParameter(type=artifacts.ScenarioMapping),
      'report': component_spec.ChannelParameter(type=artifacts.IngestionReport),
  }


class InteractionExampleGen(base_component.BaseComponent):
  """Joins, sequences, splits and writes a dataset described by a DatasetSpec; with
  `after_release` (a refresh), refuses logs whose newest day that release already holds;
  with `window_days` (a refresh's), writes the train events before the last `window_days`
  days before the test window to split history only (layout.HISTORY)."""

  SPEC_CLASS = InteractionExampleGenSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
  DRIVER_CLASS = driver.FileBasedDriver

  def __init__(self, data_dir: str, dataset_spec: ds.DatasetSpec,
               ingestion_config: configs.IngestionConfig, after_release: str = '',
               window_days: int = 0):
    input_config = example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(name='logs', pattern=dataset_spec.logs.path),
        example_gen_pb2.Input.Split(name='users', pattern=dataset_spec.users.path),
        example_gen_pb2.Input.Split(name='items', pattern=dataset_spec.items.path),
    ])
    super().__init__(spec=InteractionExampleGenSpec(
        input_base=data_dir,
        input_config=input_config,
        dataset_spec=dataset_spec.to_json(),
        ingestion_config=configs.section_to_json(ingestion_config),
        after_release=after_release,
        window_days=window_days,
        examples=channel.Channel(type=standard_artifacts.Examples),
        item_corpus=channel.Channel(type=standard_artifacts.Examples),
        user_snapshot=channel.Channel(type=standard_artifacts.Examples),
        item_state=channel.Channel(type=standard_artifacts.Examples),
        scenario_mapping=channel.Channel(type=artifacts.ScenarioMapping),
        report=channel.Channel(type=artifacts.IngestionReport)))
