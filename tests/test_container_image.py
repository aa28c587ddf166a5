"""The Dockerfile's image, checked without Docker (there is no Docker engine here): it is a
Beam SDK worker for the locked apache-beam and Python 3.11 and every component's image, and
the runner arguments and Kubeflow / Vertex AI commands of BUILD.md give it to the workers
and components.

The configs and commands are read from BUILD.md's "Beam runners" and "Kubeflow Pipelines v2
and Vertex AI Pipelines" sections (their indented blocks), so the documentation is what is
tested.
"""

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap

import apache_beam
from apache_beam.options import pipeline_options
from apache_beam.transforms import environments
from google.protobuf import json_format
import pytest
import yaml

from core import config as configs
from pipeline import kubeflow_v2_runner
from pipeline import pipeline as dsmoe_pipeline
from tests.conftest import REPO_ROOT

BUILD = os.path.join(REPO_ROOT, 'BUILD.md')
BOOT = '/opt/apache/beam/boot'
EXECUTOR_COMMAND = ['python', '-m',
                    'tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor']


def _dockerfile() -> list[tuple[str, str]]:
  """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
  text = open(os.path.join(REPO_ROOT, 'Dockerfile')).read().replace('\\\n', ' ')
  return [tuple(line.split(None, 1)) for line in text.splitlines()
          if line.strip() and not line.startswith('#')]


def _locked(package: str) -> str:
  for line in open(os.path.join(REPO_ROOT, 'requirements.lock')):
    name, _, version = line.strip().partition('==')
    if name == package:
      return version
  raise AssertionError(f'{package} is not in requirements.lock')


def _blocks(section: str) -> list[str]:
  """The indented blocks (6 or more spaces: code in a list item) of a BUILD.md section,
  dedented."""
  text = open(BUILD).read()
  text = text[text.index(f'## {section}\n'):]
  text = text[:text.find('\n## ', 4)]
  blocks, current = [], []
  for line in text.splitlines() + ['end']:
    if line.startswith(' ' * 6) or (current and not line.strip()):
      current.append(line)
    elif current:
      blocks.append(textwrap.dedent('\n'.join(current)).strip())
      current = []
  return blocks


def _runner_configs() -> dict[str, dict]:
  """Runner name -> the config BUILD.md shows for it."""
  found = {}
  for block in _blocks('Beam runners'):
    raw = yaml.safe_load(block) if block.startswith('data_dir:') else None
    if raw:
      runner = [a for a in raw['beam_pipeline_args'] if a.startswith('--runner=')]
      found[runner[0].split('=', 1)[1]] = raw
  return found


def _kubeflow():
  """(kubeflow.yaml, compile command, the KFP spec command, the Vertex snippet) of
  BUILD.md's Kubeflow section."""
  blocks = _blocks('Kubeflow Pipelines v2 and Vertex AI Pipelines')
  config = yaml.safe_load(next(b for b in blocks if b.startswith('data_dir:')))
  command = next(b for b in blocks if 'pipeline.kubeflow_v2_runner' in b)
  spec_command = next(b for b in blocks if "['pipelineSpec']" in b)
  vertex = next(b for b in blocks if 'aiplatform.PipelineJob' in b)
  return config, shlex.split(command.replace('\\\n', ' ')), spec_command, vertex


def _documented_image() -> str:
  _, command, _, _ = _kubeflow()
  return command[command.index('--image') + 1]


def test_dockerfile_is_the_beam_sdk_worker_of_the_locked_beam_and_python():
  instructions = _dockerfile()
  python = f'{sys.version_info.major}.{sys.version_info.minor}'
  assert python == '3.11'
  assert instructions[0] == ('FROM', f'python:{python}-slim')
  assert apache_beam.__version__ == _locked('apache-beam')
  # Beam's own name for the SDK image of this Beam and this Python.
  sdk_image = environments.DockerEnvironment.default_docker_image()
  assert sdk_image == f'apache/beam_python{python}_sdk:{_locked("apache-beam")}'
  assert ('COPY', f'--from={sdk_image} /opt/apache/beam /opt/apache/beam') in instructions
  assert ('ENTRYPOINT', json.dumps([BOOT])) in instructions
  assert ('RUN', 'pip install --no-cache-dir --no-deps -r requirements.lock') in instructions
  env = dict(pair.split('=', 1) for arguments in
             (a for i, a in instructions if i == 'ENV') for pair in arguments.split())
  assert env['TF_USE_LEGACY_KERAS'] == '1'
  assert env['PYTHONPATH'] == kubeflow_v2_runner.IMAGE_REPO_ROOT
  assert ('WORKDIR', kubeflow_v2_runner.IMAGE_REPO_ROOT) in instructions


def test_documented_runner_arguments_give_the_workers_the_image(tmp_path):
  from tfx.utils import dependency_utils
  image = _documented_image()
  found = _runner_configs()
  assert set(found) == {'DataflowRunner', 'FlinkRunner', 'SparkRunner'}
  for runner, raw in found.items():
    path = tmp_path / f'{runner}.yaml'
    path.write_text(yaml.safe_dump(raw))
    args = list(configs.load_config(str(path)).beam_pipeline_args)
    options = pipeline_options.PipelineOptions(args)
    assert options.view_as(pipeline_options.StandardOptions).runner == runner
    assert options.view_as(pipeline_options.WorkerOptions).sdk_container_image == image
    if runner == 'DataflowRunner':
      assert options.view_as(pipeline_options.SetupOptions).sdk_location == 'container'
    else:  # portable runners: the workers' environment is the image
      environment = environments.Environment.from_options(
          options.view_as(pipeline_options.PortableOptions))
      assert isinstance(environment, environments.DockerEnvironment)
      assert environment.container_image == image
    # TFX stages no package of its own: the workers use the image's installation.
    assert dependency_utils.make_beam_dependency_flags(args) == args


def test_compiled_components_run_the_image_with_their_own_command(tmp_path,
                                                                   monkeypatch):
  config, command, spec_command, vertex = _kubeflow()
  assert command[:3] == ['.venv/bin/python', '-m', 'pipeline.kubeflow_v2_runner']
  assert config == _runner_configs()['DataflowRunner']
  (tmp_path / 'kubeflow.yaml').write_text(yaml.safe_dump(config))
  monkeypatch.chdir(tmp_path)
  assert kubeflow_v2_runner.main(command[3:]) == 0
  image = _documented_image()
  with open(command[command.index('--output') + 1]) as f:
    job = json.load(f)
  executors = job['pipelineSpec']['deploymentSpec']['executors']
  containers = {name: e['container'] for name, e in executors.items() if 'container' in e}
  assert {'InteractionExampleGen_executor', 'events_statistics_executor',
          'Transform_executor', 'refit_transform_executor'} <= set(containers)
  beam_args = [*config['beam_pipeline_args'], *dsmoe_pipeline.BEAM_WORKER_ARGS]
  for name, container in containers.items():
    assert container['image'] == image, name
    # An explicit command replaces the image's entrypoint (the Beam boot).
    assert container['command'] == EXECUTOR_COMMAND, name
    assert container['args'][-len(beam_args):] == beam_args, name
  # Executors that are not containers are KFP's own (the resolvers' artifact queries).
  assert {next(iter(e)) for n, e in executors.items() if n not in containers} == {'resolver'}
  assert job['runtimeConfig']['gcsOutputDirectory'] == \
      'gs://my-bucket/dsmoe/pipeline_root/dsmoe-kuairand-pure'

  # Step 5: the spec as YAML, by BUILD.md's command, is a KFP pipeline spec.
  from kfp.pipeline_spec import pipeline_spec_pb2
  spec_args = shlex.split(spec_command)
  assert spec_args[0] == '.venv/bin/python'
  subprocess.run([sys.executable, *spec_args[1:]], check=True, cwd=tmp_path)
  with open(tmp_path / 'dsmoe_pipeline.yaml') as f:
    spec = json_format.ParseDict(yaml.safe_load(f), pipeline_spec_pb2.PipelineSpec())
  assert set(spec.root.dag.tasks) == set(job['pipelineSpec']['root']['dag']['tasks'])

  # Step 4: Vertex AI builds its pipeline job from the file (submit() needs a project).
  from google.auth import credentials
  from google.cloud import aiplatform
  arguments = dict(re.findall(r"(\w+)='([^']*)'", vertex))
  vertex_job = aiplatform.PipelineJob(**arguments,
                                      credentials=credentials.AnonymousCredentials())
  assert vertex_job.runtime_config.gcs_output_directory == \
      job['runtimeConfig']['gcsOutputDirectory']
  assert vertex_job.pipeline_spec['deploymentSpec']['executors']['Transform_executor'][
      'container']['image'] == image
