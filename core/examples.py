"""Reading the project's TFRecord files and decoding tf.Examples into Python values.

Every split the ingestion writes is gzip-compressed TFRecords of serialized tf.Examples
(feature names in feature_names.py).
"""

from typing import Iterator

import numpy as np
import tensorflow as tf

READ_BATCH = 4096


def record_batches(file_pattern: str, batch_size: int = READ_BATCH) -> Iterator[tf.Tensor]:
  """Serialized tf.Examples of gzip TFRecord files, in batches [<= batch_size], in a stable
  order (files sorted by name)."""
  files = sorted(tf.io.gfile.glob(file_pattern))
  if not files:
    raise FileNotFoundError(f'no TFRecord file matches {file_pattern}')
  yield from tf.data.TFRecordDataset(files, compression_type='GZIP').batch(batch_size)


def records(file_pattern: str) -> Iterator[bytes]:
  """Every serialized tf.Example of the files, one at a time."""
  for batch in record_batches(file_pattern):
    yield from batch.numpy()


def sorted_records(file_pattern: str) -> np.ndarray:
  """Every serialized record of the files, sorted by content: a stable order."""
  return np.array(sorted(records(file_pattern)), dtype=object)


def to_python(serialized: bytes) -> dict[str, list]:
  """One tf.Example -> {feature name: list of values}: bytes decoded as UTF-8 to str,
  floats and ints as they are; a feature with no value kind set gives []."""
  values = {}
  for name, feature in tf.train.Example.FromString(serialized).features.feature.items():
    kind = feature.WhichOneof('kind')
    raw = list(getattr(feature, kind).value) if kind else []
    values[name] = [v.decode('utf-8') for v in raw] if kind == 'bytes_list' else raw
  return values
