"""TFDS builder `kuairand_pure`: the pipeline's ingestion as a TensorFlow Dataset.

    import tfds_builders.kuairand_pure  # registers the builder
    ds = tfds.load('kuairand_pure/events', split='train')
    items = tfds.load('kuairand_pure/item_corpus', split='corpus')

It reads the raw CSV files from the manual directory (`download_config=tfds.download.
DownloadConfig(manual_dir=...)`), or from the repository's data/kuairand_pure/ when no manual
directory is set up, and runs the very same Beam ingestion as the pipeline's
InteractionExampleGen (join, time split, scenario selection, behaviour sequences), so a
notebook sees exactly the examples the pipeline trains on. Nothing is downloaded.
"""

import hashlib
import os
import tempfile

import apache_beam as beam
import tensorflow as tf
import tensorflow_datasets as tfds

from components.interaction_example_gen import executor as example_gen_executor
from components.interaction_example_gen import ingest
from components.interaction_example_gen import report
from pipeline import configs
from pipeline import dataset_spec as ds

SPEC_PATH = os.path.join(configs.REPO_ROOT, 'schemas', 'kuairand_pure', 'dataset_spec.yaml')
BUNDLED_DATA_DIR = os.path.join(configs.REPO_ROOT, 'data', 'kuairand_pure')
_EVENTS, _ITEM_CORPUS = 'events', 'item_corpus'


class KuairandPure(tfds.core.GeneratorBasedBuilder):
  """KuaiRand-Pure events (train/eval by time) and item corpus, as the pipeline ingests them."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Events with behaviour sequences; item corpus.'}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name=_EVENTS, description=(
          'One example per kept exposure: ids, raw scenario, label (click), timestamp, the '
          "user's last clicks before it, and user and item features. Splits: train "
          '(before the cutoff) and eval.')),
      tfds.core.BuilderConfig(name=_ITEM_CORPUS, description=(
          'Every item with its features. Split: corpus.')),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Put the KuaiRand-Pure files (log_standard_*.csv[.gz], user_features*.csv, '
      'video_features*.csv) in the manual directory, or leave it empty to use the copy '
      f'bundled with the project in {BUNDLED_DATA_DIR}.')

  def _info(self) -> tfds.core.DatasetInfo:
    spec = ds.DatasetSpec.from_yaml(SPEC_PATH)
    features = {ds.ITEM_ID: tf.string}
    if self.builder_config.name == _EVENTS:
      features.update({
          ds.USER_ID: tf.string, ds.SCENARIO: tf.string, ds.LABEL: tf.int64,
          ds.TIMESTAMP: tf.int64,
          ds.HISTORY_ITEM_ID: tfds.features.Sequence(tf.string),
          ds.HISTORY_SCENARIO: tfds.features.Sequence(tf.string),
      })
      features.update(_feature_types(spec.users))
    features.update(_feature_types(spec.items))
    if configs.IngestionConfig().scenario_click_features:
      features[ds.SCENARIO_CLICKS] = tfds.features.Sequence(tf.float32)
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(features),
        homepage='https://kuairand.com/',
        citation=('@inproceedings{gao2022kuairand, title={KuaiRand: An Unbiased Sequential '
                  'Recommendation Dataset with Randomly Exposed Videos}, author={Gao, '
                  'Chongming and others}, booktitle={CIKM}, year={2022}}'),
        metadata=tfds.core.MetadataDict(),
        license='CC BY-SA 4.0')

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    try:
      data_dir = os.fspath(dl_manager.manual_dir)
    except AssertionError:  # TFDS: no manual directory, or an empty one
      data_dir = BUNDLED_DATA_DIR
    spec = ds.DatasetSpec.from_yaml(SPEC_PATH)
    out = tempfile.mkdtemp(prefix='kuairand_pure_tfds_')
    outputs = ingest.OutputPaths(*(os.path.join(out, name) for name in (
        ingest.TRAIN, ingest.EVAL, ingest.CORPUS, ingest.USERS, 'raw_report.json')))
    config = configs.IngestionConfig()
    beam_args = list(configs.PipelineConfig().beam_pipeline_args)
    summary = example_gen_executor.ingest_and_summarize(
        lambda: beam.Pipeline(argv=beam_args), spec, data_dir, config, outputs)
    report.check(summary, config)
    self.info.metadata['scenarios'] = summary['scenarios']
    self.info.metadata['cutoff'] = summary['cutoff']
    if self.builder_config.name == _EVENTS:
      return {ingest.TRAIN: self._generate_examples(outputs.train_dir, spec),
              ingest.EVAL: self._generate_examples(outputs.eval_dir, spec)}
    return {ingest.CORPUS: self._generate_examples(outputs.corpus_dir, spec)}

  def _generate_examples(self, directory: str, spec: ds.DatasetSpec):
    names = self.info.features.keys()
    kinds = _value_kinds(spec)
    seen = {}
    files = sorted(tf.io.gfile.glob(os.path.join(directory, '*')))
    for record in tf.data.TFRecordDataset(files, compression_type='GZIP'):
      serialized = record.numpy()
      digest = hashlib.sha1(serialized).hexdigest()
      seen[digest] = seen.get(digest, -1) + 1  # identical events get distinct keys
      example = tf.train.Example.FromString(serialized)
      yield f'{digest}-{seen[digest]}', {
          name: _value(example.features.feature[name], kinds[name]) for name in names}


def _feature_types(table: ds.FeatureTableSpec) -> dict:
  types = {}
  for feature in table.features:
    if feature.is_numeric:
      types[feature.name] = tf.float32
    elif feature.kind is ds.FeatureKind.MULTI_CATEGORICAL:
      types[feature.name] = tfds.features.Sequence(tf.string)
    else:
      types[feature.name] = tf.string
  return types


def _value_kinds(spec: ds.DatasetSpec) -> dict:
  """Feature name -> 'bytes', 'bytes_list', 'float' or 'int'."""
  kinds = {ds.USER_ID: 'bytes', ds.ITEM_ID: 'bytes', ds.SCENARIO: 'bytes',
           ds.LABEL: 'int', ds.TIMESTAMP: 'int', ds.HISTORY_ITEM_ID: 'bytes_list',
           ds.HISTORY_SCENARIO: 'bytes_list', ds.SCENARIO_CLICKS: 'float_list'}
  for feature in spec.users.features + spec.items.features:
    kinds[feature.name] = ('float' if feature.is_numeric else 'bytes_list'
                           if feature.kind is ds.FeatureKind.MULTI_CATEGORICAL else 'bytes')
  return kinds


def _value(feature: tf.train.Feature, kind: str):
  if kind == 'int':
    return feature.int64_list.value[0]
  if kind == 'float':
    return feature.float_list.value[0]
  if kind == 'bytes':
    return feature.bytes_list.value[0]
  if kind == 'float_list':
    return list(feature.float_list.value)
  return list(feature.bytes_list.value)
