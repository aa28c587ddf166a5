"""The DSMOE retrieval pipeline: which components run, and how they are wired.

    raw logs + feature tables
      -> InteractionExampleGen (events: train/eval, item corpus, scenario mapping, report)
      -> StatisticsGen + ImportSchemaGen + ExampleValidator + DataValidationGate,
         once for the events and once for the item corpus

Only wiring lives here: configuration comes from pipeline/configs.py, the dataset's columns
from its dataset spec, and each component's logic from components/.
"""

from typing import Optional

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from components.data_validation_gate import DataValidationGate
from components.interaction_example_gen.component import InteractionExampleGen
from pipeline import configs
from pipeline import dataset_spec as ds


def create_pipeline(
    config: configs.PipelineConfig,
    metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
) -> tfx.dsl.Pipeline:
  spec = ds.DatasetSpec.from_yaml(config.local_path(config.dataset_spec))
  example_gen = InteractionExampleGen(data_dir=config.path(config.data_dir),
                                      dataset_spec=spec,
                                      ingestion_config=config.ingestion)
  components = [example_gen]
  components += _validation(example_gen.outputs['examples'],
                            config.path(config.events_schema), 'events')
  components += _validation(example_gen.outputs['item_corpus'],
                            config.path(config.item_corpus_schema), 'item_corpus')
  return tfx.dsl.Pipeline(
      pipeline_name=config.pipeline_name,
      pipeline_root=config.pipeline_root,
      components=components,
      enable_cache=config.enable_cache,
      metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=list(config.beam_pipeline_args))


def _validation(examples, schema_file: str, name: str) -> list:
  """Statistics, the curated schema, anomalies, and a gate that fails on any anomaly."""
  statistics = tfx.components.StatisticsGen(examples=examples).with_id(
      f'{name}_statistics')
  schema = tfx.components.ImportSchemaGen(schema_file=schema_file).with_id(
      f'{name}_schema')
  validator = tfx.components.ExampleValidator(
      statistics=statistics.outputs['statistics'],
      schema=schema.outputs['schema']).with_id(f'{name}_validator')
  gate = DataValidationGate(anomalies=validator.outputs['anomalies'],
                            schema_file=schema_file).with_id(f'{name}_validation_gate')
  return [statistics, schema, validator, gate]
