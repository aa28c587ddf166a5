"""Parameter counts and FLOPs per example of the models."""

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
