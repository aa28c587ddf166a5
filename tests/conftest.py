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


# The pipeline and model tests run on the KuaiRand spec with a few features of each kind:
# the Transform's cost grows with the number of vocabularies (on the fixture, 43 s with
# every feature, 13 s with these).
SMALL_SPEC_FEATURES = {
    'users': ('user_active_degree', 'follow_user_num', 'fans_user_num_range', 'onehot_feat0'),
    'items': ('author_id', 'video_type', 'video_duration', 'tag')}
SmallSetup = collections.namedtuple('SmallSetup',
                                    'spec spec_path events_schema item_corpus_schema')


@pytest.fixture(scope='session')
def small_setup(tmp_path_factory, kuairand_spec):
  """The small spec's YAML file and the curated KuaiRand schemas without its left-out
  features, written to a temporary directory."""
  import json
  import yaml
  from core import schemas
  from tests import transform_fixture
  out = tmp_path_factory.mktemp('small_setup')
  small = kuairand_spec.with_features(sum(SMALL_SPEC_FEATURES.values(), ()))
  spec_path = out / 'dataset_spec.yaml'
  spec_path.write_text(yaml.safe_dump(json.loads(small.to_json()), sort_keys=False))
  left_out = set(kuairand_spec.feature_names) - set(small.feature_names)
  written = []
  for name in ('events_schema.pbtxt', 'item_corpus_schema.pbtxt'):
    curated = transform_fixture.load_schema(
        os.path.join(REPO_ROOT, 'schemas', 'kuairand_pure', name), popularity_too=True)
    schemas.write(schemas.without_features(curated, left_out), str(out / name))
    written.append(str(out / name))
  return SmallSetup(small, str(spec_path), *written)


@pytest.fixture(scope='session')
def fixture_transformed(tmp_path_factory, fixture_ingestion, small_setup):
  """The fixture's ingested examples through models/preprocessing.py (tf.Transform) with
  the small spec."""
  from tests import transform_fixture
  summary, ingested = fixture_ingestion
  scenarios = tuple(s['value'] for s in summary['scenarios'])
  return transform_fixture.transform(ingested, small_setup.spec, scenarios,
                                     str(tmp_path_factory.mktemp('fixture_transformed')),
                                     schema_path=small_setup.events_schema)


# The models' tests train on these batches (models/data.py on the transformed fixture).
MODEL_TRAINING = dict(batch_size=128, learning_rate=3e-3, negative_ratio=4)


def fixture_training_batches(fixture_transformed, training):
  """(feature space, the fixture's training batches in a fixed order, the point-in-time
  items): anchors of the train window with their random negatives, each negative's
  popularity as of its anchor's moment, as the Trainer makes them."""
  import tensorflow_transform as tft
  from models import data
  from models import item_clicks
  tft_output = tft.TFTransformOutput(fixture_transformed.tft_dir)
  space = fixture_transformed.space
  corpus_ids, corpus = data.corpus_item_features(fixture_transformed.corpus, tft_output,
                                                 space)
  items, _ = item_clicks.from_examples([fixture_transformed.raw_train], corpus_ids,
                                       space.scenarios, 86_400_000)
  batches = data.training_batches(
      data.anchors(fixture_transformed.train, tft_output, space, training,
                   point_in_time=True),
      space, corpus, training, shuffle=False, num_epochs=1, items=items)
  return space, batches, items


@pytest.fixture(scope='session')
def fixture_batches(fixture_transformed):
  """(feature space, every training batch of the fixture in a fixed order)
  (fixture_training_batches)."""
  import tensorflow as tf
  from core import config as configs
  tf.keras.utils.set_random_seed(1)
  space, batches, _ = fixture_training_batches(
      fixture_transformed, configs.TrainingConfig(**MODEL_TRAINING))
  return space, list(batches)


PipelineRun = collections.namedtuple('PipelineRun', 'output_dir release')
# Small enough for a few minutes on 2 cores: the pipeline tests' and serving tests' run.
QUICK_TRAINING = ('training.epochs=2', 'distillation.teacher_epochs=2',
                  'training.batch_size=256', 'training.learning_rate=0.003',
                  'evaluation.bootstrap_resamples=200', 'ranker.epochs=2',
                  'ranker.batch_size=256', 'ranking_evaluation.bootstrap_resamples=100')
# The fixture is too small for a model to beat popularity: these bless any model, so that
# the release path runs (the rule itself is tested in test_blessing.py).
BLESS_ANY = ('evaluation.worse_margin=1.0', 'evaluation.overall_min_gain=-1.0',
             'ranking_evaluation.worse_margin=1.0',
             'ranking_evaluation.overall_min_gain=-1.0',
             'ranking_evaluation.min_gauc_users=1')  # the fixture has few users


def pipeline_args(small_setup: SmallSetup, output_dir: str, data_dir: str = FIXTURE_DIR,
                  extra=()) -> list[str]:
  """local_runner arguments of a quick run on the small spec."""
  args = []
  for override in (f'data_dir={data_dir}', f'output_dir={output_dir}',
                   f'dataset_spec={small_setup.spec_path}',
                   f'events_schema={small_setup.events_schema}',
                   f'item_corpus_schema={small_setup.item_corpus_schema}',
                   *QUICK_TRAINING, *extra):
    args += ['--set', override]
  return args


@pytest.fixture(scope='session')
def fixture_pipeline_run(tmp_path_factory, small_setup):
  """The whole pipeline (pipeline/local_runner.py) on the fixture, once, and its release.

  BLESS_ANY blesses the model so that the release path runs. `release` is a copy of the
  release, safe from later runs.
  """
  from pipeline import local_runner
  output_dir = str(tmp_path_factory.mktemp('pipeline_outputs'))
  assert local_runner.main(pipeline_args(small_setup, output_dir, extra=BLESS_ANY)) == 0
  releases = os.path.join(output_dir, 'releases')
  release = str(tmp_path_factory.mktemp('release') / 'first')
  shutil.copytree(os.path.join(releases, os.readlink(os.path.join(releases, 'latest'))),
                  release)
  return PipelineRun(output_dir, release)
