"""MTmixAtt's AutoToken: features grouped into tokens by a learned soft assignment instead
of hand-made groups (MTmixAtt, Meituan 2025; known here only through its summary)."""

import tensorflow as tf

from models.rankers.layers.feature_tokenizer import FeatureTokenizer


class AutoToken(tf.keras.layers.Layer):
  """N tokens of width d, each a learned soft mixture of the F projected features.

      p_f     = e_f W_f + b_f                       [B, d]     f = 1 .. F (own W_f each)
      a[f, :] = softmax(L[f, :] / tau)              [N]        rows of a sum to 1
      token_n = sum_f a[f, n] p_f                   [B, d]     n = 1 .. N

  The MTmixAtt paper is known here only through its summary ("automatically clusters
  heterogeneous features into semantically coherent tokens"); this form is our choice:
  each feature spreads over the tokens by a softmax over N of a learnable logit row
  L[f] of L [F, N] (a soft cluster assignment, independent of the example), temperature
  tau (lower: closer to a hard clustering). L starts as N(0, 1) draws, so that the
  tokens differ from the start. `assignment()` is a [F, N], `hard_assignment()` the
  argmax token of each feature [F].
  Inputs: as FeatureTokenizer (a list or dict of [B, d_f] embeddings, or [B, F, d_e]).
  Shapes: -> tokens [B, N, d].
  """

  def __init__(self, num_tokens: int, units: int, temperature: float = 1.0,
               assignment_initializer=None, **kwargs):
    super().__init__(**kwargs)
    if temperature <= 0:
      raise ValueError(f'temperature must be positive; got {temperature}')
    self.num_tokens = num_tokens
    self.units = units
    self.temperature = temperature
    self.assignment_initializer = tf.keras.initializers.get(
        assignment_initializer or tf.keras.initializers.RandomNormal(stddev=1.0))
    self.projection = FeatureTokenizer(units, name='projection')

  def build(self, input_shape):
    self.projection.build(input_shape)
    num_features = len(self.projection.kernels)
    self.assignment_logits = self.add_weight(  # L [F, N]
        name='assignment_logits', shape=(num_features, self.num_tokens),
        initializer=self.assignment_initializer)
    super().build(input_shape)

  def assignment(self) -> tf.Tensor:
    """a [F, N]: the share of feature f in token n; each row sums to 1."""
    return tf.nn.softmax(self.assignment_logits / self.temperature, axis=-1)

  def hard_assignment(self) -> tf.Tensor:
    """[F] int: the token of each feature's largest share."""
    return tf.argmax(self.assignment_logits, axis=-1, output_type=tf.int32)

  def call(self, inputs):
    projected = self.projection(inputs)  # [B, F, d]
    # token_n = sum_f a[f, n] p_f: [N, F] x [B, F, d] -> [B, N, d]
    return tf.matmul(tf.transpose(self.assignment()), projected)

  def get_config(self):
    config = super().get_config()
    config.update({
        'num_tokens': self.num_tokens, 'units': self.units, 'temperature': self.temperature,
        'assignment_initializer': tf.keras.initializers.serialize(
            self.assignment_initializer),
    })
    return config
