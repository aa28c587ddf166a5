"""The curated schemas accept the real data and name the feature when data breaks them."""

import os

from apache_beam.options import pipeline_options
import pytest
import tensorflow as tf
import tfx  # noqa: F401  (TFX stubs a tfx_bsl module that TFDV imports)
import tensorflow_data_validation as tfdv

from components import data_validation_gate
from tests import mini_dataset
from tests import transform_fixture
from tests.conftest import REPO_ROOT

SCHEMAS = os.path.join(REPO_ROOT, 'schemas', 'kuairand_pure')
BEAM = pipeline_options.PipelineOptions(['--runner=FnApiRunner'])


def _stats(pattern):
  return tfdv.generate_statistics_from_tfrecord(pattern, pipeline_options=BEAM)


def _schema(name):
  """The curated schema as the pipeline uses it with the default ingestion flags."""
  return transform_fixture.load_schema(os.path.join(SCHEMAS, name))


@pytest.mark.parametrize('output,split,schema', [
    ('examples', 'train', 'events_schema.pbtxt'),
    ('examples', 'validation', 'events_schema.pbtxt'),
    ('examples', 'test', 'events_schema.pbtxt'),
    ('examples', 'all', 'events_schema.pbtxt'),
    ('item_corpus', 'all', 'item_corpus_schema.pbtxt')])
def test_fixture_has_no_anomaly(fixture_ingestion, output, split, schema):
  _, out = fixture_ingestion
  anomalies = tfdv.validate_statistics(_stats(os.path.join(out, output, split, '*.gz')),
                                       _schema(schema))
  assert data_validation_gate.anomaly_messages(anomalies, split) == []


def test_events_schema_describes_every_written_feature(fixture_ingestion):
  _, out = fixture_ingestion
  written = set(mini_dataset.read_output(out, 'examples', 'train')[0])
  assert written == {f.name for f in _schema('events_schema.pbtxt').feature}
  curated = tfdv.load_schema_text(os.path.join(SCHEMAS, 'events_schema.pbtxt'))
  assert {f.name for f in curated.feature} == written  # the default writes every one


def test_broken_data_names_feature_and_expectation(tmp_path, fixture_ingestion):
  _, out = fixture_ingestion
  examples = mini_dataset.read_output(out, 'examples', 'train')[:50]
  path = str(tmp_path / 'broken.tfrecord')
  with tf.io.TFRecordWriter(path) as writer:
    for i, values in enumerate(examples):
      example = tf.train.Example()
      for name, value in values.items():
        if name == 'label':
          value = [2 if i == 0 else value[0]]
        if name == 'user_active_degree':
          value = ['super_active' if i == 1 else value[0]]
        feature = example.features.feature[name]
        if value and isinstance(value[0], int):  # label, timestamp, task labels
          feature.int64_list.value.extend(value)
        elif value and isinstance(value[0], float):
          feature.float_list.value.extend(value)
        else:
          feature.bytes_list.value.extend(v.encode() for v in value)
      del example.features.feature['scenario']
      writer.write(example.SerializeToString())
  anomalies = tfdv.validate_statistics(_stats(path), _schema('events_schema.pbtxt'))
  messages = '\n'.join(data_validation_gate.anomaly_messages(anomalies, 'train'))
  assert "split 'train', feature 'label': Unexpectedly large value: 2" in messages
  assert "feature 'user_active_degree'" in messages and 'super_active' in messages
  assert "split 'train', feature 'scenario': Column is completely missing" in messages


def test_task_labels_the_spec_does_not_name_are_left_out_and_missing_ones_named():
  from core import errors
  from core import schemas
  curated = schemas.read(os.path.join(SCHEMAS, 'events_schema.pbtxt'))
  assert schemas.task_labels_left_out(curated, ('click', 'long_view', 'like'), 'x') == ()
  assert schemas.task_labels_left_out(curated, ('like',), 'x') == ('task_click',
                                                                    'task_long_view')
  with pytest.raises(errors.InputError, match='x has no feature task_share for the ranking'):
    schemas.task_labels_left_out(curated, ('click', 'share'), 'x')
