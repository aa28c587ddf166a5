"""The per-token feed-forward network of RankMixer (Zhu et al. 2025, section 3.3.2), used by
MDL for its feature, scenario and task tokens (MDL eq. 6, 12, 15)."""

import tensorflow as tf

from models.rankers.layers.per_token_dense import PerTokenDense


class PerTokenFFN(tf.keras.layers.Layer):
  """A two-layer FFN with its own parameters for each of the T tokens.

      y[:, t] = act(x[:, t] W1[t] + b1[t]) W2[t] + b2[t]          t = 1 .. T

  act is GELU by default (RankMixer's; the exact, erf form of tf.keras 'gelu'), hidden
  width = expansion * d_in (RankMixer's k), output width `units` (default d_in). Dropout,
  when set, acts on the hidden activations during training.
  Shapes: x [B, T, d_in] -> y [B, T, units]; W1 [T, d_in, k d_in], W2 [T, k d_in, units].
  """

  def __init__(self, expansion: float = 4, units: int | None = None, activation='gelu',
               dropout: float = 0.0, **kwargs):
    super().__init__(**kwargs)
    self.expansion = expansion
    self.units = units
    self.activation = tf.keras.activations.get(activation)
    self.dropout = dropout
    self.hidden = None
    self.output_dense = None
    self.hidden_dropout = tf.keras.layers.Dropout(dropout, name='hidden_dropout')

  def build(self, input_shape):
    d_in = int(input_shape[-1])
    hidden_units = int(round(self.expansion * d_in))
    self.hidden = PerTokenDense(hidden_units, activation=self.activation, name='hidden')
    self.output_dense = PerTokenDense(self.units or d_in, name='output_dense')
    super().build(input_shape)

  def call(self, x, training=None):
    h = self.hidden(x)  # [B, T, k d_in]
    return self.output_dense(self.hidden_dropout(h, training=training))  # [B, T, units]

  def get_config(self):
    config = super().get_config()
    config.update({'expansion': self.expansion, 'units': self.units,
                   'activation': tf.keras.activations.serialize(self.activation),
                   'dropout': self.dropout})
    return config
