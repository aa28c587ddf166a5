"""Mean or max pooling over a padded sequence, ignoring padding."""

import tensorflow as tf


class MaskedPooling(tf.keras.layers.Layer):
  """Pools [B, L, d] values over L where mask [B, L] is true.

      mean: sum_l mask[l] * v[l] / max(1, sum_l mask[l])
      max:  max over masked positions
  An all-padding row (e.g. a user without history) pools to zeros.

  Call with `layer([values, mask])`; -> [B, d].
  """

  def __init__(self, mode: str = 'mean', **kwargs):
    super().__init__(**kwargs)
    if mode not in ('mean', 'max'):
      raise ValueError(f"MaskedPooling mode must be 'mean' or 'max', got {mode!r}")
    self.mode = mode

  def call(self, inputs):
    values, mask = inputs
    mask = tf.cast(mask, values.dtype)[:, :, None]  # [B, L, 1]
    if self.mode == 'mean':
      return tf.reduce_sum(values * mask, axis=1) / tf.maximum(
          tf.reduce_sum(mask, axis=1), 1.0)
    lowest = tf.fill(tf.shape(values), values.dtype.min)
    pooled = tf.reduce_max(tf.where(mask > 0, values, lowest), axis=1)
    return tf.where(tf.reduce_sum(mask, axis=1) > 0, pooled, tf.zeros_like(pooled))

  def get_config(self):
    config = super().get_config()
    config['mode'] = self.mode
    return config
