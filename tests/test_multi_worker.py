"""training.strategy=multi_worker_mirrored: two local worker processes (TF_CONFIG on
loopback) run the DistillationTrainer's executor as a Vertex AI CustomJob's replicas do
(python -m tfx.scripts.run_executor), on the fixture."""

import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils
from tfx.types import channel
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components import artifacts
from components.distillation_trainer import component as trainer_component
from components.distillation_trainer import executor as trainer_executor
from core import config as configs
from core import examples as example_files
from core import layout
from core.scenario_mapping import Scenario
from core.scenario_mapping import ScenarioMapping
from models import data
from pipeline import kubeflow_v2_runner
from pipeline import pipeline as dsmoe_pipeline
from tests.conftest import REPO_ROOT

EXECUTOR = 'components.distillation_trainer.executor.Executor'
WORKER_TIMEOUT = 900  # seconds; about 2 minutes on 2 cores


def _artifact(kind, uri: str, splits=()):
  artifact = kind()
  artifact.uri = uri
  if splits:
    artifact.split_names = artifact_utils.encode_split_names(list(splits))
  return artifact


def _split_artifact(root, name: str, splits: dict):
  """An Examples artifact whose Split-<name> directories are the fixture's directories."""
  uri = root / name
  uri.mkdir()
  for split, directory in splits.items():
    os.symlink(directory, uri / f'Split-{split}')
  return _artifact(standard_artifacts.Examples, str(uri), splits)


def _trainer_run(root, fixture_ingestion, fixture_transformed, small_setup, strategy: str):
  """(input_dict, output_dict, exec_properties) of a DistillationTrainer execution on the
  fixture, as the pipeline defines it, with `training.strategy`."""
  summary, ingested = fixture_ingestion
  root.mkdir()
  transformed = os.path.dirname(fixture_transformed.tft_dir)
  examples = _split_artifact(root, 'examples', {
      'train': os.path.join(transformed, 'train'),
      'validation': os.path.join(transformed, 'validation')})
  corpus = _split_artifact(root, 'corpus', {'train': os.path.join(ingested, 'item_corpus',
                                                                  'train')})
  raw = _split_artifact(root, 'raw', {
      split: os.path.join(ingested, 'examples', split) for split in ('train', 'validation')})
  (root / 'schema').mkdir()
  shutil.copy(small_setup.events_schema, root / 'schema' / 'schema.pbtxt')
  ScenarioMapping(tuple(Scenario(**s) for s in summary['scenarios']), 'fixture').save(
      str(root / 'mapping'))
  input_dict = {
      'examples': [examples],
      'transform_graph': [_artifact(standard_artifacts.TransformGraph,
                                    fixture_transformed.tft_dir)],
      'schema': [_artifact(standard_artifacts.Schema, str(root / 'schema'))],
      'item_corpus': [corpus],
      'scenario_mapping': [_artifact(artifacts.ScenarioMapping, str(root / 'mapping'))],
      'raw_examples': [raw]}
  output_dict = {
      'model': [_artifact(standard_artifacts.Model, str(root / 'trainer' / 'model' / '1'))],
      'model_run': [_artifact(standard_artifacts.ModelRun, str(root / 'model_run'))],
      'teacher_model': [_artifact(artifacts.TeacherModel, str(root / 'teacher'))]}
  config = configs.load_config('', [
      f'dataset_spec={small_setup.spec_path}', f'events_schema={small_setup.events_schema}',
      f'item_corpus_schema={small_setup.item_corpus_schema}',
      f'training.strategy={strategy}', 'training.epochs=2', 'distillation.teacher_epochs=1',
      'training.batch_size=128', 'training.learning_rate=0.003'])
  exec_properties = _exec_properties(config, small_setup.spec)
  return input_dict, output_dict, exec_properties


def _exec_properties(config: configs.PipelineConfig, spec) -> dict:
  """A DistillationTrainer's execution properties as the orchestrator passes them."""
  node = trainer_component.DistillationTrainer(
      examples=channel.Channel(type=standard_artifacts.Examples),
      transform_graph=channel.Channel(type=standard_artifacts.TransformGraph),
      schema=channel.Channel(type=standard_artifacts.Schema),
      item_corpus=channel.Channel(type=standard_artifacts.Examples),
      scenario_mapping=channel.Channel(type=artifacts.ScenarioMapping),
      run_fn=dsmoe_pipeline.RUN_FN, dataset_spec=spec, config=config,
      code_fingerprint='', raw_examples=channel.Channel(type=standard_artifacts.Examples))
  return {name: proto_utils.proto_to_json(value) if isinstance(
              value, (trainer_pb2.TrainArgs, trainer_pb2.EvalArgs)) else value
          for name, value in node.exec_properties.items() if value is not None}


def _free_ports(n: int) -> list[int]:
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(('localhost', 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _files(directory: str) -> set[str]:
  return {os.path.relpath(os.path.join(d, f), directory)
          for d, _, names in os.walk(directory) for f in names}


def _user_embeddings(model_dir: str, records: list[bytes]):
  tower = tf.saved_model.load(os.path.join(model_dir, layout.USER_TOWER_DIR))
  signature = tower.signatures[layout.USER_EXAMPLES_SIGNATURE]
  return tower, signature(examples=tf.constant(records))[layout.EMBEDDING_OUTPUT].numpy()


@pytest.mark.extended
def test_two_workers_train_their_shards_and_the_chief_alone_exports(
    tmp_path, fixture_ingestion, fixture_transformed, small_setup):
  input_dict, output_dict, exec_properties = _trainer_run(
      tmp_path / 'multi', fixture_ingestion, fixture_transformed, small_setup,
      'multi_worker_mirrored')
  ports = _free_ports(2)
  workers = []
  for index in range(2):
    temp = tmp_path / f'tmp{index}'  # the worker's TMPDIR: its temporary outputs
    temp.mkdir()
    env = dict(os.environ, TF_USE_LEGACY_KERAS='1', PYTHONPATH=REPO_ROOT, TMPDIR=str(temp),
               TF_CONFIG=json.dumps({
                   'cluster': {'worker': [f'localhost:{p}' for p in ports]},
                   'task': {'type': 'worker', 'index': index}}))
    log_file = open(tmp_path / f'worker{index}.log', 'w')
    workers.append((subprocess.Popen(
        [sys.executable, '-m', 'tfx.scripts.run_executor', '--executor_class_path', EXECUTOR,
         '--inputs', artifact_utils.jsonify_artifact_dict(input_dict),
         '--outputs', artifact_utils.jsonify_artifact_dict(output_dict),
         '--exec-properties', json.dumps(exec_properties)],
        cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT), log_file, temp))
  try:
    codes = [process.wait(timeout=WORKER_TIMEOUT) for process, _, _ in workers]
  finally:
    for process, log_file, _ in workers:
      if process.poll() is None:
        process.kill()
      log_file.close()
  logs = [(tmp_path / f'worker{i}.log').read_text() for i in range(2)]
  assert codes == [0, 0], '\n'.join(log[-5000:] for log in logs)

  # Each worker trained on its own shard: together, every anchor of the train split once.
  model_uri = output_dict['model'][0].uri
  serving = os.path.join(model_uri, 'Format-Serving')
  with open(os.path.join(serving, layout.TRAINING_SUMMARY_FILE)) as f:
    summary = json.load(f)
  training = configs.TrainingConfig()
  anchors = data.anchors(fixture_transformed.train,
                         tft.TFTransformOutput(fixture_transformed.tft_dir),
                         fixture_transformed.space, training)
  total = int(anchors.reduce(0, lambda n, _: n + 1))
  assert summary['anchors'] == total
  assert sum(summary['anchors_per_worker']) == total
  assert all(0 < n < total for n in summary['anchors_per_worker'])
  assert summary['student']['epochs_run'] == 2 and summary['teacher']['epochs_run'] == 1

  # Only the chief's outputs, and nothing temporary left by either worker.
  assert _files(model_uri) >= {os.path.join('Format-Serving', layout.TRAINING_SUMMARY_FILE),
                               os.path.join('Format-Serving', 'feature_space.json')}
  for root in (model_uri, output_dict['model_run'][0].uri, output_dict['teacher_model'][0].uri):
    assert not [p for p in _files(root) if 'workertemp' in p], root
  for _, _, temp in workers:
    assert os.listdir(temp) == []
  backups = tmp_path / 'multi' / 'trainer' / 'backup'  # layout.trainer_backup_dir's parent
  assert not backups.exists() or os.listdir(backups) == []

  # The export serves as a one-worker model's does: the same files and signatures, and
  # an embedding per raw example.
  one = _trainer_run(tmp_path / 'one', fixture_ingestion, fixture_transformed, small_setup,
                     'default')
  trainer_executor.Executor().Do(*one)
  one_serving = os.path.join(one[1]['model'][0].uri, 'Format-Serving')
  assert _files(serving) == _files(one_serving)
  records = list(example_files.records(fixture_transformed.raw_validation))[:32]
  tower, embeddings = _user_embeddings(serving, records)
  one_tower, one_embeddings = _user_embeddings(one_serving, records)
  assert set(tower.signatures) == set(one_tower.signatures)
  for name in tower.signatures:
    assert (tower.signatures[name].structured_input_signature ==
            one_tower.signatures[name].structured_input_signature)
  assert embeddings.shape == one_embeddings.shape
  assert embeddings.shape[0] == len(records) and embeddings.ndim == 2
  assert np.isfinite(embeddings).all()


DSBN_REPLICAS = """
import tensorflow as tf
cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from models.layers import DomainSpecificBatchNormalization
strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
with strategy.scope():
  layer = DomainSpecificBatchNormalization(2, momentum=0.5)
  layer.build([tf.TensorShape([None, 1]), tf.TensorShape([None])])
# Scenario 0 only: replica 0 sees the mean 3, replica 1 the mean 6.
x = strategy.experimental_distribute_values_from_function(lambda ctx: (
    tf.constant([[2.0], [4.0]]) * (ctx.replica_id_in_sync_group + 1), tf.constant([0, 0])))
strategy.run(tf.function(lambda v: layer(list(v), training=True)), args=(x,))
print([v.numpy().tolist() for v in strategy.experimental_local_results(layer.moving_mean)])
"""


def test_dsbn_moving_statistics_are_the_same_on_every_replica():
  """Under a strategy, each replica's update of the moving statistics is averaged over the
  replicas: (0.5 * 3 + 0.5 * 6) / 2 for scenario 0, 0 (untouched) for scenario 1."""
  result = subprocess.run([sys.executable, '-c', DSBN_REPLICAS], cwd=REPO_ROOT,
                          env=dict(os.environ, TF_USE_LEGACY_KERAS='1', PYTHONPATH=REPO_ROOT),
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert json.loads(result.stdout.strip().splitlines()[-1]) == [[[2.25], [0.0]]] * 2


def test_multi_worker_strategy_is_refused_once_tensorflow_has_run(monkeypatch):
  """The local runner's single process has run TensorFlow before the Trainer: the strategy
  can no longer set up its collective ops, and the error says what to do."""
  from training import distribution
  tf.constant(1.0) + 1.0  # TensorFlow has run
  ports = _free_ports(2)
  monkeypatch.setenv('TF_CONFIG', json.dumps({
      'cluster': {'worker': [f'localhost:{p}' for p in ports]},
      'task': {'type': 'worker', 'index': 0}}))
  with pytest.raises(configs.ConfigError, match='process of its own'):
    distribution.create_strategy('multi_worker_mirrored')


VERTEX = ('training.strategy=multi_worker_mirrored', 'training.vertex.enabled=true',
          'training.vertex.project=my-project', 'training.vertex.region=us-central1',
          'training.vertex.workers=3', 'training.vertex.machine_type=n1-highmem-8')


def test_vertex_needs_multi_worker_strategy_for_several_workers():
  with pytest.raises(configs.ConfigError, match='multi_worker_mirrored'):
    configs.load_config('', VERTEX[1:])
  with pytest.raises(configs.ConfigError, match='project'):
    configs.load_config('', ['training.vertex.enabled=true'])
  configs.load_config('', [*VERTEX[1:-2], 'training.vertex.workers=1'])  # one: any strategy


def _worker_pools(custom_config: dict) -> list[dict]:
  return custom_config['ai_platform_training_args']['job_spec']['worker_pool_specs']


def test_kubeflow_pipeline_runs_the_trainers_on_vertex_workers(tmp_path):
  config = configs.load_config('', ['data_dir=gs://bucket/kuairand',
                                    'output_dir=gs://bucket/outputs', *VERTEX])
  path = kubeflow_v2_runner.compile_pipeline(config, 'registry.example/dsmoe:1.0',
                                             str(tmp_path / 'pipeline.json'))
  with open(path) as f:
    spec = json.load(f)['pipelineSpec']
  executors = spec['deploymentSpec']['executors']
  for task in ('DistillationTrainer', 'refit_trainer'):
    args = executors[f'{task}_executor']['container']['args']
    assert args[args.index('--executor_class_path') + 1] == \
        'components.distillation_trainer.executor.VertexExecutor'
    custom_config = json.loads(spec['root']['dag']['tasks'][task]['inputs']['parameters'][
        'custom_config']['runtimeValue']['constantValue']['stringValue'])
    assert [(p['replica_count'], p['machine_spec']['machine_type'],
             p['container_spec']['image_uri']) for p in _worker_pools(custom_config)] == [
                 (1, 'n1-highmem-8', 'registry.example/dsmoe:1.0'),
                 (2, 'n1-highmem-8', 'registry.example/dsmoe:1.0')]
    assert custom_config['ai_platform_training_args']['project'] == 'my-project'
    assert custom_config['ai_platform_enable_vertex'] is True
    assert custom_config['ai_platform_vertex_region'] == 'us-central1'
    assert json.loads(custom_config['training'])['strategy'] == 'multi_worker_mirrored'
  args = executors['RankerTrainer_executor']['container']['args']  # stays on the cluster
  assert args[args.index('--executor_class_path') + 1] == \
      'components.ranker_trainer.executor.Executor'


def test_vertex_executor_submits_a_job_whose_replicas_run_the_trainer(monkeypatch,
                                                                     kuairand_spec):
  """TFX's Vertex training extension, without the cloud: the CustomJob it would submit."""
  from tfx.extensions.google_cloud_ai_platform import runner
  from tfx.extensions.google_cloud_ai_platform import training_clients
  submitted = []
  monkeypatch.setattr(training_clients.VertexJobClient, 'create_client', lambda self: None)
  monkeypatch.setattr(runner, '_launch_cloud_training',
                      lambda **kwargs: submitted.append(kwargs))
  config = configs.load_config('', [*VERTEX, 'training.vertex.image=registry.example/t:2'])
  exec_properties = _exec_properties(config, kuairand_spec)
  input_dict = {'examples': [_artifact(standard_artifacts.Examples, 'gs://b/examples',
                                       ('train', 'validation'))]}
  output_dict = {'model': [_artifact(standard_artifacts.Model, 'gs://b/model/1')]}
  trainer_executor.VertexExecutor().Do(input_dict, output_dict, exec_properties)
  (launch,) = submitted
  assert (launch['project'], launch['enable_vertex'], launch['vertex_region']) == (
      'my-project', True, 'us-central1')
  pools = launch['training_job']['job_spec']['worker_pool_specs']
  assert [p['replica_count'] for p in pools] == [1, 2]
  for pool in pools:
    command = pool['container_spec']['command']
    assert pool['container_spec']['image_uri'] == 'registry.example/t:2'
    assert command[:5] == ['python', '-m', 'tfx.scripts.run_executor',
                           '--executor_class_path', EXECUTOR]
    properties = json.loads(command[command.index('--exec-properties') + 1])
    assert properties['custom_config'] == exec_properties['custom_config']
    assert json.loads(command[command.index('--outputs') + 1])['model'][0]['artifact'][
        'uri'] == 'gs://b/model/1'
