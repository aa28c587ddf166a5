"""Point-in-time negatives (models/item_clicks.py, models/data.py): every negative's
popularity features are its item's as of its anchor's moment, the rule the ingestion
applies to the anchor itself (ingestion/records.ItemClicks)."""

import csv
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from core import config as configs
from core import feature_names as fnames
from models import data
from models import features
from models import item_clicks
from tests import conftest

DAY = 86_400_000


def test_table_counts_and_decays_the_clicks_strictly_before_each_moment():
  # Clicks: row 0 scenario 0 at days 0 and 1; row 0 scenario 1 at day 2; row 2 scenario 0
  # at day 1. Row 1 has none.
  table = item_clicks.ItemClickTable(rows=[0, 0, 0, 2], scenario_index=[0, 0, 1, 0],
                                     times_ms=[0, DAY, 2 * DAY, DAY], num_scenarios=2,
                                     half_life_ms=DAY)
  rows = tf.constant([0, 0, 0, 1, 2, 0], tf.int64)
  moments = tf.constant([3 * DAY, DAY, 0, 3 * DAY, DAY + 1, 10 * DAY], tf.int64)
  got = table.features([fnames.SCENARIO_CLICKS, fnames.SCENARIO_RECENT_CLICKS], rows, moments)
  counts = np.array([[2, 1], [1, 0], [0, 0], [0, 0], [1, 0], [2, 1]], np.float64)
  decayed = np.array([[2 ** -3 + 2 ** -2, 2 ** -1], [2 ** -1, 0], [0, 0], [0, 0],
                      [2 ** (-1 / DAY), 0], [2 ** -10 + 2 ** -9, 2 ** -8]])
  # The model's inputs are log(1 + value), as the Transform graph makes them.
  np.testing.assert_allclose(got[fnames.SCENARIO_CLICKS].numpy(), np.log1p(counts),
                             rtol=1e-6)
  np.testing.assert_allclose(got[fnames.SCENARIO_RECENT_CLICKS].numpy(), np.log1p(decayed),
                             rtol=1e-5)


def _raw_clicks():
  """(item id, scenario, time ms) of every click of the fixture's raw CSV log."""
  path = os.path.join(conftest.FIXTURE_DIR, 'log_standard_fixture.csv')
  with open(path, newline='') as f:
    return [(row['video_id'], row['tab'], int(row['time_ms']))
            for row in csv.DictReader(f) if row['is_click'] == '1']


def _expected(clicks, item, scenarios, moment):
  return np.log1p([sum(1 for i, s, t in clicks if i == item and s == scenario and t < moment)
                   for scenario in scenarios])


def test_every_negative_carries_its_items_clicks_before_its_anchors_moment(
    fixture_transformed):
  training = configs.TrainingConfig(batch_size=64, negative_ratio=3, in_batch_negatives=1)
  space, batches, items = conftest.fixture_training_batches(fixture_transformed, training)
  tft_output = tft.TFTransformOutput(fixture_transformed.tft_dir)
  anchors = list(data.anchors(fixture_transformed.train, tft_output, space, training,
                              point_in_time=True).as_numpy_iterator())
  vocabulary = [v.decode() for v in tft_output.vocabulary_by_name(fnames.ITEM_ID)]
  clicks = _raw_clicks()
  checked = stale = 0
  start = 0
  for batch, labels, _ in batches:
    size = int(np.sum(labels.numpy()))  # the anchors (clicks) come first
    own = anchors[start:start + size]
    start += size
    user_row = batch[features.USER_ROW].numpy()
    item = batch[fnames.ITEM_ID].numpy()
    values = batch[fnames.SCENARIO_CLICKS].numpy()
    for row in range(size, len(user_row)):
      if item[row] >= len(vocabulary):  # an OOV id: several raw items, skip
        continue
      anchor = own[user_row[row]]
      expected = _expected(clicks, vocabulary[item[row]], space.scenarios,
                           anchor[fnames.TIMESTAMP])
      np.testing.assert_allclose(values[row], expected, rtol=1e-6)
      checked += 1
      # The check has teeth: counts as of the end of the training window differ often.
      stale += not np.allclose(expected, _expected(clicks, vocabulary[item[row]],
                                                   space.scenarios, 2 ** 62))
  assert start == len(anchors)
  assert checked > 200 and stale > checked // 10, (checked, stale)


def test_the_ingestion_and_the_trainer_apply_one_rule(fixture_transformed):
  """Each anchor's own popularity (written by the ingestion) equals the table's value for
  its item as of its moment: anchors and negatives are alike."""
  training = configs.TrainingConfig()
  space, _, items = conftest.fixture_training_batches(fixture_transformed, training)
  tft_output = tft.TFTransformOutput(fixture_transformed.tft_dir)
  anchors = next(iter(data.anchors(fixture_transformed.train, tft_output, space, training,
                                   point_in_time=True).batch(100_000)))
  rows = items.rows_of(anchors[fnames.RAW_ITEM_ID])
  assert bool(tf.reduce_all(rows >= 0))
  looked_up = items.table.features([fnames.SCENARIO_CLICKS], rows, anchors[fnames.TIMESTAMP])
  np.testing.assert_allclose(looked_up[fnames.SCENARIO_CLICKS].numpy(),
                             anchors[fnames.SCENARIO_CLICKS].numpy(), rtol=1e-6)
  assert float(tf.reduce_max(anchors[fnames.SCENARIO_CLICKS])) > 0


def test_clicks_outside_the_corpus_or_the_served_scenarios_are_counted(fixture_transformed):
  tft_output = tft.TFTransformOutput(fixture_transformed.tft_dir)
  corpus_ids, _ = data.corpus_item_features(fixture_transformed.corpus, tft_output,
                                            fixture_transformed.space)
  _, none = item_clicks.from_examples([fixture_transformed.raw_train],
                                      tf.constant([b'nothing']), ('1',), DAY)
  _, tab1 = item_clicks.from_examples([fixture_transformed.raw_train], corpus_ids, ('1',),
                                      DAY)
  train_clicks = none['not_in_corpus']
  assert none['clicks'] == 0 and none['scenario_not_served'] == 0 and train_clicks > 100
  assert tab1['not_in_corpus'] == 0
  assert tab1['clicks'] + tab1['scenario_not_served'] == train_clicks
  assert 0 < tab1['clicks'] < train_clicks


def test_item_outcomes_count_the_exposures_before_each_examples_moment(fixture_ingestion):
  """`item_outcomes` of every ingested example and corpus row equals, computed from the raw
  CSV log, its item's exposures and task positives (click, long_view, like; every
  scenario) strictly before the example's moment: a training event's own, a validation or
  test window's start; the corpus's train split as of the validation start."""
  from tests import mini_dataset
  summary, out = fixture_ingestion
  path = os.path.join(conftest.FIXTURE_DIR, 'log_standard_fixture.csv')
  with open(path, newline='') as f:
    log = [(row['video_id'], int(row['time_ms']), int(row['is_click']),
            int(row['long_view']), int(row['is_like'])) for row in csv.DictReader(f)]

  def expected(item, moment):
    rows = [r for r in log if r[0] == item and r[1] < moment]
    return [float(len(rows))] + [float(sum(r[k] for r in rows)) for k in (2, 3, 4)]

  as_of = {'train': None, 'validation': summary['validation_start_ms'],
           'test': summary['test_start_ms']}
  checked = stale = 0
  for split, moment in as_of.items():
    for example in mini_dataset.read_output(out, 'examples', split):
      item, own = example[fnames.ITEM_ID][0], example[fnames.TIMESTAMP][0]
      want = expected(item, own if moment is None else moment)
      assert example[fnames.ITEM_OUTCOMES] == want, (split, item, own)
      checked += 1
      stale += want != expected(item, 2 ** 62)
  for example in mini_dataset.read_output(out, 'item_corpus', 'train'):
    assert example[fnames.ITEM_OUTCOMES] == expected(example[fnames.ITEM_ID][0],
                                                     summary['validation_start_ms'])
  # The check has teeth: counts over the whole log differ for most examples.
  assert checked > 1000 and stale > checked // 2, (checked, stale)
