"""Shared test set-up: Keras 2 behind tf.keras, the repository on sys.path, fixtures."""

import collections
import os
import shutil
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

import core  # noqa: E402,F401  pylint: disable=g-import-not-at-top (TF_USE_LEGACY_KERAS)
import pytest  # pylint: disable=g-import-not-at-top

FIXTURE_DIR = os.path.join(REPO_ROOT, 'tests', 'testdata', 'kuairand_fixture')
KUAIRAND_SPEC = os.path.join(REPO_ROOT, 'schemas', 'kuairand_pure', 'dataset_spec.yaml')


@pytest.fixture(scope='session')
def kuairand_spec():
  from core import dataset_spec
  return dataset_spec.DatasetSpec.from_yaml(KUAIRAND_SPEC)


@pytest.fixture(scope='session')
def fixture_ingestion(tmp_path_factory, kuairand_spec):
  """The KuaiRand fixture run through the Beam ingestion once: (summary, output dir)."""
  from tests import mini_dataset
  from core import config as configs
  out = tmp_path_factory.mktemp('fixture_ingestion')
  summary = mini_dataset.run_ingestion(FIXTURE_DIR, kuairand_spec, str(out),
                                       configs.IngestionConfig())
  return summary, str(out)


@pytest.fixture(scope='session')
def fixture_transformed(tmp_path_factory, fixture_ingestion, kuairand_spec):
  """The fixture's ingested examples through models/preprocessing.py (tf.Transform)."""
  from tests import transform_fixture
  summary, ingested = fixture_ingestion
  scenarios = tuple(s['value'] for s in summary['scenarios'])
  return transform_fixture.transform(ingested, kuairand_spec, scenarios,
                                     str(tmp_path_factory.mktemp('fixture_transformed')))


PipelineRun = collections.namedtuple('PipelineRun', 'output_dir release')
# Small enough for a few minutes on 2 cores: the pipeline tests' and serving tests' run.
QUICK_TRAINING = ('training.epochs=2', 'distillation.teacher_epochs=2',
                  'training.batch_size=256', 'training.learning_rate=0.003',
                  'training.validation_every_epochs=2')


@pytest.fixture(scope='session')
def fixture_pipeline_run(tmp_path_factory):
  """The whole pipeline (pipeline/local_runner.py) on the fixture, once, and its release.

  The fixture is too small for a model to beat popularity; a negative margin blesses it
  so that the release path runs (the blessing rule itself is tested in
  test_pipeline_local.py). `release` is a copy of the release, safe from later runs.
  """
  from pipeline import local_runner
  output_dir = str(tmp_path_factory.mktemp('pipeline_outputs'))
  args = ['--set', f'data_dir={FIXTURE_DIR}', '--set', f'output_dir={output_dir}',
          '--set', 'evaluation.bless_margin=-1.0']
  for override in QUICK_TRAINING:
    args += ['--set', override]
  assert local_runner.main(args) == 0
  releases = os.path.join(output_dir, 'releases')
  release = str(tmp_path_factory.mktemp('release') / 'first')
  shutil.copytree(os.path.join(releases, os.readlink(os.path.join(releases, 'latest'))),
                  release)
  return PipelineRun(output_dir, release)
