"""A Dense layer per token: RankMixer's per-token parameters (Zhu et al. 2025, section 3.3.2)
and MDL's per-token Q, K, V projections (MDL section 3.2.2, eq. 7-8)."""

import tensorflow as tf


def per_token_initializer(initializer, num_tokens: int):
  """An initializer of a [T, d_in, units] kernel drawing each token's [d_in, units] slice
  by its own call (a fresh instance each: distinct draws), so that the fans, hence the
  scale, are those of one token's Dense layer, not of T stacked ones."""
  def init(shape, dtype=None, **kwargs):
    del kwargs
    fresh = lambda: initializer.__class__.from_config(initializer.get_config())
    return tf.stack([fresh()(tuple(shape[1:]), dtype=dtype) for _ in range(num_tokens)])
  return init


class PerTokenDense(tf.keras.layers.Layer):
  """A Dense layer with its own kernel and bias for each of the T tokens.

      y[:, t] = activation(x[:, t] W[t] + b[t])          t = 1 .. T

  That is einsum('btd,tde->bte', x, W) + b, computed as a batched matmul over tokens
  ([T, B, d_in] x [T, d_in, units]) so that TensorFlow's FLOPs profiler counts it (it
  counts no einsum). The number of tokens T is read from the input at build time.
  Shapes: x [B, T, d_in] -> y [B, T, units]; W [T, d_in, units], b [T, units].
  """

  def __init__(self, units: int, activation=None, use_bias: bool = True,
               kernel_initializer='glorot_uniform', bias_initializer='zeros', **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.activation = tf.keras.activations.get(activation)
    self.use_bias = use_bias
    self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
    self.bias_initializer = tf.keras.initializers.get(bias_initializer)

  def build(self, input_shape):
    input_shape = tf.TensorShape(input_shape)
    if input_shape.rank != 3 or input_shape[1] is None or input_shape[2] is None:
      raise ValueError(f'{self.__class__.__name__} takes tokens [B, T, d_in] with T and d_in '
                       f'known; got shape {input_shape}')
    num_tokens, d_in = int(input_shape[1]), int(input_shape[2])
    self.kernel = self.add_weight(  # W [T, d_in, units]
        name='kernel', shape=(num_tokens, d_in, self.units),
        initializer=per_token_initializer(self.kernel_initializer, num_tokens))
    self.bias = (self.add_weight(  # b [T, units]
        name='bias', shape=(num_tokens, self.units), initializer=self.bias_initializer)
                 if self.use_bias else None)
    super().build(input_shape)

  def call(self, x):
    y = tf.matmul(tf.transpose(x, [1, 0, 2]), self.kernel)  # [T, B, units]
    y = tf.transpose(y, [1, 0, 2])  # [B, T, units]
    if self.bias is not None:
      y = y + self.bias
    return self.activation(y)

  def get_config(self):
    config = super().get_config()
    config.update({
        'units': self.units, 'activation': tf.keras.activations.serialize(self.activation),
        'use_bias': self.use_bias,
        'kernel_initializer': tf.keras.initializers.serialize(self.kernel_initializer),
        'bias_initializer': tf.keras.initializers.serialize(self.bias_initializer),
    })
    return config
