"""A bank of feed-forward experts shared by all tokens: the dense and sparse experts of
MTmixAtt's MTmixAttBlock (MTmixAtt, Meituan 2025; known here only through its summary)."""

import tensorflow as tf

from models.rankers.layers.per_token_dense import per_token_initializer


class FFNExperts(tf.keras.layers.Layer):
  """E two-layer FFNs, each applied to every token (weights shared across tokens):

      E_e(x) = act(x W1[e] + b1[e]) W2[e] + b2[e]          e = 1 .. E

  act is GELU (exact) by default, hidden width expansion * d. Every expert runs on every
  token (the callers weight them; a sparse router's zero weights leave the output of an
  expert it did not pick out, but save no computation).
  Shapes: x [B, T, d] -> [B, T, E, d]; W1 [E, d, k d], W2 [E, k d, d].
  """

  def __init__(self, num_experts: int, expansion: float = 2, activation='gelu',
               kernel_initializer='glorot_uniform', **kwargs):
    super().__init__(**kwargs)
    self.num_experts = num_experts
    self.expansion = expansion
    self.activation = tf.keras.activations.get(activation)
    self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)

  def build(self, input_shape):
    width = int(input_shape[-1])
    hidden = int(round(self.expansion * width))
    init = per_token_initializer(self.kernel_initializer, self.num_experts)  # per expert
    self.kernel_1 = self.add_weight(name='kernel_1', shape=(self.num_experts, width, hidden),
                                    initializer=init)
    self.bias_1 = self.add_weight(name='bias_1', shape=(self.num_experts, hidden),
                                  initializer='zeros')
    self.kernel_2 = self.add_weight(name='kernel_2', shape=(self.num_experts, hidden, width),
                                    initializer=init)
    self.bias_2 = self.add_weight(name='bias_2', shape=(self.num_experts, width),
                                  initializer='zeros')
    super().build(input_shape)

  def call(self, x):
    num_tokens, width = x.shape[1], x.shape[2]
    flat = tf.reshape(x, [1, -1, width])  # [1, B T, d]
    hidden = self.activation(tf.matmul(flat, self.kernel_1) + self.bias_1[:, None, :])
    out = tf.matmul(hidden, self.kernel_2) + self.bias_2[:, None, :]  # [E, B T, d]
    out = tf.reshape(out, [self.num_experts, -1, num_tokens, width])  # [E, B, T, d]
    return tf.transpose(out, [1, 2, 0, 3])  # [B, T, E, d]

  def get_config(self):
    config = super().get_config()
    config.update({
        'num_experts': self.num_experts, 'expansion': self.expansion,
        'activation': tf.keras.activations.serialize(self.activation),
        'kernel_initializer': tf.keras.initializers.serialize(self.kernel_initializer),
    })
    return config
