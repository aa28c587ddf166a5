"""Cost of the models: parameter counts, FLOPs per example, training step time."""

import time

import numpy as np
import tensorflow as tf

from models import features


def parameter_count(*models: tf.keras.Model) -> int:
  """Number of scalars in the models' variables (trainable and not), each counted once."""
  seen, total = set(), 0
  for model in models:
    for variable in model.variables:
      if id(variable) not in seen:
        seen.add(id(variable))
        total += int(variable.shape.num_elements())
  return total


def flops_per_example(model: tf.keras.Model, names: tuple[str, ...],
                      space: features.FeatureSpace) -> int:
  """Floating-point operations of one inference call on a batch of one example.

  Counted by TensorFlow's profiler on the traced graph (2 per multiply-add; embedding
  lookups and table lookups are not float operations).
  """
  specs = space.tensor_specs(names, batch_size=1)
  concrete = tf.function(lambda inputs: model(inputs, training=False)).get_concrete_function(
      specs)
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options['output'] = 'none'
  profile = tf.compat.v1.profiler.profile(graph=concrete.graph, options=options)
  return int(profile.total_float_ops)


def random_training_batch(space: features.FeatureSpace, anchors: int, negatives: int,
                          seed: int = 0) -> tuple[dict, tf.Tensor]:
  """(features, labels) shaped like a training batch of models/data.py: `anchors` rows of
  random ids and values (about half of each list padding), then `negatives` rows per
  anchor repeating its user features with random items, and features.USER_ROW. For cost
  figures, not quality: the values mean nothing."""
  rng = np.random.default_rng(seed)
  rows = anchors * (1 + negatives)
  vocab = {c.name: c.vocab_size for c in space.user.categorical + space.item.categorical}
  batch = {}
  for name, spec in space.tensor_specs(space.user_tower_features +
                                       space.item_tower_features, rows).items():
    if spec.dtype == tf.string:
      value = rng.choice(list(space.scenarios), size=spec.shape)
    elif spec.dtype == tf.float32:
      value = rng.normal(size=spec.shape).astype(np.float32)
    else:
      value = rng.integers(0, vocab.get(name, space.item_vocab_size), size=spec.shape)
      if len(spec.shape) == 2:
        value = np.where(rng.random(spec.shape) < 0.5, value, features.PADDING_ID)
    if name in space.user_tower_features:  # negatives repeat their anchor's user
      value = np.concatenate([value[:anchors], np.repeat(value[:anchors], negatives, 0)])
    batch[name] = tf.constant(value)
  batch[features.USER_ROW] = tf.constant(np.r_[np.arange(anchors),
                                               np.repeat(np.arange(anchors), negatives)],
                                         tf.int32)
  labels = np.r_[np.ones(anchors), np.zeros(rows - anchors)].astype(np.float32)
  return batch, tf.constant(labels)


def step_seconds(model: tf.keras.Model, batch: dict, labels: tf.Tensor, steps: int) -> float:
  """Mean seconds of a training step (forward, backward, optimizer) of a compiled model
  on one batch, after two steps of tracing and warm-up."""
  dataset = tf.data.Dataset.from_tensors((batch, labels)).repeat()
  model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0)
  started = time.perf_counter()
  model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
  return (time.perf_counter() - started) / steps
