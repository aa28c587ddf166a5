"""Input pipelines: transformed examples -> (features, labels, weights) batches with negatives.

    transformed TFRecords, sorted by content (the order does not depend on how Beam wrote
    them) --parse--> dense model inputs (models/features.py)
      -> keep the positives (clicks), or every exposure with `exposure_negatives`
      -> cached in memory once, reshuffled every epoch (seeded)
      -> batches of `batch_size` anchors
      -> + `negative_ratio` random negatives per anchor: the anchor's user features and
         scenario with an item drawn from the item corpus, label 0; an item's chance is
         proportional to (its training clicks + 1) ** negative_sampling_power (0: uniform);
         its popularity features as of the anchor's moment (point in time,
         models/item_clicks.py), like the anchor's own
      -> + `in_batch_negatives` per anchor (beyond the paper): the items of other anchors
         of the batch, so popular items are negatives as often as they are positives
      -> the anchors come first; features.USER_ROW gives each row its anchor's row, so
         the student computes each anchor's user embedding once
      -> loss weight per example: 0 for an accidental hit (a negative whose item is the
         anchor's own clicked item, `remove_accidental_hits`), times the scenario's weight
         with `scenario_balance_power` > 0
      -> with `logq_correction` (beyond the paper), a per-example logit offset
         log(N q(i)) for the item's probability q(i) under the negatives' sampling, so the
         model's score does not carry that distribution (see `sampling_log_offsets`)

The random draws are stateless, seeded from `training.seed` and a per-batch seed stream:
the same data and seed give the same batches, whatever the thread scheduling.

The rankers read every exposure as it was shown, with no negatives added:
`ranking_examples` gives (dense model inputs, the task labels [T]) per exposure and
`ranking_batches` batches them.
"""

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from core import config as configs
from core import examples as example_files
from core import feature_names as fnames
from models import features
from models import item_clicks
from models import losses

_PARSE_BATCH = 1024


def transformed_examples(file_pattern: str, tft_output: tft.TFTransformOutput,
                         space: features.FeatureSpace, num_shards: int = 1,
                         shard_index: int = 0, extra: tuple[str, ...] = ()) -> tf.data.Dataset:
  """Single examples (unbatched) of dense model inputs, the label and the `extra`
  transformed features included, in a stable order. With `num_shards` > 1, only every
  num_shards-th record from `shard_index` on (a worker's disjoint share; only its records
  are parsed)."""
  names = space.user_tower_features + space.item_tower_features + (fnames.LABEL,) + extra
  spec = tft_output.transformed_feature_spec()
  return (tf.data.Dataset.from_tensor_slices(example_files.sorted_records(file_pattern))
          .shard(num_shards, shard_index)
          .batch(_PARSE_BATCH)
          .map(lambda batch: features.dense_model_inputs(
              tf.io.parse_example(batch, spec), space, names),
               num_parallel_calls=tf.data.AUTOTUNE)
          .unbatch())


def corpus_item_features(raw_corpus_pattern: str, tft_output: tft.TFTransformOutput,
                         space: features.FeatureSpace) -> tuple[tf.Tensor, dict]:
  """Every corpus item, in a stable order: (raw item ids [N], dense transformed item
  features [N, ...]).

  The corpus holds raw item features; the transform graph (pruned to item features)
  turns them into model inputs exactly as for training events.
  """
  raw_spec = tft_output.raw_feature_spec()
  item_raw = {name: raw_spec[name] for name in space.item_tower_features}
  transform = tft_output.transform_features_layer()
  ids, columns = [], {name: [] for name in space.item_tower_features}
  records = example_files.sorted_records(raw_corpus_pattern)
  for start in range(0, len(records), 4096):
    raw = tf.io.parse_example(records[start:start + 4096], item_raw)
    ids.append(tf.reshape(tf.sparse.to_dense(raw[fnames.ITEM_ID])
                          if isinstance(raw[fnames.ITEM_ID], tf.SparseTensor)
                          else raw[fnames.ITEM_ID], [-1]))
    dense = features.dense_model_inputs(transform(raw), space, space.item_tower_features)
    for name, value in dense.items():
      columns[name].append(value)
  return tf.concat(ids, 0), {name: tf.concat(v, 0) for name, v in columns.items()}


def ranking_examples(file_pattern: str, tft_output: tft.TFTransformOutput,
                     space: features.FeatureSpace, tasks: Sequence[str]) -> tf.data.Dataset:
  """The rankers' examples: every exposure of the files (each shown item with its
  labels, no sampled negatives), single examples in a stable order (sorted by content).

  Each element is (dense model inputs of both towers as in transformed_examples, without
  the label; labels float32 [T]: the `task_<name>` 0/1 label of each of `tasks`, in that
  order).
  """
  tasks = tuple(tasks)
  if not tasks:
    raise ValueError('ranking_examples needs at least one task')
  names = space.user_tower_features + space.item_tower_features
  spec = tft_output.transformed_feature_spec()
  missing = [name for name in (fnames.task_label(t) for t in tasks) if name not in spec]
  if missing:
    raise ValueError(f'the transformed examples have no {", ".join(missing)}: the '
                     f'dataset spec names no such ranking task (logs.tasks)')

  label_names = tuple(fnames.task_label(t) for t in tasks)

  def parse(batch):
    parsed = tf.io.parse_example(batch, spec)
    labels = features.dense_model_inputs(parsed, space, label_names)
    return (features.dense_model_inputs(parsed, space, names),
            tf.stack([tf.cast(labels[name], tf.float32) for name in label_names], axis=1))

  return (tf.data.Dataset.from_tensor_slices(example_files.sorted_records(file_pattern))
          .batch(_PARSE_BATCH)
          .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
          .unbatch())


def ranking_batches(examples: tf.data.Dataset, batch_size: int,
                    shuffle_seed: Optional[int] = None) -> tf.data.Dataset:
  """(features, labels [B, T]) batches of ranking_examples, cached in memory; with a
  `shuffle_seed`, reshuffled every epoch (seeded), else in the examples' order. One
  pass: repeat it for more epochs."""
  examples = examples.cache()
  if shuffle_seed is not None:
    examples = examples.shuffle(SHUFFLE_BUFFER, seed=shuffle_seed,
                                reshuffle_each_iteration=True)
  return examples.batch(batch_size).prefetch(tf.data.AUTOTUNE)


SHUFFLE_BUFFER = 200_000


# What training_batches needs of each anchor for point-in-time negatives.
POINT_IN_TIME_KEYS = (fnames.TIMESTAMP, fnames.RAW_ITEM_ID)


def anchors(file_pattern: str, tft_output: tft.TFTransformOutput,
            space: features.FeatureSpace, config: configs.TrainingConfig,
            num_shards: int = 1, shard_index: int = 0,
            point_in_time: bool = False, since_ms: Optional[int] = None) -> tf.data.Dataset:
  """The training examples every batch starts from: clicks (and, with
  exposure_negatives, exposures without a click), single examples; of one shard of the
  records with `num_shards` > 1 (transformed_examples). With `point_in_time`, each also
  carries POINT_IN_TIME_KEYS (for training_batches' `items`). With `since_ms`, only the
  examples of that moment or later (a refresh's window)."""
  extra = POINT_IN_TIME_KEYS if point_in_time else ()
  if since_ms is not None and fnames.TIMESTAMP not in extra:
    extra += (fnames.TIMESTAMP,)
  examples = transformed_examples(file_pattern, tft_output, space, num_shards, shard_index,
                                  extra)
  if since_ms is not None:
    examples = examples.filter(lambda x: x[fnames.TIMESTAMP] >= since_ms)
    if not point_in_time:
      examples = examples.map(lambda x: {k: v for k, v in x.items()
                                         if k != fnames.TIMESTAMP})
  if not config.exposure_negatives:
    examples = examples.filter(lambda x: x[fnames.LABEL] > 0)
  return examples


def last_timestamp_ms(file_pattern: str, tft_output: tft.TFTransformOutput,
                      space: features.FeatureSpace) -> int:
  """The latest event time (epoch ms) of the transformed examples of `file_pattern`."""
  stamps = transformed_examples(file_pattern, tft_output, space, extra=(fnames.TIMESTAMP,))
  return int(stamps.reduce(tf.constant(0, tf.int64),
                           lambda latest, x: tf.maximum(latest, tf.reduce_max(
                               tf.cast(x[fnames.TIMESTAMP], tf.int64)))))


def item_click_counts(anchor_examples: tf.data.Dataset,
                      space: features.FeatureSpace) -> tf.Tensor:
  """Clicks per item vocabulary id among the anchors [item vocab size]."""
  return (anchor_examples.filter(lambda x: x[fnames.LABEL] > 0)
          .map(lambda x: x[fnames.ITEM_ID]).batch(65536)
          .reduce(tf.zeros([space.item_vocab_size], tf.float32),
                  lambda total, ids: total + tf.math.bincount(
                      tf.cast(ids, tf.int32), minlength=space.item_vocab_size,
                      maxlength=space.item_vocab_size, dtype=tf.float32)))


def training_batches(anchor_examples: tf.data.Dataset, space: features.FeatureSpace,
                     corpus_items: dict, config: configs.TrainingConfig,
                     shuffle: bool = True, num_epochs=None,
                     items: Optional[item_clicks.PointInTimeItems] = None) -> tf.data.Dataset:
  """(features, labels, weights) batches: anchors plus their negatives (module docstring).

  `anchor_examples` (from `anchors`) are cached in memory (about 1 KB each), so later
  epochs only reshuffle and draw new negatives; `num_epochs` None repeats forever.

  With `items` (anchors from `anchors(..., point_in_time=True)`), every negative's
  popularity features are its item's as of its anchor's moment, the rule of the anchor's
  own features (models/item_clicks.py); without, the corpus's (right when the anchors'
  features are as of the corpus's moment, as for validation).
  """
  examples = anchor_examples.cache()
  clicks = item_click_counts(examples, space)
  scenario_index = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
      tf.constant(space.scenarios), tf.range(len(space.scenarios), dtype=tf.int64)), 0)
  balance = config.scenario_balance_power
  scenario_weight = (scenario_weights(examples, space, scenario_index, balance) if balance
                     else None)
  if shuffle:
    examples = examples.shuffle(SHUFFLE_BUFFER, seed=config.seed,
                                reshuffle_each_iteration=True)
  examples = examples.repeat(num_epochs)
  item_names = space.item_tower_features
  ratio, in_batch = config.negative_ratio, config.in_batch_negatives
  logits = negative_logits(clicks, corpus_items, space, config.negative_sampling_power)
  offsets = (sampling_log_offsets(clicks, corpus_items, space, config)
             if config.logq_correction else None)

  popularity = [name for name in item_names if name in fnames.POPULARITY_FEATURES]

  def add_negatives(batch, seed):
    labels = tf.cast(batch.pop(fnames.LABEL) > 0, tf.float32)
    moments = [batch.pop(key) for key in POINT_IN_TIME_KEYS if key in batch]
    size = tf.shape(labels)[0]
    picks = tf.random.stateless_categorical(logits[None], size * ratio, seed=seed,
                                            dtype=tf.int64)[0]  # corpus rows
    # In-batch: anchor j's r-th negative is the item of anchor (j + r) mod B.
    others = tf.reshape(
        (tf.range(size)[None, :] + tf.range(1, in_batch + 1)[:, None]) % size, [-1])
    merged = {}
    for name, value in batch.items():
      parts = [value]
      if name in item_names:
        parts += [tf.gather(corpus_items[name], picks), tf.gather(value, others)]
      else:
        parts += [tf.repeat(value, ratio, axis=0), tf.tile(value, [in_batch] +
                                                           [1] * (value.shape.rank - 1))]
      merged[name] = tf.concat(parts, axis=0)
    if items is not None and popularity:
      times, raw_ids = moments
      rows = tf.concat([picks, tf.gather(items.rows_of(raw_ids), others)], 0)
      as_of = tf.concat([tf.repeat(times, ratio), tf.tile(times, [in_batch])], 0)
      for name, value in items.table.features(popularity, rows, as_of).items():
        merged[name] = tf.concat([batch[name], value], 0)
    anchor_rows = tf.range(size, dtype=tf.int32)
    merged[features.USER_ROW] = tf.concat(
        [anchor_rows, tf.repeat(anchor_rows, ratio), tf.tile(anchor_rows, [in_batch])], 0)
    negatives = size * (ratio + in_batch)
    labels = tf.concat([labels, tf.zeros([negatives], tf.float32)], axis=0)
    anchor_items = tf.concat([batch[fnames.ITEM_ID], tf.repeat(batch[fnames.ITEM_ID], ratio),
                              tf.tile(batch[fnames.ITEM_ID], [in_batch])], axis=0)
    weights = tf.ones_like(labels)
    if config.remove_accidental_hits:
      hit = (labels == 0) & tf.equal(merged[fnames.ITEM_ID], anchor_items)
      weights = tf.where(hit, 0.0, weights)
    if scenario_weight is not None:
      weights *= tf.gather(scenario_weight, scenario_index.lookup(merged[fnames.SCENARIO]))
    if offsets is not None:
      merged[losses.LOGIT_OFFSET] = tf.gather(offsets, merged[fnames.ITEM_ID])
    return merged, labels, weights

  seeds = tf.data.Dataset.random(seed=config.seed, rerandomize_each_iteration=True).batch(2)
  return (tf.data.Dataset.zip((examples.batch(config.batch_size), seeds))
          .map(add_negatives, num_parallel_calls=tf.data.AUTOTUNE)
          .prefetch(tf.data.AUTOTUNE))


def negative_logits(clicks: tf.Tensor, corpus_items: dict, space: features.FeatureSpace,
                    power: float) -> tf.Tensor:
  """log P(corpus row) of the random negatives, up to a constant:
  power * log(training clicks + 1).

  Clicks are counted by item vocabulary id; the clicks of ids in the OOV buckets are
  shared evenly among the corpus items in those buckets.
  """
  corpus_ids = corpus_items[fnames.ITEM_ID]
  if power == 0:
    return tf.zeros(tf.shape(corpus_ids), tf.float32)
  rows_per_id = tf.math.bincount(tf.cast(corpus_ids, tf.int32),
                                 minlength=space.item_vocab_size,
                                 maxlength=space.item_vocab_size, dtype=tf.float32)
  per_row = tf.gather(clicks / tf.maximum(rows_per_id, 1.0), corpus_ids)
  return power * tf.math.log(per_row + 1.0)


def sampling_log_offsets(clicks: tf.Tensor, corpus_items: dict,
                         space: features.FeatureSpace,
                         config: configs.TrainingConfig) -> tf.Tensor:
  """log(N q(i)) per item vocabulary id: q is the probability that a negative of a batch
  is item i, N the corpus size. With negatives from q, BCE's optimal logit is
  log(p(i | u) / (k q(i))) + const; training the logit s(u, i) - log(N q(i)) makes s
  estimate the uniform-negative score log(p(i | u) N / k) + const, whatever q.

      q(i) = (r * q_random(i) + m * q_batch(i)) / (r + m)
  with r random negatives from negative_logits' distribution and m in-batch negatives,
  whose distribution is the anchors' item frequency.
  """
  corpus_ids = tf.cast(corpus_items[fnames.ITEM_ID], tf.int32)
  n = tf.cast(tf.shape(corpus_ids)[0], tf.float32)
  logits = negative_logits(clicks, corpus_items, space, config.negative_sampling_power)
  q_random = tf.math.unsorted_segment_sum(tf.nn.softmax(logits), corpus_ids,
                                          space.item_vocab_size)
  q_batch = clicks / tf.maximum(tf.reduce_sum(clicks), 1.0)
  r, m = float(config.negative_ratio), float(config.in_batch_negatives)
  q = (r * q_random + m * q_batch) / max(r + m, 1.0)
  return tf.math.log(tf.maximum(n * q, 1e-6))


def scenario_weights(anchor_examples: tf.data.Dataset, space: features.FeatureSpace,
                     scenario_index: tf.lookup.StaticHashTable, power: float) -> tf.Tensor:
  """Loss weight per scenario index: (max_s n_s / n_s) ** power, mean 1 over anchors."""
  counts = (anchor_examples.map(lambda x: scenario_index.lookup(x[fnames.SCENARIO]))
            .batch(65536)
            .reduce(tf.zeros([len(space.scenarios)], tf.float32),
                    lambda total, ids: total + tf.math.bincount(
                        tf.cast(ids, tf.int32), minlength=len(space.scenarios),
                        maxlength=len(space.scenarios), dtype=tf.float32)))
  raw = tf.where(counts > 0, tf.pow(tf.reduce_max(counts) / tf.maximum(counts, 1.0),
                                    power), 0.0)
  return raw * tf.reduce_sum(counts) / tf.reduce_sum(raw * counts)
