"""retrieval/user_snapshot.py: tf.Examples -> memory-mapped arrays -> the same values."""

import numpy as np
import pytest
import tensorflow as tf

from retrieval import user_snapshot

USERS = {
    '12': {'user_id': ['12'], 'history_item_id': ['7', '42', '1000003'],
           'fans_user_num_range': ['10-100'], 'follow_user_num': [3.5], 'age': [31]},
    '3': {'user_id': ['3'], 'history_item_id': [], 'fans_user_num_range': ['0'],
          'follow_user_num': [0.0], 'age': [7]},
    'user-with-a-longer-id': {'user_id': ['user-with-a-longer-id'],
                              'history_item_id': ['5'], 'fans_user_num_range': ['ü'],
                              'follow_user_num': [-1.25], 'age': [0]},
}


def _example(values: dict) -> bytes:
  feature = {}
  for name, column in values.items():
    if name in ('follow_user_num',):
      feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=column))
    elif name == 'age':
      feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=column))
    else:
      feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[v.encode() for v in column]))
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_arrays_give_back_every_users_values(tmp_path):
  records = [_example(USERS[u]) for u in ('12', 'user-with-a-longer-id', '3')]
  assert user_snapshot.write(records, str(tmp_path)) == 3
  snapshot = user_snapshot.UserSnapshot.open(str(tmp_path))
  assert len(snapshot) == 3 and list(snapshot) == sorted(USERS)
  for user, values in USERS.items():
    assert user in snapshot
    got = snapshot[user]
    assert got == values  # float32 in the Example: these values are exact in float32
    assert [type(v) for v in got['age']] == [int] * len(values['age'])
  for missing in ('1', '', 'zzz', 'user-with-a-longer-id-and-more', 12):
    assert missing not in snapshot
    assert snapshot.get(missing) is None
  with pytest.raises(KeyError):
    snapshot['1']  # pylint: disable=pointless-statement
  # Memory-mapped, not read into memory.
  assert isinstance(snapshot._ids.base, np.memmap)  # pylint: disable=protected-access
