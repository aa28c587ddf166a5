"""Contextual attention of ICAN (Xie et al., IJCAI 2020): fields weighted by the scenario."""

from typing import Sequence

import tensorflow as tf


class ContextualFieldAttention(tf.keras.layers.Layer):
  """Weights each feature field by its relevance to the context (ICAN's channel; here e_s).

      x_i     = [c; e_i; e_i - c; e_i * c]                          [4 dim]
      h_i     = tanh(... tanh(x_i W_1 + b_1) ... W_n + b_n)         units[-1]
      s_i     = tanh(h_i w + b)                                     a score in (-1, 1)
      alpha_i = exp(s_i) / sum_j exp(s_j)                           softmax over the F fields
      y_i     = alpha_i e_i

  As the authors' code (github.com/zhijieqiu/ICAN, `context_attention`) computes it, with
  its attention MLP (attention_size, 32, 1) all tanh; `units` sets the hidden widths.
  Shapes: fields e [B, F, dim], context c [B, dim] -> y [B, F, dim]; W_1 [4 dim, units[0]],
  w [units[-1], 1].
  Call with `layer([fields, context])`; `field_weights([fields, context])` is alpha [B, F].
  """

  def __init__(self, units: Sequence[int] = (32, 32), **kwargs):
    super().__init__(**kwargs)
    self.units = tuple(units)

  def build(self, input_shape):
    dim = int(input_shape[0][-1])
    widths = (4 * dim,) + self.units
    self.hidden_kernels = [
        self.add_weight(name=f'kernel_{i}', shape=(n_in, n_out), initializer='glorot_uniform')
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:]))]
    self.hidden_biases = [
        self.add_weight(name=f'bias_{i}', shape=(n_out,), initializer='zeros')
        for i, n_out in enumerate(self.units)]
    self.score_kernel = self.add_weight(name='score_kernel', shape=(widths[-1], 1),
                                        initializer='glorot_uniform')
    self.score_bias = self.add_weight(name='score_bias', shape=(1,), initializer='zeros')
    super().build(input_shape)

  def field_weights(self, inputs) -> tf.Tensor:
    """alpha [B, F]: the softmax over fields of the context scores."""
    fields, context = inputs
    context = tf.broadcast_to(context[:, None, :], tf.shape(fields))  # [B, F, dim]
    h = tf.concat([context, fields, fields - context, fields * context], axis=-1)
    for kernel, bias in zip(self.hidden_kernels, self.hidden_biases):
      h = tf.tanh(tf.matmul(h, kernel) + bias)  # [B, F, units_i]
    scores = tf.tanh(tf.matmul(h, self.score_kernel) + self.score_bias)[:, :, 0]  # [B, F]
    return tf.nn.softmax(scores, axis=1)

  def call(self, inputs):
    return inputs[0] * self.field_weights(inputs)[:, :, None]

  def get_config(self):
    config = super().get_config()
    config['units'] = self.units
    return config
