"""Runs models/preprocessing.py with tf.Transform on ingested examples, as TFX's Transform
component does in the pipeline; gives the models' tests real transformed data."""

import dataclasses
import functools
import os

import apache_beam as beam
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata
from tensorflow_transform.tf_metadata import metadata_io
from tfx_bsl.public import tfxio

from core import config as configs
from core import feature_names as fnames
from core import dataset_spec as ds
from core import schemas
from models import features
from models import preprocessing
from tests.conftest import REPO_ROOT

EVENTS_SCHEMA = os.path.join(REPO_ROOT, 'schemas', 'kuairand_pure', 'events_schema.pbtxt')


@dataclasses.dataclass(frozen=True)
class TransformedData:
  tft_dir: str
  train: str  # file patterns of transformed tf.Examples
  validation: str
  corpus: str  # raw item corpus as of the end of the train window
  raw_validation: str  # raw validation events (the Trainer's validation recall)
  raw_train: str  # raw train events (the Trainer's point-in-time negatives)
  space: features.FeatureSpace


def load_schema(path: str = EVENTS_SCHEMA,
                config: configs.IngestionConfig = configs.IngestionConfig(),
                popularity_too: bool = False):
  """The curated schema as the pipeline's CuratedSchemaGen gives it for `config` (with
  popularity_too, with every popularity feature, as the curated file has them)."""
  schema = schemas.read(path)
  if popularity_too:
    return schema
  return schemas.without_features(schema, config.derived_features_left_out)


def transform(ingested_dir: str, spec: ds.DatasetSpec, scenarios: tuple[str, ...],
              out_dir: str, schema_path: str = EVENTS_SCHEMA,
              config: configs.TransformConfig = configs.TransformConfig()) -> TransformedData:
  """Reads only the schema's features, so a spec with fewer features than the ingestion
  wrote transforms those it has."""
  schema = load_schema(schema_path)
  custom_config = configs.to_custom_config(spec, config)
  fn = functools.partial(preprocessing.preprocessing_fn, custom_config=custom_config)
  sources = {split: tfxio.TFExampleRecord(
      file_pattern=os.path.join(ingested_dir, 'examples', split, '*.gz'), schema=schema,
      telemetry_descriptors=['tests']) for split in ('train', 'validation')}
  tft_dir = os.path.join(out_dir, 'transform_fn')
  with beam.Pipeline(argv=['--runner=FnApiRunner']) as p:
    with tft_beam.Context(temp_dir=os.path.join(out_dir, 'tmp')):
      train = p | 'ReadTrain' >> sources['train'].BeamSource()
      validation = p | 'ReadValidation' >> sources['validation'].BeamSource()
      (train_out, metadata), transform_fn = (
          (train, sources['train'].TensorAdapterConfig())
          | tft_beam.AnalyzeAndTransformDataset(fn))
      validation_out, _ = (
          ((validation, sources['validation'].TensorAdapterConfig()), transform_fn)
          | tft_beam.TransformDataset())
      coder = tft.coders.ExampleProtoCoder(metadata.schema)
      for name, data in (('train', train_out), ('validation', validation_out)):
        _ = (data | f'Encode{name}' >> beam.Map(coder.encode)
             | f'Write{name}' >> beam.io.WriteToTFRecord(
                 os.path.join(out_dir, name, 'part'), file_name_suffix='.gz'))
      _ = transform_fn | tft_beam.WriteTransformFn(tft_dir)
  # The raw schema beside the transform graph, as TFX's Transform component writes it.
  metadata_io.write_metadata(dataset_metadata.DatasetMetadata(schema),
                             os.path.join(tft_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
  tft_output = tft.TFTransformOutput(tft_dir)
  space = features.FeatureSpace.build(
      spec, preprocessing.vocabulary_sizes(tft_output, spec, config.num_oov_buckets),
      # The model tests' towers read one popularity feature (the default reads both;
      # the towers are generic in their number, the pipeline test runs the default).
      scenarios, schema, (fnames.SCENARIO_CLICKS,))
  return TransformedData(tft_dir, os.path.join(out_dir, 'train', '*.gz'),
                         os.path.join(out_dir, 'validation', '*.gz'),
                         os.path.join(ingested_dir, 'item_corpus', 'train', '*.gz'),
                         os.path.join(ingested_dir, 'examples', 'validation', '*.gz'),
                         os.path.join(ingested_dir, 'examples', 'train', '*.gz'),
                         space)
