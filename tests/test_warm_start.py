"""Warm start (models/warm_start.py): a tower's weights carried into a tower whose
vocabularies changed, through the saved files; expected rows by numpy indexing."""

import numpy as np
import pytest
import tensorflow as tf

from core import feature_names as fnames
from models import warm_start


class _Tower(tf.keras.Model):
  """A tower's shape in miniature: an id table, a history item table, a dense layer."""

  def __init__(self, users: int, items: int):
    super().__init__(name='user_tower')
    self.users = tf.keras.layers.Embedding(users, 3, name=f'{fnames.USER_ID}_embedding')
    self.history = tf.keras.layers.Embedding(items, 3, name='history_item')
    self.dense = tf.keras.layers.Dense(2, name='dense')

  def call(self, ids):
    return self.dense(self.users(ids[:, 0]) + self.history(ids[:, 1]))


def _built(users: int, items: int, seed: int) -> _Tower:
  tf.keras.utils.set_random_seed(seed)
  tower = _Tower(users, items)
  tower(tf.zeros([1, 2], tf.int64))
  return tower


SCENARIOS = ('1', '4')


def test_known_ids_keep_their_rows_new_ids_start_from_their_oov_bucket(tmp_path):
  old_users, old_items = ['u1', 'u2', 'u3'], ['a', 'b']
  old = _built(len(old_users) + 2, len(old_items) + 2, seed=1)  # 2 OOV buckets each
  warm_start.save(old, {fnames.USER_ID: old_users, fnames.ITEM_ID: old_items}, 2,
                  SCENARIOS, tmp_path)

  # u2 left, u4 arrived, the order changed; item c arrived.
  new_users, new_items = ['u3', 'u4', 'u1'], ['b', 'c', 'a']
  new = _built(len(new_users) + 2, len(new_items) + 2, seed=2)
  counts = warm_start.restore(new, {fnames.USER_ID: new_users, fnames.ITEM_ID: new_items},
                              2, SCENARIOS, tmp_path)

  saved_users, saved_items = old.users.embeddings.numpy(), old.history.embeddings.numpy()
  # A new token's row: the saved row of the OOV bucket that served it (the lookup's hash).
  u4, c = tf.strings.to_hash_bucket_fast(['u4', 'c'], 2).numpy()
  expected_users = saved_users[[2, 3 + u4, 0, 3, 4]]
  expected_items = saved_items[[1, 2 + c, 0, 2, 3]]
  np.testing.assert_array_equal(new.users.embeddings.numpy(), expected_users)
  np.testing.assert_array_equal(new.history.embeddings.numpy(), expected_items)
  np.testing.assert_array_equal(new.dense.kernel.numpy(), old.dense.kernel.numpy())
  np.testing.assert_array_equal(new.dense.bias.numpy(), old.dense.bias.numpy())
  assert counts == {fnames.USER_ID: {'kept': 2, 'new': 1},
                    fnames.ITEM_ID: {'kept': 2, 'new': 1}}


def test_a_lookup_of_the_oov_buckets_uses_the_same_hash(tmp_path):
  """The bucket a new token started from is the one tft.apply_vocabulary gives it (in a
  graph of its own, as the Transform runs it)."""
  import tensorflow_transform as tft
  (tmp_path / 'vocabulary').write_text('u1\nu2\nu3\n')
  tokens = [f'u{i}' for i in range(4, 20)] + ['u1']
  with tf.Graph().as_default():
    ids = tft.apply_vocabulary(tf.constant(tokens), str(tmp_path / 'vocabulary'),
                               num_oov_buckets=3)
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.tables_initializer())
      looked_up = session.run(ids)
  buckets = tf.strings.to_hash_bucket_fast(tokens[:-1], 3).numpy()
  assert len(set(buckets)) == 3  # the tokens spread over every bucket
  np.testing.assert_array_equal(looked_up, list(3 + buckets) + [0])


@pytest.mark.parametrize('change, message', [
    (dict(scenarios=('4', '1')), 'scenarios'),
    (dict(num_oov_buckets=2), 'OOV buckets'),
    (dict(dense=4), 'dense.*another architecture'),
    (dict(dense_name='output'), 'first different: .*dense.*saved, .*output'),
])
def test_a_model_that_does_not_fit_is_refused_naming_what_differs(tmp_path, change,
                                                                   message):
  old = _built(3, 3, seed=1)
  vocabularies = {fnames.USER_ID: ['a', 'b'], fnames.ITEM_ID: ['x', 'y']}
  warm_start.save(old, vocabularies, 1, SCENARIOS, tmp_path)
  new = _Tower(3, 3)
  new.dense = tf.keras.layers.Dense(change.get('dense', 2),
                                    name=change.get('dense_name', 'dense'))
  new(tf.zeros([1, 2], tf.int64))
  with pytest.raises(warm_start.WarmStartMismatchError, match=message):
    warm_start.restore(new, vocabularies, change.get('num_oov_buckets', 1),
                       change.get('scenarios', SCENARIOS), tmp_path)
  with pytest.raises(warm_start.WarmStartMismatchError, match='no saved weights'):
    warm_start.restore(new, vocabularies, 1, SCENARIOS, tmp_path / 'missing')


@pytest.mark.parametrize('name, vocabulary', [  # names the models build
    ('user_tower/user_fields/user_id_embedding/embeddings:0', fnames.USER_ID),
    ('teacher/user_encoder/history/history_item/embeddings:0', fnames.ITEM_ID),
    ('teacher/item_encoder/item_fields/video_type_embedding/embeddings:0', 'video_type'),
    ('teacher/ranker/scenario_item_id/embeddings:0', fnames.ITEM_ID),
    ('teacher/ranker/task_user_id/embeddings:0', fnames.USER_ID),
    ('teacher/user_encoder/history/history_scenario/embeddings:0', ''),
    ('teacher/cross_1/dense_3/kernel:0', ''),
])
def test_each_table_is_indexed_by_its_features_vocabulary(name, vocabulary):
  assert warm_start.table_vocabulary(name) == vocabulary


def test_a_trained_dsmoe_student_is_restored_whole(fixture_batches, tmp_path):
  """Every weight of both towers (DSBN's moving statistics, the gates, SAP, the tables)
  goes through the files: a student of another seed gives the trained one's logits."""
  from core import config as configs
  from models import build
  space, batches = fixture_batches
  batch, labels, _ = batches[0]
  sizes = {c.name: c.vocab_size for c in space.user.categorical + space.item.categorical}
  vocabularies = {name: [f't{i}' for i in range(size - 1)] for name, size in sizes.items()}
  tf.keras.utils.set_random_seed(1)
  trained = build.build_student(configs.ModelConfig(), space)
  trained.compile(tf.keras.optimizers.Adam(0.01))
  trained.fit(tf.data.Dataset.from_tensors((batch, labels)), epochs=2, verbose=0)
  for name, tower in (('user', trained.user_tower), ('item', trained.item_tower)):
    warm_start.save(tower, vocabularies, 1, space.scenarios, tmp_path / name)
  tf.keras.utils.set_random_seed(2)
  fresh = build.build_student(configs.ModelConfig(), space)
  fresh(batch)
  assert not np.allclose(fresh(batch).numpy(), trained(batch).numpy())
  for name, tower in (('user', fresh.user_tower), ('item', fresh.item_tower)):
    counts = warm_start.restore(tower, vocabularies, 1, space.scenarios, tmp_path / name)
    assert all(c['new'] == 0 for c in counts.values()) and counts
  np.testing.assert_array_equal(fresh(batch).numpy(), trained(batch).numpy())
