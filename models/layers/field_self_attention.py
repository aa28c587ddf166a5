"""Multi-head self-attention among feature fields (ICAN's internal attention)."""

import tensorflow as tf


class FieldSelfAttention(tf.keras.layers.Layer):
  """Every field attends to every field, in H heads (no residual, as ICAN uses it).

      [Q | K | V] = E W_qkv + b_qkv                 E [F, dim] -> each [F, H * d_h]
      A_h         = softmax_rows(Q_h K_h^T / sqrt(d_h))       [F, F] per head h
      Y           = [A_1 V_1 | ... | A_H V_H] W_o + b_o        [F, units]

  Q_h, K_h, V_h are the h-th block of d_h = units / H columns. As the GPT-style `attn` of
  the authors' ICAN code, except that the scores are scaled by 1/sqrt(d_h) (their call
  leaves them unscaled).
  Shapes: E [B, F, dim] -> Y [B, F, units]; W_qkv [dim, 3 units], W_o [units, units].
  """

  def __init__(self, units: int, num_heads: int = 2, **kwargs):
    super().__init__(**kwargs)
    if units % num_heads:
      raise ValueError(f'units ({units}) must be a multiple of num_heads ({num_heads})')
    self.units = units
    self.num_heads = num_heads

  def build(self, input_shape):
    dim = int(input_shape[-1])
    self.qkv_kernel = self.add_weight(name='qkv_kernel', shape=(dim, 3 * self.units),
                                      initializer='glorot_uniform')
    self.qkv_bias = self.add_weight(name='qkv_bias', shape=(3 * self.units,),
                                    initializer='zeros')
    self.output_kernel = self.add_weight(name='output_kernel', shape=(self.units, self.units),
                                         initializer='glorot_uniform')
    self.output_bias = self.add_weight(name='output_bias', shape=(self.units,),
                                       initializer='zeros')
    super().build(input_shape)

  def _heads(self, x: tf.Tensor) -> tf.Tensor:
    """[B, F, units] -> [B, H, F, d_h]."""
    num_fields = x.shape[1]
    x = tf.reshape(x, [-1, num_fields, self.num_heads, self.units // self.num_heads])
    return tf.transpose(x, [0, 2, 1, 3])

  def _project(self, fields: tf.Tensor) -> list:
    """Q, K, V, each [B, H, F, d_h]."""
    qkv = tf.matmul(fields, self.qkv_kernel) + self.qkv_bias  # [B, F, 3 units]
    return [self._heads(x) for x in tf.split(qkv, 3, axis=-1)]

  def _weights(self, q: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
    scale = (self.units // self.num_heads) ** -0.5
    return tf.nn.softmax(tf.matmul(q, k, transpose_b=True) * scale, axis=-1)

  def attention(self, fields: tf.Tensor) -> tf.Tensor:
    """A [B, H, F, F]: each head's attention of field i (row) over the fields j."""
    q, k, _ = self._project(fields)
    return self._weights(q, k)

  def call(self, fields):
    num_fields = fields.shape[1]
    q, k, v = self._project(fields)
    heads = tf.matmul(self._weights(q, k), v)  # [B, H, F, d_h]
    merged = tf.reshape(tf.transpose(heads, [0, 2, 1, 3]), [-1, num_fields, self.units])
    return tf.matmul(merged, self.output_kernel) + self.output_bias  # [B, F, units]

  def get_config(self):
    config = super().get_config()
    config.update({'units': self.units, 'num_heads': self.num_heads})
    return config
