"""Input pipelines: transformed examples -> (features, labels) batches with random negatives.

    transformed TFRecords --parse--> dense model inputs (models/features.py)
      -> keep the positives (clicks), or every exposure with `exposure_negatives`
      -> cached in memory once, reshuffled every epoch
      -> batches of `batch_size` anchors
      -> + `negative_ratio` random negatives per anchor: the anchor's user features and
         scenario with an item drawn from the item corpus, label 0; an item's chance is
         proportional to (its training clicks + 1) ** negative_sampling_power
         (0: uniform)
      -> with scenario_balance_power > 0, a loss weight per example from its scenario's
         number of anchors: (features, labels, weights)
"""

import tensorflow as tf
import tensorflow_transform as tft

from core import config as configs
from core import feature_names as fnames
from models import features

_READ_BATCH = 1024


def _gzip_reader(filenames):
  return tf.data.TFRecordDataset(filenames, compression_type='GZIP')


def transformed_examples(file_pattern: str, tft_output: tft.TFTransformOutput,
                         space: features.FeatureSpace, shuffle: bool, seed: int,
                         num_epochs=None) -> tf.data.Dataset:
  """Single examples (unbatched) of dense model inputs, the label included."""
  names = space.user_tower_features + space.item_tower_features + (fnames.LABEL,)
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
    ids.append(tf.reshape(raw[fnames.ITEM_ID], [-1]))
    dense = features.dense_model_inputs(transform(raw), space, space.item_tower_features)
    for name, value in dense.items():
      columns[name].append(value)
  return tf.concat(ids, 0), {name: tf.concat(v, 0) for name, v in columns.items()}


SHUFFLE_BUFFER = 200_000


def training_batches(file_pattern: str, tft_output: tft.TFTransformOutput,
                     space: features.FeatureSpace, corpus_items: dict,
                     config: configs.TrainingConfig, shuffle: bool = True,
                     num_epochs=None) -> tf.data.Dataset:
  """(features, labels) batches: anchors plus random negatives from the corpus.

  The anchors are parsed once and cached in memory (about 1 KB each), so later epochs
  only reshuffle and draw new negatives; `num_epochs` None repeats forever.
  """
  examples = transformed_examples(file_pattern, tft_output, space, False, config.seed, 1)
  if not config.exposure_negatives:
    examples = examples.filter(lambda x: x[fnames.LABEL] > 0)
  examples = examples.cache()
  if shuffle:
    examples = examples.shuffle(SHUFFLE_BUFFER, seed=config.seed,
                                reshuffle_each_iteration=True)
  examples = examples.repeat(num_epochs)
  item_names = space.item_tower_features
  ratio = config.negative_ratio
  logits = negative_logits(file_pattern, tft_output, space, corpus_items,
                           config.negative_sampling_power)

  balance = config.scenario_balance_power
  scenario_index = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
      tf.constant(space.scenarios), tf.range(len(space.scenarios), dtype=tf.int64)), 0)
  weights = (scenario_weights(examples, space, scenario_index, balance) if balance
             else None)

  def add_negatives(batch):
    labels = tf.cast(batch.pop(fnames.LABEL) > 0, tf.float32)
    size = tf.shape(labels)[0]
    picks = tf.random.categorical(logits[None], size * ratio, dtype=tf.int64)[0]
    merged = {}
    for name, value in batch.items():
      negatives = (tf.gather(corpus_items[name], picks) if name in item_names
                   else tf.repeat(value, ratio, axis=0))
      merged[name] = tf.concat([value, negatives], axis=0)
    labels = tf.concat([labels, tf.zeros([size * ratio], tf.float32)], axis=0)
    if weights is None:
      return merged, labels
    return merged, labels, tf.gather(weights, scenario_index.lookup(merged[fnames.SCENARIO]))

  return (examples.batch(config.batch_size)
          .map(add_negatives, num_parallel_calls=tf.data.AUTOTUNE)
          .prefetch(tf.data.AUTOTUNE))


def negative_logits(file_pattern: str, tft_output: tft.TFTransformOutput,
                    space: features.FeatureSpace, corpus_items: dict,
                    power: float) -> tf.Tensor:
  """log P(corpus row) of the negative sampler: power * log(training clicks + 1).

  Clicks are counted by item vocabulary id in the training split; the clicks of ids in the
  OOV buckets are shared evenly among the corpus items in those buckets.
  """
  corpus_ids = corpus_items[fnames.ITEM_ID]
  if power == 0:
    return tf.zeros(tf.shape(corpus_ids), tf.float32)
  clicks = (transformed_examples(file_pattern, tft_output, space, False, 0, 1)
            .filter(lambda x: x[fnames.LABEL] > 0)
            .map(lambda x: x[fnames.ITEM_ID]).batch(65536)
            .reduce(tf.zeros([space.item_vocab_size], tf.float32),
                    lambda total, ids: total + tf.math.bincount(
                        tf.cast(ids, tf.int32), minlength=space.item_vocab_size,
                        maxlength=space.item_vocab_size, dtype=tf.float32)))
  rows_per_id = tf.math.bincount(tf.cast(corpus_ids, tf.int32),
                                 minlength=space.item_vocab_size,
                                 maxlength=space.item_vocab_size, dtype=tf.float32)
  per_row = tf.gather(clicks / tf.maximum(rows_per_id, 1.0), corpus_ids)
  return power * tf.math.log(per_row + 1.0)


def scenario_weights(anchors: tf.data.Dataset, space: features.FeatureSpace,
                     scenario_index: tf.lookup.StaticHashTable, power: float) -> tf.Tensor:
  """Loss weight per scenario index: (max_s n_s / n_s) ** power, mean 1 over anchors."""
  counts = (anchors.map(lambda x: scenario_index.lookup(x[fnames.SCENARIO])).batch(65536)
            .reduce(tf.zeros([len(space.scenarios)], tf.float32),
                    lambda total, ids: total + tf.math.bincount(
                        tf.cast(ids, tf.int32), minlength=len(space.scenarios),
                        maxlength=len(space.scenarios), dtype=tf.float32)))
  raw = tf.where(counts > 0, tf.pow(tf.reduce_max(counts) / tf.maximum(counts, 1.0),
                                    power), 0.0)
  return raw * tf.reduce_sum(counts) / tf.reduce_sum(raw * counts)
