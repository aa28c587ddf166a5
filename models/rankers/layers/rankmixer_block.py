"""A RankMixer block (Zhu et al. 2025, section 3.3, eq. 1): the feature-token
self-interaction of MDL (MDL section 3.2.1, eq. 6)."""

import tensorflow as tf

from models.rankers.layers.per_token_ffn import PerTokenFFN
from models.rankers.layers.token_mixing import TokenMixing


class RankMixerBlock(tf.keras.layers.Layer):
  """Token mixing then per-token FFN, each with a residual and a LayerNorm after it.

      S   = LN_1(TokenMixing(X) + X)               [B, T, D]
      out = LN_2(PerTokenFFN(S) + S)               [B, T, D]

  Post-LN, as RankMixer's eq. 1. MDL's eq. 6 (garbled in the paper's text as
  PertokenFFN(LN(TokenMixing(T + T)))) says it follows RankMixer; this is RankMixer's.
  The LayerNorms act on each token's D values. D must be a multiple of T (TokenMixing).
  Shapes: X [B, T, D] -> out [B, T, D].
  """

  def __init__(self, expansion: float = 4, dropout: float = 0.0,
               layer_norm_epsilon: float = 1e-6, **kwargs):
    super().__init__(**kwargs)
    self.expansion = expansion
    self.dropout = dropout
    self.layer_norm_epsilon = layer_norm_epsilon
    self.token_mixing = TokenMixing(name='token_mixing')
    self.mixing_norm = tf.keras.layers.LayerNormalization(epsilon=layer_norm_epsilon,
                                                          name='mixing_norm')
    self.ffn = PerTokenFFN(expansion, dropout=dropout, name='ffn')
    self.ffn_norm = tf.keras.layers.LayerNormalization(epsilon=layer_norm_epsilon,
                                                       name='ffn_norm')

  def call(self, x, training=None):
    s = self.mixing_norm(self.token_mixing(x) + x)  # [B, T, D]
    return self.ffn_norm(self.ffn(s, training=training) + s)  # [B, T, D]

  def get_config(self):
    config = super().get_config()
    config.update({'expansion': self.expansion, 'dropout': self.dropout,
                   'layer_norm_epsilon': self.layer_norm_epsilon})
    return config
