"""tf.Transform preprocessing: raw event features -> model inputs (see models/features.py).

- user and item ids: vocabularies over the training split; ids seen fewer than
  `id_min_frequency` times and ids never seen map to the OOV buckets, so unknown users and
  items at serving time still get a (trained) embedding;
- the behaviour sequence uses the item id vocabulary, so history and candidate items share
  one id space;
- categorical, bucketed-range and multi-valued features: vocabularies with OOV buckets;
- numeric features: sign(x) * log(1 + |x|), then z-score (counts and durations are
  heavy-tailed); the item's clicks per scenario (`scenario_clicks`, when the ingestion
  writes it): log(1 + clicks), one value per served scenario; the item's outcomes
  (`item_outcomes`: exposures and each task's positives): log(1 + n) too;
- the scenario and history scenarios stay raw strings (the model maps them with the
  ingestion's scenario mapping); the label and the ranking tasks' labels pass
  through; so do the timestamp and the raw item id (`raw_item_id`), which only the
  Trainer's point-in-time negatives read (models/item_clicks.py), not the models.

The function is written for TFX's Transform component, which passes `custom_config` with
the dataset spec and the transform config as JSON.
"""

import tensorflow as tf
import tensorflow_transform as tft

from core import config as configs
from core import dataset_spec as ds
from core import feature_names as fnames


def preprocessing_fn(inputs: dict, custom_config: dict) -> dict:
  spec = configs.spec_from_custom_config(custom_config)
  config = configs.from_custom_config(custom_config, configs.TransformConfig)
  oov = config.num_oov_buckets
  outputs = {}
  for id_name in (fnames.USER_ID, fnames.ITEM_ID):
    vocabulary = tft.vocabulary(inputs[id_name], frequency_threshold=config.id_min_frequency,
                                vocab_filename=id_name)
    outputs[id_name] = tft.apply_vocabulary(inputs[id_name], vocabulary,
                                            num_oov_buckets=oov)
    if id_name == fnames.ITEM_ID:
      outputs[fnames.HISTORY_ITEM_ID] = tft.apply_vocabulary(
          inputs[fnames.HISTORY_ITEM_ID], vocabulary, num_oov_buckets=oov)
  for feature in spec.users.features + spec.items.features:
    value = inputs[feature.name]
    if feature.is_numeric:
      outputs[feature.name] = tft.scale_to_z_score(tf.sign(value) * tf.math.log1p(
          tf.abs(value)))
    else:
      outputs[feature.name] = tft.compute_and_apply_vocabulary(
          value, num_oov_buckets=oov, vocab_filename=feature.name)
  for name in fnames.POPULARITY_FEATURES + (fnames.ITEM_OUTCOMES,):
    if name in inputs:
      outputs[name] = tf.sparse.map_values(popularity_transform, inputs[name])
  outputs[fnames.SCENARIO] = inputs[fnames.SCENARIO]
  outputs[fnames.HISTORY_SCENARIO] = inputs[fnames.HISTORY_SCENARIO]
  outputs[fnames.LABEL] = inputs[fnames.LABEL]
  # For the Trainer's point-in-time negatives (models/item_clicks.py): the event's moment
  # and its raw item id. Not model inputs.
  outputs[fnames.TIMESTAMP] = inputs[fnames.TIMESTAMP]
  outputs[fnames.RAW_ITEM_ID] = inputs[fnames.ITEM_ID]
  for task in spec.logs.task_names:  # the rankers' labels pass through too
    outputs[fnames.task_label(task)] = inputs[fnames.task_label(task)]
  return outputs


def popularity_transform(clicks: tf.Tensor) -> tf.Tensor:
  """Raw click counts -> the model's popularity inputs: log(1 + clicks). The Trainer's
  point-in-time negatives (models/item_clicks.py) apply the same function."""
  return tf.math.log1p(clicks)


def vocabulary_sizes(tft_output: tft.TFTransformOutput, spec: ds.DatasetSpec,
                     num_oov_buckets: int) -> dict[str, int]:
  """Feature name -> number of ids (vocabulary + OOV buckets), for FeatureSpace.build."""
  return {name: tft_output.vocabulary_size_by_name(name) + num_oov_buckets
          for name in vocabulary_names(spec)}


def vocabulary_names(spec: ds.DatasetSpec) -> list[str]:
  """The features with a vocabulary: user and item ids, every categorical field."""
  return [fnames.USER_ID, fnames.ITEM_ID] + [f.name for f in spec.users.features +
                                             spec.items.features if not f.is_numeric]
