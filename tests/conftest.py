"""Shared test set-up: Keras 2 behind tf.keras, the repository on sys.path, fixtures."""

import os
import sys

os.environ['TF_USE_LEGACY_KERAS'] = '1'  # before anything imports TensorFlow
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

import pytest  # pylint: disable=g-import-not-at-top

FIXTURE_DIR = os.path.join(REPO_ROOT, 'tests', 'testdata', 'kuairand_fixture')
KUAIRAND_SPEC = os.path.join(REPO_ROOT, 'schemas', 'kuairand_pure', 'dataset_spec.yaml')


@pytest.fixture(scope='session')
def kuairand_spec():
  from pipeline import dataset_spec
  return dataset_spec.DatasetSpec.from_yaml(KUAIRAND_SPEC)


@pytest.fixture(scope='session')
def fixture_ingestion(tmp_path_factory, kuairand_spec):
  """The KuaiRand fixture run through the Beam ingestion once: (summary, output dir)."""
  from tests import mini_dataset
  from pipeline import configs
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
