"""A ranker trained on the fixture's exposures (training/ranking.py), scored from raw
examples, exported as a SavedModel from raw features and reloaded."""

import csv
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from core import config as configs
from core import examples as example_files
from core import layout
from models import data
from models import export
from training import ranking

TASKS = ('click', 'long_view', 'like')


@pytest.fixture(scope='module')
def trained(fixture_transformed, tmp_path_factory):
  config = configs.RankerConfig(model='mdl', epochs=2, patience=1, batch_size=256,
                                token_dim=12, num_heads=2, hidden_units=(16,),
                                tower_units=(8,))
  tft_output = tft.TFTransformOutput(fixture_transformed.tft_dir)
  work = str(tmp_path_factory.mktemp('ranker'))
  model, summary = ranking.train_ranker(config, 7, fixture_transformed.space, TASKS,
                                        tft_output, fixture_transformed.train,
                                        fixture_transformed.validation, work)
  return model, summary, tft_output, work


def test_training_keeps_the_best_validation_epoch(trained):
  _, summary, _, _ = trained
  history = summary['history'][ranking.MEAN_GAUC]
  assert summary['epochs_run'] == len(history) <= 2
  assert summary['epoch_kept'] == 1 + int(np.argmax(history))
  assert summary['monitor']['best'] == pytest.approx(max(history))


def _naive_gauc(labels, scores, users):
  """Exposure-weighted mean over users with both classes of the share of (positive,
  negative) pairs ordered right, ties counting 1/2: by pairs, not by ranks."""
  total = weight = 0.0
  for user in np.unique(users):
    mine = users == user
    pos, neg = scores[mine & (labels == 1)], scores[mine & (labels == 0)]
    if len(pos) and len(neg):
      pairs = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
      total += pairs.mean() * mine.sum()
      weight += mine.sum()
  return total / weight


def test_the_monitored_gauc_is_the_kept_models_within_user_auc(trained, fixture_transformed):
  model, summary, tft_output, _ = trained
  validation = data.ranking_examples(fixture_transformed.validation, tft_output,
                                     fixture_transformed.space, TASKS).batch(512)
  users, labels, scores = [], [], []
  for inputs, batch_labels in validation:
    users.append(inputs['user_id'].numpy())
    labels.append(batch_labels.numpy())
    scores.append(model(inputs, training=False).numpy())
  users, labels, scores = map(np.concatenate, (users, labels, scores))
  kept = summary['epoch_kept'] - 1
  expected = [_naive_gauc(labels[:, t], scores[:, t], users) for t in range(len(TASKS))]
  for t, task in enumerate(TASKS):
    assert summary['history'][f'val_gauc_{task}'][kept] == pytest.approx(expected[t],
                                                                          abs=1e-4)
  assert summary['history'][ranking.MEAN_GAUC][kept] == pytest.approx(np.mean(expected),
                                                                      abs=1e-4)


def test_scores_every_raw_exposure_with_its_labels(trained, fixture_transformed):
  model, _, tft_output, _ = trained
  scored = ranking.score_raw(model, tft_output, fixture_transformed.space,
                             fixture_transformed.raw_validation, TASKS)
  raw = list(tf.data.TFRecordDataset(tf.io.gfile.glob(fixture_transformed.raw_validation),
                                     compression_type='GZIP').as_numpy_iterator())
  assert scored.probabilities.shape == (len(raw), 3)
  assert np.all((scored.probabilities > 0) & (scored.probabilities < 1))
  # Labels and ids independently: the fixture CSV's columns for each (user, item) scored.
  from tests.conftest import FIXTURE_DIR
  with open(os.path.join(FIXTURE_DIR, 'log_standard_fixture.csv')) as f:
    rows = {(r['user_id'], r['video_id'], int(r['time_ms'])): (
        int(r['is_click']), int(r['long_view']), int(r['is_like'])) for r in csv.DictReader(f)}
  for user, item, ms, labels in zip(scored.users, scored.items, scored.timestamps,
                                    scored.labels):
    assert rows[(user, item, ms)] == tuple(labels)


def test_saved_model_round_trip_from_raw_features(trained, fixture_transformed, tmp_path):
  model, _, tft_output, _ = trained
  space = fixture_transformed.space
  directory = str(tmp_path / 'ranker')
  export.export_ranker(model, tft_output, space, TASKS, directory)
  loaded = tf.saved_model.load(directory)
  scored = ranking.score_raw(model, tft_output, space, fixture_transformed.raw_validation,
                             TASKS)
  records = [r for r in tf.data.TFRecordDataset(
      sorted(tf.io.gfile.glob(fixture_transformed.raw_validation)),
      compression_type='GZIP').as_numpy_iterator()]
  ordered = example_files.sorted_records(fixture_transformed.raw_validation)[:20]
  assert set(ordered.tolist()) <= set(records)
  by_examples = loaded.signatures[layout.RANKER_EXAMPLES_SIGNATURE](
      examples=tf.constant(list(ordered)))
  assert sorted(by_examples) == sorted(TASKS)
  for i, task in enumerate(TASKS):
    np.testing.assert_allclose(by_examples[task].numpy(), scored.probabilities[:20, i],
                               rtol=1e-5, atol=1e-6)
  # The raw-tensor signature: the same exposures as plain values.
  signature = loaded.signatures[layout.RANKER_SIGNATURE]
  parsed = tf.io.parse_example(tf.constant(list(ordered)),
                               tft_output.raw_feature_spec())
  inputs = {}
  for name, spec in signature.structured_input_signature[1].items():
    value = parsed[name]
    if isinstance(value, tf.SparseTensor):
      value = tf.sparse.to_dense(value, default_value='' if spec.dtype == tf.string else 0)
    inputs[name] = tf.reshape(value, [20]) if spec.shape.rank == 1 else value
  by_values = signature(**inputs)
  for task in TASKS:
    np.testing.assert_allclose(by_values[task].numpy(), by_examples[task].numpy(),
                               rtol=1e-5, atol=1e-6)
  assert open(os.path.join(directory, layout.RANKER_TASKS_FILE)).read() == \
      '["click", "long_view", "like"]'
