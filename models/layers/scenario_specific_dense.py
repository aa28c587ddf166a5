"""A Dense layer with its own kernel and bias per scenario (for the ADIN and SASS baselines)."""

import tensorflow as tf


class ScenarioSpecificDense(tf.keras.layers.Layer):
  """y = x W[s] + b[s], with W [S, d_in, units] and b [S, units] chosen by scenario s.

  Computed as all S projections of x in one matmul, keeping each example's own: S times
  the work of a Dense layer, in static shapes (so the FLOPs profiler counts it; it does not
  count an einsum). Fine for the handful of
  scenarios of the baselines; for hundreds of scenarios partition the batch instead.
  Shapes: x [B, d_in], scenario index [B] -> y [B, units].
  Call with `layer([x, scenario_index])`.
  """

  def __init__(self, units: int, num_scenarios: int, activation=None, **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.num_scenarios = num_scenarios
    self.activation = tf.keras.activations.get(activation)

  def build(self, input_shape):
    d_in = int(input_shape[0][-1])
    self.kernel = self.add_weight(name='kernel',
                                  shape=(self.num_scenarios, d_in, self.units),
                                  initializer='glorot_uniform')
    self.bias = self.add_weight(name='bias', shape=(self.num_scenarios, self.units),
                                initializer='zeros')
    super().build(input_shape)

  def call(self, inputs):
    x, scenario = inputs
    scenario = tf.cast(tf.reshape(scenario, [-1]), tf.int32)
    d_in = self.kernel.shape[1]
    kernels = tf.reshape(tf.transpose(self.kernel, [1, 0, 2]), [d_in, -1])  # [d_in, S*units]
    every = tf.reshape(tf.matmul(x, kernels), [-1, self.num_scenarios, self.units])
    every += self.bias  # [B, S, units]
    return self.activation(tf.gather(every, scenario, batch_dims=1))

  def get_config(self):
    config = super().get_config()
    config.update({'units': self.units, 'num_scenarios': self.num_scenarios,
                   'activation': tf.keras.activations.serialize(self.activation)})
    return config
