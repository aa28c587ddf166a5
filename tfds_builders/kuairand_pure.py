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

from core import config as configs
from core import dataset_spec as ds
from core import examples
from core import feature_names as fnames
from core import layout
from ingestion import ingest
from ingestion import report

SPEC_PATH = os.path.join(configs.REPO_ROOT, 'schemas', 'kuairand_pure', 'dataset_spec.yaml')
BUNDLED_DATA_DIR = os.path.join(configs.REPO_ROOT, 'data', 'kuairand_pure')
_EVENTS, _ITEM_CORPUS = 'events', 'item_corpus'


class KuairandPure(tfds.core.GeneratorBasedBuilder):
  """KuaiRand-Pure events (train/validation/test by time) and item corpus, as the pipeline
  ingests them."""

  VERSION = tfds.core.Version('3.0.0')
  RELEASE_NOTES = {'1.0.0': 'Events with behaviour sequences; item corpus.',
                   '2.0.0': 'Train, validation and test windows; corpus as of the last '
                            'event.',
                   '3.0.0': 'Ranking task labels (task_click, task_long_view, task_like) on '
                            'every exposure.'}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name=_EVENTS, description=(
          'One example per kept exposure: ids, raw scenario, label (click), the ranking '
          'tasks\' labels (task_<name>), timestamp, the '
          "user's last clicks before it (before its window for validation and test), and "
          'user and item features. Splits: train, validation, test (time windows).')),
      tfds.core.BuilderConfig(name=_ITEM_CORPUS, description=(
          'Every item with its features as of the last event. Split: corpus.')),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Put the KuaiRand-Pure files (log_standard_*.csv[.gz], user_features*.csv, '
      'video_features*.csv) in the manual directory, or leave it empty to use the copy '
      f'bundled with the project in {BUNDLED_DATA_DIR}.')

  def _info(self) -> tfds.core.DatasetInfo:
    spec = ds.DatasetSpec.from_yaml(SPEC_PATH)
    features = {fnames.ITEM_ID: tf.string}
    if self.builder_config.name == _EVENTS:
      features.update({
          fnames.USER_ID: tf.string, fnames.SCENARIO: tf.string, fnames.LABEL: tf.int64,
          fnames.TIMESTAMP: tf.int64,
          fnames.HISTORY_ITEM_ID: tfds.features.Sequence(tf.string),
          fnames.HISTORY_SCENARIO: tfds.features.Sequence(tf.string),
      })
      features.update({fnames.task_label(t): tf.int64 for t in spec.logs.task_names})
      features.update(_feature_types(spec.users))
    features.update(_feature_types(spec.items))
    config = configs.IngestionConfig()
    for flag, name in ((config.scenario_click_features, fnames.SCENARIO_CLICKS),
                       (config.recent_click_features, fnames.SCENARIO_RECENT_CLICKS),
                       (config.item_outcome_features, fnames.ITEM_OUTCOMES)):
      if flag:
        features[name] = tfds.features.Sequence(tf.float32)
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
    outputs = ingest.OutputPaths.under(tempfile.mkdtemp(prefix='kuairand_pure_tfds_'))
    config = configs.IngestionConfig()
    beam_args = list(configs.PipelineConfig().beam_pipeline_args)
    summary = ingest.ingest_and_summarize(
        lambda: beam.Pipeline(argv=beam_args), spec, data_dir, config, outputs)
    report.check(summary, config)
    self.info.metadata['scenarios'] = summary['scenarios']
    self.info.metadata['validation_start'] = summary['validation_start']
    self.info.metadata['test_start'] = summary['test_start']
    if self.builder_config.name == _EVENTS:
      return {split: self._generate_examples(outputs.examples[split])
              for split in (layout.TRAIN, layout.VALIDATION, layout.TEST)}
    return {'corpus': self._generate_examples(outputs.item_corpus[layout.ALL])}

  def _generate_examples(self, directory: str):
    features = self.info.features
    seen = {}
    for serialized in examples.records(os.path.join(directory, '*')):
      digest = hashlib.sha1(serialized).hexdigest()
      seen[digest] = seen.get(digest, -1) + 1  # identical events get distinct keys
      values = examples.to_python(serialized)
      yield f'{digest}-{seen[digest]}', {
          name: values[name] if isinstance(features[name], tfds.features.Sequence)
          else values[name][0] for name in features.keys()}


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
