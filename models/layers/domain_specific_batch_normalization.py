"""Domain-Specific Batch Normalization (DSBN): the DSMOE paper's name; its "domains" are
this project's scenarios."""

import tensorflow as tf


class DomainSpecificBatchNormalization(tf.keras.layers.Layer):
  """Batch normalization with its own gamma, beta and moving statistics per scenario.

  Training: each example is normalised with the mean and variance of the examples of its
  own scenario in the batch, and only the moving statistics of scenarios present in the
  batch move (moving = momentum * moving + (1 - momentum) * batch statistic).
  Inference: each example is normalised with its own scenario's moving statistics.

      y = gamma[d] * (x - mean[d]) / sqrt(var[d] + epsilon) + beta[d]

  Shapes: x [B, C], scenario index d [B] (int, 0 .. num_scenarios-1) -> y [B, C];
  gamma, beta, moving_mean, moving_variance [num_scenarios, C].

  Call with `layer([x, scenario_index], training=...)`.
  """

  def __init__(self, num_scenarios: int, momentum: float = 0.99, epsilon: float = 1e-3,
               **kwargs):
    super().__init__(**kwargs)
    self.num_scenarios = num_scenarios
    self.momentum = momentum
    self.epsilon = epsilon

  def build(self, input_shape):
    channels = int(input_shape[0][-1])
    shape = (self.num_scenarios, channels)
    self.gamma = self.add_weight(name='gamma', shape=shape, initializer='ones')
    self.beta = self.add_weight(name='beta', shape=shape, initializer='zeros')
    # MEAN: under a tf.distribute strategy each replica's update is averaged over the
    # replicas, so every replica (and worker) keeps the same moving statistics; without
    # an aggregation each would keep its own, and a save would take the chief's alone.
    self.moving_mean = self.add_weight(name='moving_mean', shape=shape, initializer='zeros',
                                       trainable=False,
                                       aggregation=tf.VariableAggregation.MEAN)
    self.moving_variance = self.add_weight(name='moving_variance', shape=shape,
                                           initializer='ones', trainable=False,
                                           aggregation=tf.VariableAggregation.MEAN)
    super().build(input_shape)

  def call(self, inputs, training=None):
    x, scenario = inputs
    scenario = tf.cast(tf.reshape(scenario, [-1]), tf.int32)
    if training is None:
      training = tf.keras.backend.learning_phase()
    if isinstance(training, bool):
      mean, variance = (self._batch_statistics(x, scenario) if training else
                        (self.moving_mean, self.moving_variance))
    else:
      mean, variance = tf.cond(tf.cast(training, tf.bool),
                               lambda: self._batch_statistics(x, scenario),
                               lambda: (tf.identity(self.moving_mean),
                                        tf.identity(self.moving_variance)))
    inverse = tf.math.rsqrt(tf.gather(variance, scenario) + self.epsilon)
    return ((x - tf.gather(mean, scenario)) * inverse * tf.gather(self.gamma, scenario)
            + tf.gather(self.beta, scenario))

  def _batch_statistics(self, x, scenario):
    """Per-scenario batch mean and variance [S, C]; moves present scenarios' moving stats."""
    counts = tf.math.unsorted_segment_sum(tf.ones_like(scenario, x.dtype), scenario,
                                          self.num_scenarios)[:, None]  # [S, 1]
    present = counts > 0
    safe_counts = tf.maximum(counts, 1.0)
    mean = tf.math.unsorted_segment_sum(x, scenario, self.num_scenarios) / safe_counts
    centered = x - tf.gather(mean, scenario)
    variance = tf.math.unsorted_segment_sum(tf.square(centered), scenario,
                                            self.num_scenarios) / safe_counts
    decay = 1.0 - self.momentum
    self.moving_mean.assign(tf.where(
        present, self.moving_mean - decay * (self.moving_mean - mean), self.moving_mean))
    self.moving_variance.assign(tf.where(
        present, self.moving_variance - decay * (self.moving_variance - variance),
        self.moving_variance))
    return mean, variance

  def get_config(self):
    config = super().get_config()
    config.update({'num_scenarios': self.num_scenarios, 'momentum': self.momentum,
                   'epsilon': self.epsilon})
    return config
