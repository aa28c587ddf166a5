"""PERSCEN's scenario-aware gated linear unit (progressive scenario adaptive transfer)."""

import tensorflow as tf


class ScenarioAwareGLU(tf.keras.layers.Layer):
  """A layer of the shared path, gated element-wise by the scenario-aware preference.

      y = PReLU(x W + b) * sigmoid(p V + c)        PReLU(t) = max(t, 0) + a * min(t, 0)

  x is the shared (cross-scenario) representation, p the user's scenario-aware
  preference; stacking these layers, each re-reading p, is PERSCEN's progressive transfer:
  an element-wise product in place of a GRU's reset and update gates.
  Shapes: x [B, d_x], p [B, d_p] -> y [B, units]; W [d_x, units], V [d_p, units], a [units].
  Call with `layer([x, preference])`.
  """

  def __init__(self, units: int, **kwargs):
    super().__init__(**kwargs)
    self.units = units

  def build(self, input_shape):
    d_x, d_p = int(input_shape[0][-1]), int(input_shape[1][-1])
    self.kernel = self.add_weight(name='kernel', shape=(d_x, self.units),
                                  initializer='glorot_uniform')
    self.bias = self.add_weight(name='bias', shape=(self.units,), initializer='zeros')
    self.alpha = self.add_weight(name='alpha', shape=(self.units,), initializer='zeros')
    self.gate_kernel = self.add_weight(name='gate_kernel', shape=(d_p, self.units),
                                       initializer='glorot_uniform')
    self.gate_bias = self.add_weight(name='gate_bias', shape=(self.units,), initializer='zeros')
    super().build(input_shape)

  def gate(self, preference: tf.Tensor) -> tf.Tensor:
    """sigmoid(p V + c) [B, units]."""
    return tf.sigmoid(tf.matmul(preference, self.gate_kernel) + self.gate_bias)

  def call(self, inputs):
    x, preference = inputs
    t = tf.matmul(x, self.kernel) + self.bias
    return (tf.nn.relu(t) - self.alpha * tf.nn.relu(-t)) * self.gate(preference)

  def get_config(self):
    config = super().get_config()
    config['units'] = self.units
    return config
