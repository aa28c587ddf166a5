"""The same pipeline compiles, offline, to a Kubeflow Pipelines v2 spec for the image."""

import json

import pytest

from core import config as configs
from pipeline import kubeflow_v2_runner

COMPONENTS = {
    'InteractionExampleGen', 'events_statistics', 'events_schema', 'events_validator',
    'events_validation_gate', 'item_corpus_statistics', 'item_corpus_schema',
    'item_corpus_validator', 'item_corpus_validation_gate', 'Transform',
    'DistillationTrainer', 'RecallEvaluator', 'BlessedModelComparison', 'refit_transform',
    'refit_trainer', 'refit_ranker_trainer',
    'IndexBuilder', 'ReleasePusher', 'RankerTrainer', 'RankingEvaluator', 'SystemEvaluator',
    # The KFP v2 compiler turns each latest-blessed-model resolver into two query tasks.
    'latest_blessed_model_resolver-model-resolver',
    'latest_blessed_model_resolver-model-blessing-resolver',
    'latest_blessed_ranker_resolver-model-resolver',
    'latest_blessed_ranker_resolver-model-blessing-resolver'}


def _compile(tmp_path, *overrides):
  config = configs.load_config('', ['data_dir=gs://bucket/kuairand',
                                    'output_dir=gs://bucket/outputs', *overrides])
  path = kubeflow_v2_runner.compile_pipeline(config, 'registry.example/dsmoe:1.0',
                                             str(tmp_path / 'pipeline.json'))
  with open(path) as f:
    return json.load(f)['pipelineSpec']


def _producer(tasks, task, kind, name):
  return tasks[task]['inputs'][kind][name]['taskOutputArtifact']['producerTask']


def test_compiles_every_component_with_its_inputs(tmp_path):
  spec = _compile(tmp_path)
  tasks = spec['root']['dag']['tasks']
  assert set(tasks) == COMPONENTS
  executors = spec['deploymentSpec']['executors']
  containers = [e['container'] for e in executors.values() if 'container' in e]
  assert {c['image'] for c in containers} == {'registry.example/dsmoe:1.0'}
  assert 'components.interaction_example_gen.executor.Executor' in \
      executors['InteractionExampleGen_executor']['container']['args']
  constant = lambda task, name: tasks[task]['inputs']['parameters'][name][
      'runtimeValue']['constantValue']['stringValue']
  assert constant('InteractionExampleGen', 'input_base') == 'gs://bucket/kuairand'
  assert json.loads(constant('InteractionExampleGen', 'dataset_spec'))['name'] == \
      'kuairand_pure'
  # Runtime files are addressed inside the image (Dockerfile WORKDIR /pipeline).
  assert constant('events_schema', 'schema_file') == \
      '/pipeline/schemas/kuairand_pure/events_schema.pbtxt'
  assert constant('Transform', 'preprocessing_fn') == 'models.preprocessing.preprocessing_fn'
  assert constant('DistillationTrainer', 'run_fn') == 'training.trainer.run_fn'
  trainer_config = json.loads(constant('DistillationTrainer', 'custom_config'))
  assert json.loads(trainer_config['model'])['model'] == 'dsmoe'
  assert constant('ReleasePusher', 'releases_dir') == 'gs://bucket/outputs/releases'
  # The data flow.
  assert _producer(tasks, 'events_validator', 'artifacts', 'statistics') == \
      'events_statistics'
  assert _producer(tasks, 'events_validation_gate', 'artifacts', 'anomalies') == \
      'events_validator'
  assert set(tasks['Transform']['dependentTasks']) >= {
      'events_validation_gate', 'item_corpus_validation_gate'}
  for name, producer in (('examples', 'Transform'), ('transform_graph', 'Transform'),
                         ('item_corpus', 'InteractionExampleGen'),
                         ('scenario_mapping', 'InteractionExampleGen')):
    assert _producer(tasks, 'DistillationTrainer', 'artifacts', name) == producer
  assert _producer(tasks, 'RecallEvaluator', 'artifacts', 'model') == 'DistillationTrainer'
  assert _producer(tasks, 'RecallEvaluator', 'artifacts', 'teacher') == \
      'DistillationTrainer'
  assert _producer(tasks, 'DistillationTrainer', 'artifacts', 'raw_examples') == \
      'InteractionExampleGen'
  assert _producer(tasks, 'SystemEvaluator', 'artifacts', 'model') == 'DistillationTrainer'
  assert _producer(tasks, 'SystemEvaluator', 'artifacts', 'ranker') == 'RankerTrainer'
  assert _producer(tasks, 'ReleasePusher', 'artifacts', 'item_corpus') == \
      'InteractionExampleGen'
  # Only a blessed model is refit on every day, indexed and released.
  for name in ('refit_transform', 'refit_trainer', 'refit_ranker_trainer', 'IndexBuilder',
               'ReleasePusher'):
    assert "metadata['blessed'] == 1.0" in tasks[name]['triggerPolicy']['condition']
  assert _producer(tasks, 'refit_trainer', 'artifacts', 'schedule_model') == \
      'DistillationTrainer'
  assert _producer(tasks, 'refit_trainer', 'artifacts', 'examples') == 'refit_transform'
  assert _producer(tasks, 'IndexBuilder', 'artifacts', 'model') == 'refit_trainer'
  assert _producer(tasks, 'ReleasePusher', 'artifacts', 'model') == 'refit_trainer'
  assert _producer(tasks, 'ReleasePusher', 'artifacts', 'evaluated_model') == \
      'DistillationTrainer'
  assert _producer(tasks, 'ReleasePusher', 'artifacts', 'model_blessing') == \
      'RecallEvaluator'
  assert _producer(tasks, 'ReleasePusher', 'artifacts', 'index') == 'IndexBuilder'
  # The ranking stage: trained after Transform, evaluated, its blessing read by the Pusher.
  assert constant('RankerTrainer', 'run_fn') == 'training.ranking.run_fn'
  assert _producer(tasks, 'RankerTrainer', 'artifacts', 'examples') == 'Transform'
  assert _producer(tasks, 'RankingEvaluator', 'artifacts', 'model') == 'RankerTrainer'
  # The release serves the ranker's refit on every day; blessing and evaluation are the
  # evaluated ranker's.
  assert _producer(tasks, 'refit_ranker_trainer', 'artifacts', 'schedule_model') == \
      'RankerTrainer'
  assert _producer(tasks, 'refit_ranker_trainer', 'artifacts', 'examples') == \
      'refit_transform'
  assert constant('refit_ranker_trainer', 'train_args') == constant('refit_trainer',
                                                                    'train_args')
  for name, producer in (('ranker', 'refit_ranker_trainer'),
                         ('ranker_blessing', 'RankingEvaluator'),
                         ('ranker_evaluation', 'RankingEvaluator')):
    assert _producer(tasks, 'ReleasePusher', 'artifacts', name) == producer


@pytest.mark.parametrize('source,node', [('latest', 'latest_teacher_resolver'),
                                         ('gs://bucket/teacher', 'teacher_importer')])
def test_teacher_from_an_earlier_run(tmp_path, source, node):
  tasks = _compile(tmp_path, f'distillation.teacher_source={source}')['root']['dag']['tasks']
  assert set(tasks) == COMPONENTS | {node}
  assert _producer(tasks, 'DistillationTrainer', 'artifacts', 'teacher') == node


def test_model_code_changes_change_the_trainer_inputs(tmp_path):
  """Transform and the Trainer carry the fingerprint of models/ and core/, so an edit
  misses the cache."""
  from pipeline import pipeline as dsmoe_pipeline
  for package in ('models', 'core'):
    (tmp_path / 'code' / package / 'towers').mkdir(parents=True)
    (tmp_path / 'code' / package / 'towers' / 'dsmoe.py').write_text('x = 1\n')
  root = str(tmp_path / 'code')
  before = dsmoe_pipeline.code_fingerprint(root)
  for package in ('models', 'core'):
    (tmp_path / 'code' / package / 'towers' / 'dsmoe.py').write_text('x = 2\n')
    assert dsmoe_pipeline.code_fingerprint(root) != before
    before = dsmoe_pipeline.code_fingerprint(root)
  tasks = _compile(tmp_path)['root']['dag']['tasks']
  for task in ('Transform', 'DistillationTrainer'):
    custom = json.loads(tasks[task]['inputs']['parameters']['custom_config'][
        'runtimeValue']['constantValue']['stringValue'])
    assert custom[configs.CODE_FINGERPRINT_KEY] == dsmoe_pipeline.code_fingerprint()


def test_each_blessed_model_resolver_queries_its_own_types(tmp_path):
  """The compiler queries tfx.Model and tfx.ModelBlessing for every LatestBlessedModel
  resolver; the ranker's must ask for the ranker's types, or it resolves the latest
  blessed retrieval model."""
  executors = _compile(tmp_path)['deploymentSpec']['executors']
  query = lambda resolver, part, key: executors[
      f'latest_blessed_{resolver}_resolver-{part}-resolver_executor']['resolver'][
          'outputArtifactQueries'][key]['filter']
  assert query('ranker', 'model-blessing', 'model_blessing').startswith(
      'schema_title="dsmoe.RankerBlessing" AND state=LIVE AND metadata.blessed.number_value=1')
  assert query('ranker', 'model', 'model').startswith(
      'schema_title="dsmoe.RankerModel" AND state=LIVE AND name=')
  assert query('model', 'model-blessing', 'model_blessing').startswith(
      'schema_title="tfx.ModelBlessing" AND')
  assert query('model', 'model', 'model').startswith('schema_title="tfx.Model" AND')


def test_a_refresh_compiles_with_the_latest_release_named(tmp_path):
  """--refresh: the release that is latest when compiling is the comparison's baseline
  (an Importer), the warm start and the ingestion's refusal; no ranker is trained."""
  outputs = tmp_path / 'outputs'
  release = outputs / 'releases' / 'v7'
  for tower in ('user_tower', 'item_tower'):
    (release / 'warm_start' / tower).mkdir(parents=True)
  (release / 'manifest.json').write_text(json.dumps({'scenarios': ['1', '4', '2', '6']}))
  (outputs / 'releases' / 'LATEST').write_text('v7')
  path = str(tmp_path / 'refresh.json')
  assert kubeflow_v2_runner.main(['--image', 'registry.example/dsmoe:1.0', '--output', path,
                                  '--set', 'data_dir=gs://bucket/kuairand',
                                  '--set', f'output_dir={outputs}', '--refresh']) == 0
  with open(path) as f:
    tasks = json.load(f)['pipelineSpec']['root']['dag']['tasks']
  assert 'served_release_importer' in tasks and 'RankerTrainer' not in tasks
  assert _producer(tasks, 'BlessedModelComparison', 'artifacts',
                   'baseline_model') == 'served_release_importer'
  constant = lambda task, name: tasks[task]['inputs']['parameters'][name][
      'runtimeValue']['constantValue']
  assert constant('InteractionExampleGen', 'after_release')['stringValue'] == str(release)
  trainer = json.loads(constant('DistillationTrainer', 'custom_config')['stringValue'])
  assert str(release) in trainer.values()
  assert kubeflow_v2_runner.main(['--image', 'x', '--output', path, '--set',
                                  f'output_dir={tmp_path / "none"}', '--refresh']) == 1
