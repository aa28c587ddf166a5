"""Vector quantization with a learned codebook and a straight-through gradient (PERSCEN)."""

import tensorflow as tf


class VectorQuantizer(tf.keras.layers.Layer):
  """Replaces each vector by its nearest code of a shared codebook C [K, d].

      j    = argmin_k ||z - c_k||^2
      q    = z + stop_gradient(c_j - z)          value c_j; gradient straight through to z
      loss = mean((stop_gradient(z) - c_j)^2) + beta * mean((z - stop_gradient(c_j))^2)

  The loss (codebook term + commitment term; means over batch and dimensions) is added
  with `add_loss` in training only, so the model's loss is task + VQ loss when it learns
  and the task loss alone when it is evaluated.
  Shapes: z [B, d] -> q [B, d]. `code_index(z)` is j [B].
  """

  def __init__(self, num_codes: int = 16, commitment: float = 0.25, **kwargs):
    super().__init__(**kwargs)
    self.num_codes = num_codes
    self.commitment = commitment

  def build(self, input_shape):
    self.codebook = self.add_weight(name='codebook', shape=(self.num_codes, int(input_shape[-1])),
                                    initializer='glorot_uniform')
    super().build(input_shape)

  def code_index(self, z: tf.Tensor) -> tf.Tensor:
    """j [B]: the nearest code of each vector."""
    distances = (tf.reduce_sum(tf.square(z), axis=1, keepdims=True)
                 - 2.0 * tf.matmul(z, self.codebook, transpose_b=True)
                 + tf.reduce_sum(tf.square(self.codebook), axis=1))  # [B, K]
    return tf.argmin(distances, axis=1)

  def quantization_loss(self, z: tf.Tensor, code: tf.Tensor) -> tf.Tensor:
    """The codebook + commitment loss of z and its codes c_j [B, d]."""
    return (tf.reduce_mean(tf.square(tf.stop_gradient(z) - code))
            + self.commitment * tf.reduce_mean(tf.square(z - tf.stop_gradient(code))))

  def call(self, z, training=None):
    code = tf.gather(self.codebook, self.code_index(z))  # c_j [B, d]
    if training is None:
      training = tf.keras.backend.learning_phase()
    if isinstance(training, int):  # a Python bool (or Keras' 0/1 learning phase)
      if training:
        self.add_loss(self.quantization_loss(z, code))
    else:
      self.add_loss(tf.cast(training, z.dtype) * self.quantization_loss(z, code))
    return z + tf.stop_gradient(code - z)

  def get_config(self):
    config = super().get_config()
    config.update({'num_codes': self.num_codes, 'commitment': self.commitment})
    return config
