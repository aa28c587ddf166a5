"""The user snapshot as memory-mapped arrays: user id -> raw features, opened in
milliseconds instead of parsed.

A release's user_snapshot/ holds tf.Examples (one per user: features and history as of
the last event), which take seconds to parse per 10,000 users. `write` turns them, once,
when the release is published, into a directory of .npy files:

    user_ids.npy             [U] bytes, sorted (a binary search finds a user)
    <feature>.values.npy     [V] bytes, float64 or int64 (the tf.Example's bytes, float and
                             int64 lists): every user's values, concatenated in user order
    <feature>.offsets.npy    [U + 1] int64: user i's values are values[offsets[i]:offsets[i+1]]
    features.json            {feature: "bytes" | "float" | "int"}

`UserSnapshot.open` memory-maps them (np.load(mmap_mode='r')): nothing is read until a user
is looked up, and the operating system shares the pages between processes. It is a
read-only Mapping, user id -> {feature: list of str or float}, the values
core/examples.to_python gives for the same tf.Example.
"""

import collections.abc
import json
import os
from typing import Iterable, Iterator

import numpy as np

from core import examples
from core import feature_names as fnames

FEATURES_FILE = 'features.json'
USER_IDS_FILE = 'user_ids.npy'
BYTES, FLOAT, INT = 'bytes', 'float', 'int'
_DTYPES = {FLOAT: np.float64, INT: np.int64}


def write(records: Iterable[bytes], directory: str) -> int:
  """Writes the snapshot tf.Examples as arrays in directory; returns the user count.

  A feature missing from a user's example is an empty list for that user."""
  users = {}
  for record in records:
    values = examples.to_python(record)
    users[values[fnames.USER_ID][0]] = values
  ids = sorted(users)
  kinds = {}
  for values in users.values():
    for name, column in values.items():
      if column and kinds.get(name) is None:
        kinds[name] = (BYTES if isinstance(column[0], str) else
                       FLOAT if isinstance(column[0], float) else INT)
      kinds.setdefault(name, None)
  kinds = {name: kind or BYTES for name, kind in kinds.items()}  # never a value: bytes
  os.makedirs(directory, exist_ok=True)
  np.save(os.path.join(directory, USER_IDS_FILE), _bytes([u.encode() for u in ids]))
  for name, kind in sorted(kinds.items()):
    columns = [users[u].get(name, []) for u in ids]
    offsets = np.zeros(len(ids) + 1, np.int64)
    np.cumsum([len(c) for c in columns], out=offsets[1:])
    flat = [v for c in columns for v in c]
    values = (_bytes([v.encode() for v in flat]) if kind == BYTES
              else np.asarray(flat, _DTYPES[kind]))
    np.save(os.path.join(directory, f'{name}.values.npy'), values)
    np.save(os.path.join(directory, f'{name}.offsets.npy'), offsets)
  with open(os.path.join(directory, FEATURES_FILE), 'w', encoding='utf-8') as f:
    json.dump(kinds, f, indent=1, sort_keys=True)
  return len(ids)


def _bytes(values: list[bytes]) -> np.ndarray:
  return np.array(values, dtype=f'S{max([1] + [len(v) for v in values])}')


class UserSnapshot(collections.abc.Mapping):
  """user id (str) -> {feature: list of values}, over memory-mapped arrays."""

  def __init__(self, ids: np.ndarray, columns: dict[str, tuple[str, np.ndarray, np.ndarray]]):
    self._ids = ids  # [U] bytes, sorted
    self._columns = columns  # feature -> (kind, values, offsets)

  @classmethod
  def open(cls, directory: str) -> 'UserSnapshot':
    with open(os.path.join(directory, FEATURES_FILE), encoding='utf-8') as f:
      kinds = json.load(f)
    # Plain ndarray views of the maps: slicing a np.memmap costs more than the lookup.
    load = lambda name: np.load(os.path.join(directory, name),
                                mmap_mode='r').view(np.ndarray)
    return cls(load(USER_IDS_FILE), {
        name: (kind, load(f'{name}.values.npy'), load(f'{name}.offsets.npy'))
        for name, kind in kinds.items()})

  def _row(self, user_id) -> int:
    if not isinstance(user_id, str):
      return -1
    key = user_id.encode()
    if len(key) > self._ids.dtype.itemsize:  # longer than every stored id
      return -1
    row = int(np.searchsorted(self._ids, key))
    return row if row < len(self._ids) and self._ids[row] == key else -1

  def __getitem__(self, user_id: str) -> dict[str, list]:
    row = self._row(user_id)
    if row < 0:
      raise KeyError(user_id)
    features = {}
    for name, (kind, values, offsets) in self._columns.items():
      chunk = values[offsets[row]:offsets[row + 1]]
      features[name] = ([v.decode() for v in chunk.tolist()] if kind == BYTES
                        else chunk.tolist())
    return features

  def __contains__(self, user_id) -> bool:
    return self._row(user_id) >= 0

  def __iter__(self) -> Iterator[str]:
    return (u.decode() for u in self._ids.tolist())

  def __len__(self) -> int:
    return len(self._ids)
