"""Domain-aware attention: scenario or task tokens attend to the feature tokens (MDL
section 3.2.2, eq. 7-8)."""

import tensorflow as tf

from models.rankers.layers.per_token_dense import PerTokenDense


class DomainAwareAttention(tf.keras.layers.Layer):
  """Multi-head cross-attention, queries from the domain tokens, keys and values from the
  feature tokens, every projection per token (MDL's "W_Q, W_K, W_V ... in the form of a
  PerToken FFN"):

      Q = PerTokenDense_Q(T_q)     [B, Q, d]     its own W_Q[q] per query token
      K = PerTokenDense_K(T_f)     [B, N_f, d]   its own W_K[n] per feature token
      V = PerTokenDense_V(T_f)     [B, N_f, d]
      A_h = softmax(Q_h K_h^T / sqrt(d_h))       [B, Q, N_f] per head h, rows sum to 1
      out = [A_1 V_1 | ... | A_H V_H]            [B, Q, d]

  Q_h, K_h, V_h are the h-th block of d_h = d / H columns; d is the width of the query
  tokens. Where the paper is silent: each per-token projection is one linear layer with a
  bias (no hidden layer); the scores are scaled by 1 / sqrt(d_h), the usual multi-head
  scale (eq. 7 writes sqrt(d)); there is no output projection W_O (eq. 7 has none: the
  per-token FFN after it in the MDL block transforms the result).
  Call with `layer([query_tokens, feature_tokens])`; `return_attention_scores=True` also
  returns A [B, H, Q, N_f], and `attention_scores([query_tokens, feature_tokens])` only A.
  """

  def __init__(self, num_heads: int = 1, use_bias: bool = True, **kwargs):
    super().__init__(**kwargs)
    self.num_heads = num_heads
    self.use_bias = use_bias
    self.query = self.key = self.value = None

  def build(self, input_shape):
    query_shape, feature_shape = (tf.TensorShape(s) for s in input_shape)
    width = int(query_shape[-1])
    if width % self.num_heads:
      raise ValueError(f'the query token width d={width} must be a multiple of num_heads='
                       f'{self.num_heads}')
    self.query = PerTokenDense(width, use_bias=self.use_bias, name='query')
    self.key = PerTokenDense(width, use_bias=self.use_bias, name='key')
    self.value = PerTokenDense(width, use_bias=self.use_bias, name='value')
    self.query.build(query_shape)
    self.key.build(feature_shape)
    self.value.build(feature_shape)
    super().build(input_shape)

  def _heads(self, x: tf.Tensor) -> tf.Tensor:
    """[B, N, d] -> [B, H, N, d_h]."""
    num_tokens, width = x.shape[1], x.shape[2]
    x = tf.reshape(x, [-1, num_tokens, self.num_heads, width // self.num_heads])
    return tf.transpose(x, [0, 2, 1, 3])

  def _attend(self, inputs):
    query_tokens, feature_tokens = inputs
    q = self._heads(self.query(query_tokens))  # [B, H, Q, d_h]
    k = self._heads(self.key(feature_tokens))  # [B, H, N_f, d_h]
    v = self._heads(self.value(feature_tokens))  # [B, H, N_f, d_h]
    scale = (q.shape[-1]) ** -0.5
    weights = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) * scale, axis=-1)
    return weights, v  # [B, H, Q, N_f], [B, H, N_f, d_h]

  def attention_scores(self, inputs) -> tf.Tensor:
    """A [B, H, Q, N_f]: each head's attention of query token q over the feature tokens."""
    return self(inputs, return_attention_scores=True)[1]

  def call(self, inputs, return_attention_scores: bool = False):
    weights, v = self._attend(inputs)
    out = tf.transpose(tf.matmul(weights, v), [0, 2, 1, 3])  # [B, Q, H, d_h]
    out = tf.reshape(out, [-1, out.shape[1], out.shape[2] * out.shape[3]])  # [B, Q, d]
    return (out, weights) if return_attention_scores else out

  def get_config(self):
    config = super().get_config()
    config.update({'num_heads': self.num_heads, 'use_bias': self.use_bias})
    return config
