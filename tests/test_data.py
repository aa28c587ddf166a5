"""The training input pipeline: negatives, accidental hits, the logQ offset, determinism."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from core import config as configs
from models import data
from models import losses


@pytest.fixture(scope='module')
def setup(fixture_transformed):
  tft_output = tft.TFTransformOutput(fixture_transformed.tft_dir)
  space = fixture_transformed.space
  _, corpus = data.corpus_item_features(fixture_transformed.corpus, tft_output, space)
  return fixture_transformed, tft_output, space, corpus


def _first_batch(setup, config, corpus=None):
  transformed, tft_output, space, all_items = setup
  return next(iter(data.training_batches(
      data.anchors(transformed.train, tft_output, space, config), space,
      corpus or all_items, config, shuffle=True, num_epochs=1)))


def test_same_seed_same_batches_other_seed_other_batches(setup):
  config = configs.TrainingConfig(batch_size=64, negative_ratio=3, seed=7)
  (a, labels_a, _), (b, labels_b, _) = _first_batch(setup, config), _first_batch(setup, config)
  for name in a:
    np.testing.assert_array_equal(a[name].numpy(), b[name].numpy())
  np.testing.assert_array_equal(labels_a.numpy(), labels_b.numpy())
  c, _, _ = _first_batch(setup, configs.TrainingConfig(batch_size=64, negative_ratio=3,
                                                       seed=8))
  assert not np.array_equal(a['item_id'].numpy(), c['item_id'].numpy())


def test_a_negative_that_is_the_anchors_own_item_weighs_nothing(setup):
  _, _, _, all_items = setup
  few = {name: value[:3] for name, value in all_items.items()}  # a corpus of 3 items
  # Anchors whose clicked item is one of the 3 get it as a negative about a third of the
  # time; those negatives, and only those, get weight 0.
  features, labels, weights = _first_batch(
      setup, configs.TrainingConfig(batch_size=512, negative_ratio=6), few)
  anchors = int(labels.numpy().sum())
  anchor_items = np.repeat(features['item_id'].numpy()[:anchors], 6)
  negative_items = features['item_id'].numpy()[anchors:]
  hits = negative_items == anchor_items
  np.testing.assert_array_equal(weights.numpy()[anchors:], np.where(hits, 0.0, 1.0))
  np.testing.assert_array_equal(weights.numpy()[:anchors], 1.0)
  kept = _first_batch(setup, configs.TrainingConfig(batch_size=512, negative_ratio=6,
                                                    remove_accidental_hits=False), few)
  assert (kept[2].numpy() == 1.0).all()


def test_in_batch_negatives_are_the_other_anchors_items(setup):
  features, labels, _ = _first_batch(setup, configs.TrainingConfig(
      batch_size=50, negative_ratio=1, in_batch_negatives=2, remove_accidental_hits=False))
  size = int(labels.numpy().sum())
  assert len(labels) == size * 4 and (labels.numpy()[size:] == 0).all()
  items, users = features['item_id'].numpy(), features['user_id'].numpy()
  in_batch = slice(2 * size, 4 * size)  # after the anchors and their random negatives
  for r in (1, 2):  # the r-th in-batch negative of anchor j: anchor (j + r) mod B's item
    block = slice(2 * size + (r - 1) * size, 2 * size + r * size)
    np.testing.assert_array_equal(items[block], np.roll(items[:size], -r))
    np.testing.assert_array_equal(users[block], users[:size])
  assert items[in_batch].shape == (2 * size,)


def test_logq_offsets_by_hand():
  """q = (r q_random + m q_batch) / (r + m), offset log(N q), by item vocabulary id."""
  clicks = tf.constant([0.0, 3.0, 1.0, 0.0])  # by item vocabulary id
  corpus = {'item_id': tf.constant([0, 1, 2], tf.int64)}  # id 3 is not in the corpus

  class Space:
    item_vocab_size = 4

  config = configs.TrainingConfig(negative_ratio=2, in_batch_negatives=2,
                                  logq_correction=True)
  offsets = data.sampling_log_offsets(clicks, corpus, Space(), config).numpy()
  q_random = np.array([1, 1, 1, 0]) / 3  # uniform over the 3 corpus rows
  q_batch = np.array([0, 3, 1, 0]) / 4
  q = (2 * q_random + 2 * q_batch) / 4
  np.testing.assert_allclose(offsets[:3], np.log(3 * q[:3]), rtol=1e-5)
  assert offsets[3] == pytest.approx(np.log(1e-6))  # never drawn: floored


def test_the_logit_offset_is_subtracted_in_the_loss_only():
  logits = tf.constant([1.0, 2.0])
  assert losses.training_logits(logits, {}).numpy().tolist() == [1.0, 2.0]
  shifted = losses.training_logits(logits, {losses.LOGIT_OFFSET: tf.constant([0.5, -1.0])})
  np.testing.assert_allclose(shifted.numpy(), [0.5, 3.0])


def test_a_window_keeps_the_clicks_from_its_first_moment_on(setup):
  """anchors(since_ms=...): the clicks of that moment or later, counted here from the raw
  events; last_timestamp_ms is the latest event's time."""
  transformed, tft_output, space, _ = setup
  config = configs.TrainingConfig()
  raw = [tf.train.Example.FromString(r) for r in
         tf.data.TFRecordDataset(tf.io.gfile.glob(transformed.raw_train), 'GZIP')
         .as_numpy_iterator()]
  stamps = np.array([e.features.feature['timestamp'].int64_list.value[0] for e in raw])
  clicks = np.array([e.features.feature['label'].int64_list.value[0] for e in raw]) > 0
  assert data.last_timestamp_ms(transformed.train, tft_output, space) == stamps.max()
  since = int(np.median(stamps[clicks]))
  kept = list(data.anchors(transformed.train, tft_output, space, config, since_ms=since))
  assert len(kept) == int((clicks & (stamps >= since)).sum()) > 0
  assert len(kept) < int(clicks.sum())
  assert 'timestamp' not in kept[0]  # the window's key does not become a model input
  every = list(data.anchors(transformed.train, tft_output, space, config))
  assert len(every) == int(clicks.sum())
