"""Input pipelines: transformed examples -> (features, labels) batches with random negatives.

    transformed TFRecords --parse--> dense model inputs (models/features.py)
      -> keep the positives (clicks), or every exposure with `exposure_negatives`
      -> batches of `batch_size` anchors
      -> + `negative_ratio` random negatives per anchor: the anchor's user features and
         scenario with an item drawn uniformly from the item corpus, label 0
"""

import tensorflow as tf
import tensorflow_transform as tft

from models import features
from pipeline import configs
from pipeline import dataset_spec as ds

_READ_BATCH = 1024


def _gzip_reader(filenames):
  return tf.data.TFRecordDataset(filenames, compression_type='GZIP')


def transformed_examples(file_pattern: str, tft_output: tft.TFTransformOutput,
                         space: features.FeatureSpace, shuffle: bool, seed: int,
                         num_epochs=None) -> tf.data.Dataset:
  """Single examples (unbatched) of dense model inputs, the label included."""
  names = space.user_tower_features + space.item_tower_features + (ds.LABEL,)
  dataset = tf.data.experimental.make_batched_features_dataset(
      file_pattern, _READ_BATCH, tft_output.transformed_feature_spec(),
      reader=_gzip_reader, num_epochs=num_epochs, shuffle=shuffle,
      shuffle_buffer_size=20 * _READ_BATCH, shuffle_seed=seed, drop_final_batch=False)
  return dataset.map(lambda batch: features.dense_model_inputs(batch, space, names),
                     num_parallel_calls=tf.data.AUTOTUNE).unbatch()


def corpus_item_features(raw_corpus_pattern: str, tft_output: tft.TFTransformOutput,
                         space: features.FeatureSpace) -> tuple[tf.Tensor, dict]:
  """Every corpus item: (raw item ids [N], dense transformed item features [N, ...]).

  The corpus holds raw item features; the transform graph (pruned to item features)
  turns them into model inputs exactly as for training events.
  """
  raw_spec = tft_output.raw_feature_spec()
  item_raw = {name: raw_spec[name] for name in space.item_tower_features}
  transform = tft_output.transform_features_layer()
  ids, columns = [], {name: [] for name in space.item_tower_features}
  dataset = tf.data.experimental.make_batched_features_dataset(
      raw_corpus_pattern, 4096, item_raw, reader=_gzip_reader, num_epochs=1,
      shuffle=False)
  for raw in dataset:
    ids.append(tf.reshape(raw[ds.ITEM_ID], [-1]))
    dense = features.dense_model_inputs(transform(raw), space, space.item_tower_features)
    for name, value in dense.items():
      columns[name].append(value)
  return tf.concat(ids, 0), {name: tf.concat(v, 0) for name, v in columns.items()}


def training_batches(file_pattern: str, tft_output: tft.TFTransformOutput,
                     space: features.FeatureSpace, corpus_items: dict,
                     config: configs.TrainingConfig, shuffle: bool = True,
                     num_epochs=None) -> tf.data.Dataset:
  """(features, labels) batches: anchors plus random negatives from the corpus."""
  examples = transformed_examples(file_pattern, tft_output, space, shuffle, config.seed,
                                  num_epochs)
  if not config.exposure_negatives:
    examples = examples.filter(lambda x: x[ds.LABEL] > 0)
  item_names = space.item_tower_features
  corpus_size = tf.shape(corpus_items[ds.ITEM_ID], out_type=tf.int64)[0]
  ratio = config.negative_ratio

  def add_negatives(batch):
    labels = tf.cast(batch.pop(ds.LABEL) > 0, tf.float32)
    if ratio == 0:
      return batch, labels
    size = tf.shape(labels, out_type=tf.int64)[0]
    picks = tf.random.uniform([size * ratio], maxval=corpus_size, dtype=tf.int64)
    merged = {}
    for name, value in batch.items():
      negatives = (tf.gather(corpus_items[name], picks) if name in item_names
                   else tf.repeat(value, ratio, axis=0))
      merged[name] = tf.concat([value, negatives], axis=0)
    return merged, tf.concat([labels, tf.zeros([size * ratio], tf.float32)], axis=0)

  return (examples.batch(config.batch_size)
          .map(add_negatives, num_parallel_calls=tf.data.AUTOTUNE)
          .prefetch(tf.data.AUTOTUNE))
