"""RankMixer's multi-head token mixing (Zhu et al. 2025, section 3.3.1), the feature-token
self-interaction of MDL (MDL section 3.2.1, eq. 6)."""

import tensorflow as tf


class TokenMixing(tf.keras.layers.Layer):
  """A parameter-free reshuffle of T tokens of width D into T tokens of width D.

  Each token x_t splits into H = T heads of width w = D / T, x_t = [x_t^1 | ... | x_t^H];
  output token h gathers head h of every token:

      s^h = [x_1^h | x_2^h | ... | x_T^h]           h = 1 .. H (= T)
      i.e.  s[b, h, t w + j] = x[b, t, h w + j]     0 <= j < w

  H = T (as RankMixer), so the output keeps the shape [T, D]; D must be a multiple of T.
  Computed as reshape [B, T, H, w] -> transpose [B, H, T, w] -> reshape [B, H, D].
  Shapes: x [B, T, D] -> s [B, T, D].
  """

  def build(self, input_shape):
    input_shape = tf.TensorShape(input_shape)
    if input_shape.rank != 3 or input_shape[1] is None or input_shape[2] is None:
      raise ValueError(f'TokenMixing takes tokens [B, T, D] with T and D known; got shape '
                       f'{input_shape}')
    num_tokens, width = int(input_shape[1]), int(input_shape[2])
    if width % num_tokens:
      raise ValueError(
          f'TokenMixing splits each token into H = T heads: the token width D={width} must '
          f'be a multiple of the number of tokens T={num_tokens}')
    super().build(input_shape)

  def call(self, x):
    num_tokens, width = x.shape[1], x.shape[2]
    heads = tf.reshape(x, [-1, num_tokens, num_tokens, width // num_tokens])  # [B, T, H, w]
    heads = tf.transpose(heads, [0, 2, 1, 3])  # [B, H, T, w]
    return tf.reshape(heads, [-1, num_tokens, width])  # [B, H = T, D]

  def get_config(self):
    return super().get_config()
