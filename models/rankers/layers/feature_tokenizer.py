"""Semantic feature tokenization: one token per group of features (MDL section 3.1.1,
eq. 3; RankMixer section 3.2)."""

import tensorflow as tf


def as_group_list(inputs) -> list:
  """The groups of a list/tuple, of a dict (in sorted key order), or of a [B, G, d] tensor
  (or the same structures of shapes)."""
  if isinstance(inputs, dict):
    return [inputs[key] for key in sorted(inputs)]
  if isinstance(inputs, (list, tuple)) and not isinstance(inputs, tf.TensorShape):
    if inputs and all(isinstance(v, (int, type(None))) for v in inputs):  # one shape
      inputs = tf.TensorShape(inputs)
    else:
      return list(inputs)
  if isinstance(inputs, tf.TensorShape):
    if inputs.rank != 3 or inputs[1] is None:
      raise ValueError(f'one tensor of groups must be [B, G, d] with G known; got {inputs}')
    return [tf.TensorShape([inputs[0], inputs[2]])] * int(inputs[1])
  if inputs.shape.rank != 3:
    raise ValueError(f'one tensor of groups must be [B, G, d]; got shape {inputs.shape}')
  return tf.unstack(inputs, axis=1)


class FeatureTokenizer(tf.keras.layers.Layer):
  """N_f feature tokens of width d, each a linear projection of one group's embeddings.

      t_j = activation(e_j W_j + b_j)      j = 1 .. N_f        (eq. 3, t_j = Proj(e_j))
      T_f = [t_1; ...; t_{N_f}]

  e_j is the concatenation of the embeddings of the features of group j (groups chosen
  by hand, by meaning: MDL follows RankMixer). Each group has its own W_j [d_j, d], so the
  groups may differ in width. The activation is None (a linear projection) by default.
  Inputs: a list of [B, d_j] tensors, one per group; a dict of them (taken in sorted key
  order); or one [B, N_f, d_e] tensor (groups of equal width).
  Shapes: -> T_f [B, N_f, d].
  """

  def __init__(self, units: int, activation=None, kernel_initializer='glorot_uniform',
               **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.activation = tf.keras.activations.get(activation)
    self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)

  def build(self, input_shape):
    shapes = as_group_list(input_shape)
    fresh = lambda init: init.__class__.from_config(init.get_config())  # distinct draws
    self.kernels, self.biases = [], []
    for j, shape in enumerate(shapes):
      d_j = int(tf.TensorShape(shape)[-1])
      self.kernels.append(self.add_weight(  # W_j [d_j, d]
          name=f'kernel_{j}', shape=(d_j, self.units),
          initializer=fresh(self.kernel_initializer)))
      self.biases.append(self.add_weight(  # b_j [d]
          name=f'bias_{j}', shape=(self.units,), initializer='zeros'))
    super().build(input_shape)

  def call(self, inputs):
    groups = as_group_list(inputs)
    if len(groups) != len(self.kernels):
      raise ValueError(f'{self.name} was built for {len(self.kernels)} groups; got '
                       f'{len(groups)}')
    tokens = [tf.matmul(e, w) + b for e, w, b in zip(groups, self.kernels, self.biases)]
    return self.activation(tf.stack(tokens, axis=1))  # [B, N_f, d]

  def get_config(self):
    config = super().get_config()
    config.update({
        'units': self.units, 'activation': tf.keras.activations.serialize(self.activation),
        'kernel_initializer': tf.keras.initializers.serialize(self.kernel_initializer),
    })
    return config
