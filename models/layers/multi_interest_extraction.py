"""Multi-interest extraction from the behaviour sequence, read out by the scenario (M5)."""

import tensorflow as tf


class MultiInterestExtraction(tf.keras.layers.Layer):
  """K interests by self-attentive pooling of the clicks; the scenario mixes them.

      a_k,l  = softmax over clicked l of  w_k . tanh(v_l W_1 + b_1)     [B, K, L]
      I_k    = sum_l a_k,l v_l                                          [B, K, dim]
      q_s    = e_s W_q + b_q                                            [B, dim]
      beta_k = softmax over k of  I_k . q_s / sqrt(dim)                 [B, K]
      m      = sum_k beta_k I_k                                         [B, dim]

  The interests are self-attentive multi-interest heads (w_k the k-th column of W_2
  [units, K]); padding positions get no weight, and a user without clicks has I_k = 0,
  m = 0. The readout is a scenario-aware attention over the interests: a two-tower user
  side cannot attend with the target item, so the scenario is the query.
  Shapes: v [B, L, dim], mask [B, L] (true where a click is), e_s [B, d_s] -> m [B, dim];
  W_1 [dim, units], W_2 [units, K], W_q [d_s, dim].
  Call with `layer([sequence, mask, scenario_embedding])`.
  """

  def __init__(self, num_interests: int = 4, units: int = 32, **kwargs):
    super().__init__(**kwargs)
    self.num_interests = num_interests
    self.units = units

  def build(self, input_shape):
    dim, d_s = int(input_shape[0][-1]), int(input_shape[2][-1])
    self.attention_kernel = self.add_weight(name='attention_kernel', shape=(dim, self.units),
                                            initializer='glorot_uniform')  # W_1
    self.attention_bias = self.add_weight(name='attention_bias', shape=(self.units,),
                                          initializer='zeros')  # b_1
    self.interest_kernel = self.add_weight(  # W_2: one column w_k per interest
        name='interest_kernel', shape=(self.units, self.num_interests),
        initializer='glorot_uniform')
    self.query_kernel = self.add_weight(name='query_kernel', shape=(d_s, dim),
                                        initializer='glorot_uniform')  # W_q
    self.query_bias = self.add_weight(name='query_bias', shape=(dim,), initializer='zeros')
    super().build(input_shape)

  def interests(self, sequence: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """I [B, K, dim]."""
    hidden = tf.tanh(tf.matmul(sequence, self.attention_kernel) + self.attention_bias)
    scores = tf.transpose(tf.matmul(hidden, self.interest_kernel), [0, 2, 1])  # [B, K, L]
    clicked = tf.cast(mask, tf.bool)[:, None, :]  # [B, 1, L]
    scores = tf.where(clicked, scores, tf.fill(tf.shape(scores), -1e9))
    weights = tf.nn.softmax(scores, axis=-1) * tf.cast(clicked, sequence.dtype)  # 0 if none
    return tf.matmul(weights, sequence)  # [B, K, dim]

  def interest_weights(self, interests: tf.Tensor,
                       scenario_embedding: tf.Tensor) -> tf.Tensor:
    """beta [B, K]: the scenario's attention over the interests."""
    query = tf.matmul(scenario_embedding, self.query_kernel) + self.query_bias  # [B, dim]
    scores = tf.matmul(interests, query[:, :, None])[:, :, 0]  # [B, K]
    return tf.nn.softmax(scores * interests.shape[-1] ** -0.5, axis=-1)

  def call(self, inputs):
    sequence, mask, scenario_embedding = inputs
    interests = self.interests(sequence, mask)
    beta = self.interest_weights(interests, scenario_embedding)
    return tf.reduce_sum(beta[:, :, None] * interests, axis=1)  # [B, dim]

  def get_config(self):
    config = super().get_config()
    config.update({'num_interests': self.num_interests, 'units': self.units})
    return config
