"""The `kuairand_pure` TFDS builder yields the pipeline's own examples, offline."""

import tensorflow_datasets as tfds

import tfds_builders.kuairand_pure  # noqa: F401  (registers the builder)
from tests.conftest import FIXTURE_DIR


def _prepare(config, data_dir):
  builder = tfds.builder(f'kuairand_pure/{config}', data_dir=str(data_dir))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=FIXTURE_DIR))
  return builder


def test_events_match_the_ingestion(tmp_path, fixture_ingestion):
  summary, _ = fixture_ingestion
  builder = _prepare('events', tmp_path)
  for split in ('train', 'validation', 'test'):
    assert builder.info.splits[split].num_examples == summary['splits'][split]['events']
  assert builder.info.metadata['scenarios'] == summary['scenarios']
  train = tfds.load('kuairand_pure/events', split='train', data_dir=str(tmp_path))
  positives = sum(int(x['label']) for x in train.as_numpy_iterator())
  assert positives == summary['splits']['train']['positives']
  example = next(iter(train.take(1).as_numpy_iterator()))
  assert example['scenario'] in {b'1', b'4', b'0', b'2'}
  assert example['history_item_id'].shape == example['history_scenario'].shape
  assert example['fans_user_num'].dtype.name == 'float32'


def test_item_corpus(tmp_path):
  builder = _prepare('item_corpus', tmp_path)
  assert builder.info.splits['corpus'].num_examples == 1145
  items = tfds.load('kuairand_pure/item_corpus', split='corpus', data_dir=str(tmp_path))
  example = next(iter(items.take(1).as_numpy_iterator()))
  assert set(example) == {'item_id', 'author_id', 'video_type', 'upload_dt', 'upload_type',
                          'video_duration', 'server_width', 'server_height', 'music_id',
                          'music_type', 'tag', 'scenario_clicks',
                          'scenario_recent_clicks', 'item_outcomes'}
