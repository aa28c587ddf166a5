"""Scenario-Adaptive Projection (SAP), section 3.3 of the DSMOE paper."""

import tensorflow as tf


class ScenarioAdaptiveProjection(tf.keras.layers.Layer):
  """A linear layer whose weights get a low-rank, scenario-generated correction.

      y = x W_shared + x dW(e_s) + bias,   dW(e_s) = sum_r b_s[r] A[:, r] B[r, :]
      b_s = e_s W_b + c_b                  (Linear(e_s), one coefficient per rank)

  Computed as  y = x W_shared + ((x A) * b_s) B + bias,  never materialising a
  d_in x d_out matrix per example: the extra cost over a Dense layer is
  R * (d_in + d_out + d_s) multiply-adds per example, with R << d_in, d_out.

  Shapes: x [B, d_in], e_s [B, d_s] -> y [B, units]; A [d_in, R], B [R, units].

  Call with `layer([x, scenario_embedding])`.
  """

  def __init__(self, units: int, rank: int = 4, use_bias: bool = True,
               kernel_initializer='glorot_uniform', low_rank_initializer='glorot_uniform',
               **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.rank = rank
    self.use_bias = use_bias
    self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
    self.low_rank_initializer = tf.keras.initializers.get(low_rank_initializer)

  def build(self, input_shape):
    x_shape, e_shape = input_shape
    d_in, d_s = int(x_shape[-1]), int(e_shape[-1])
    fresh = lambda init: init.__class__.from_config(init.get_config())  # distinct draws
    self.shared_kernel = self.add_weight(  # W_shared [d_in, units]
        name='shared_kernel', shape=(d_in, self.units),
        initializer=fresh(self.kernel_initializer))
    self.low_rank_a = self.add_weight(  # A [d_in, R]
        name='low_rank_a', shape=(d_in, self.rank),
        initializer=fresh(self.low_rank_initializer))
    self.low_rank_b = self.add_weight(  # B [R, units]
        name='low_rank_b', shape=(self.rank, self.units),
        initializer=fresh(self.low_rank_initializer))
    self.scenario_kernel = self.add_weight(  # W_b [d_s, R]
        name='scenario_kernel', shape=(d_s, self.rank),
        initializer=fresh(self.kernel_initializer))
    self.scenario_bias = self.add_weight(  # c_b [R]
        name='scenario_bias', shape=(self.rank,), initializer='zeros')
    self.bias = (self.add_weight(name='bias', shape=(self.units,), initializer='zeros')
                 if self.use_bias else None)
    super().build(input_shape)

  def scenario_coefficients(self, scenario_embedding: tf.Tensor) -> tf.Tensor:
    """b_s [B, R]: the scenario's weights of the R rank-one corrections."""
    return tf.matmul(scenario_embedding, self.scenario_kernel) + self.scenario_bias

  def call(self, inputs):
    x, scenario_embedding = inputs
    b_s = self.scenario_coefficients(scenario_embedding)  # [B, R]
    low_rank = tf.matmul(tf.matmul(x, self.low_rank_a) * b_s, self.low_rank_b)  # [B, units]
    y = tf.matmul(x, self.shared_kernel) + low_rank
    if self.bias is not None:
      y = y + self.bias
    return y

  def get_config(self):
    config = super().get_config()
    config.update({
        'units': self.units, 'rank': self.rank, 'use_bias': self.use_bias,
        'kernel_initializer': tf.keras.initializers.serialize(self.kernel_initializer),
        'low_rank_initializer': tf.keras.initializers.serialize(self.low_rank_initializer),
    })
    return config
