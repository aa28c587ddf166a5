"""DIN's local activation unit (Zhou et al. 2018, "Deep Interest Network", section 4.3):
the candidate item attends over the user's behaviour sequence.

    w_l = MLP([v_l ; q ; v_l - q ; v_l * q])      scalar per position, 0 where padding
    h   = sum_l w_l v_l                            [B, e]

q [B, e] is the candidate's embedding, v [B, L, e] the sequence's, mask [B, L] true where
a click is. As in DIN the weights are not normalised by a softmax, so h keeps the
intensity of the user's interest in the candidate (many related clicks give a larger h);
the MLP's hidden layers use PReLU (DIN's Dice is PReLU with a data-dependent rectifier
point; PReLU is its fixed-point case). A user without history gets h = 0.
"""

from typing import Sequence

import tensorflow as tf


class TargetAttention(tf.keras.layers.Layer):
  """Call with `layer([q [B, e], v [B, L, e], mask [B, L]])` -> h [B, e]."""

  def __init__(self, hidden_units: Sequence[int] = (36,), **kwargs):
    super().__init__(**kwargs)
    self.hidden_units = tuple(hidden_units)
    layers = []
    for i, n in enumerate(self.hidden_units):
      layers += [tf.keras.layers.Dense(n, name=f'dense_{i}'),
                 tf.keras.layers.PReLU(shared_axes=[1], name=f'prelu_{i}')]  # one per unit
    layers.append(tf.keras.layers.Dense(1, name='weight'))
    self.unit = tf.keras.Sequential(layers, name='activation_unit')

  def attention_weights(self, inputs) -> tf.Tensor:
    """w [B, L] (0 at padding)."""
    query, values, mask = inputs
    query = tf.broadcast_to(query[:, None, :], tf.shape(values))  # [B, L, e]
    joint = tf.concat([values, query, values - query, values * query], axis=-1)  # [B, L, 4e]
    weights = tf.squeeze(self.unit(joint), axis=-1)  # [B, L]
    return weights * tf.cast(mask, weights.dtype)

  def call(self, inputs):
    _, values, _ = inputs
    weights = self.attention_weights(inputs)  # [B, L]
    return tf.reduce_sum(weights[:, :, None] * values, axis=1)  # [B, e]

  def get_config(self):
    config = super().get_config()
    config['hidden_units'] = list(self.hidden_units)
    return config
