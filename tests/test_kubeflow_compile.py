"""The same pipeline compiles, offline, to a Kubeflow Pipelines v2 spec for the image."""

import json

from pipeline import configs
from pipeline import kubeflow_v2_runner


def test_compiles_every_component_with_its_inputs(tmp_path):
  config = configs.load_config('', ['data_dir=gs://bucket/kuairand',
                                    'output_dir=gs://bucket/outputs'])
  path = kubeflow_v2_runner.compile_pipeline(config, 'registry.example/dsmoe:1.0',
                                             str(tmp_path / 'pipeline.json'))
  with open(path) as f:
    spec = json.load(f)['pipelineSpec']
  tasks = spec['root']['dag']['tasks']
  assert set(tasks) == {
      'InteractionExampleGen', 'events_statistics', 'events_schema', 'events_validator',
      'events_validation_gate', 'item_corpus_statistics', 'item_corpus_schema',
      'item_corpus_validator', 'item_corpus_validation_gate'}
  executors = spec['deploymentSpec']['executors']
  assert {e['container']['image'] for e in executors.values()} == {
      'registry.example/dsmoe:1.0'}
  assert 'components.interaction_example_gen.executor.Executor' in \
      executors['InteractionExampleGen_executor']['container']['args']
  params = spec['components']['InteractionExampleGen']['inputDefinitions']['parameters']
  assert {'input_base', 'input_config', 'dataset_spec', 'ingestion_config'} <= set(params)
  constant = lambda task, name: tasks[task]['inputs']['parameters'][name][
      'runtimeValue']['constantValue']['stringValue']
  assert constant('InteractionExampleGen', 'input_base') == 'gs://bucket/kuairand'
  assert json.loads(constant('InteractionExampleGen', 'dataset_spec'))['name'] == \
      'kuairand_pure'
  # Runtime files are addressed inside the image (Dockerfile WORKDIR /pipeline).
  assert constant('events_schema', 'schema_file') == \
      '/pipeline/schemas/kuairand_pure/events_schema.pbtxt'
  validator = tasks['events_validator']['inputs']['artifacts']
  assert validator['statistics']['taskOutputArtifact']['producerTask'] == 'events_statistics'
  gate = tasks['events_validation_gate']['inputs']['artifacts']
  assert gate['anomalies']['taskOutputArtifact']['producerTask'] == 'events_validator'
