"""PERSCEN's user-specific feature graph and the lightweight GNN over it."""

import tensorflow as tf


class UserFeatureGraph(tf.keras.layers.Layer):
  """Feature interactions over a graph of the user's fields generated for each user.

  Field-wise graph generator (PERSCEN section 4.2, after EmerG's generator): row i of the
  user's adjacency comes from the user's own field embeddings and field i's code,
      G[i, :] = relu(x W_1 + c_i + b_1) W_2 + b_2      x = [e_1; ..; e_F] [F dim], c_i [hidden]
      P       = softmax over each row of G             (normalised)
      S       = (P + P^T) / 2                          (symmetric)
      A^(1)   = D^-1/2 S D^-1/2,  D = diag(row sums of S)
      A^(l)   = A^(l-1) A^(1)                          l = 2 .. L, higher-order adjacency
  (c_i is EmerG's one-hot field input times its first-layer weights.)
  Lightweight GNN (EmerG's GNN layer: products, no message passing):
      h^(0) = E
      h^(l) = act_l(A^(l) E W^(l)) * h^(l-1)           act = LeakyReLU(0.01), none at l = L
      H     = sum over l = 0 .. L of h^(l)
  Shapes: E [B, F, dim] -> H [B, F, dim]; G, A^(l) [B, F, F] (one graph per user);
  W_1 [F dim, hidden], codes c [F, hidden], W_2 [hidden, F], W^(l) [dim, dim].
  `adjacency(E)` gives the list of A^(l).
  """

  def __init__(self, num_layers: int = 2, hidden: int = 16, **kwargs):
    super().__init__(**kwargs)
    self.num_layers = num_layers
    self.hidden = hidden

  def build(self, input_shape):
    num_fields, dim = int(input_shape[1]), int(input_shape[2])
    self.generator_kernel = self.add_weight(  # W_1
        name='generator_kernel', shape=(num_fields * dim, self.hidden),
        initializer='glorot_uniform')
    self.field_codes = self.add_weight(name='field_codes', shape=(num_fields, self.hidden),
                                       initializer='glorot_uniform')  # c_i
    self.generator_bias = self.add_weight(name='generator_bias', shape=(self.hidden,),
                                          initializer='zeros')  # b_1
    self.row_kernel = self.add_weight(name='row_kernel', shape=(self.hidden, num_fields),
                                      initializer='glorot_uniform')  # W_2
    self.row_bias = self.add_weight(name='row_bias', shape=(num_fields,),
                                    initializer='zeros')  # b_2
    self.layer_kernels = [  # W^(l)
        self.add_weight(name=f'layer_kernel_{l}', shape=(dim, dim), initializer='glorot_uniform')
        for l in range(1, self.num_layers + 1)]
    super().build(input_shape)

  def adjacency(self, fields: tf.Tensor) -> list:
    """[A^(1), .., A^(L)], each [B, F, F]."""
    num_fields, dim = fields.shape[1], fields.shape[2]
    x = tf.reshape(fields, [-1, num_fields * dim])
    shared = tf.matmul(x, self.generator_kernel) + self.generator_bias  # [B, hidden]
    hidden = tf.nn.relu(shared[:, None, :] + self.field_codes)  # [B, F, hidden]
    rows = tf.nn.softmax(tf.matmul(hidden, self.row_kernel) + self.row_bias, axis=-1)
    symmetric = (rows + tf.transpose(rows, [0, 2, 1])) / 2.0  # [B, F, F]
    scale = tf.math.rsqrt(tf.reduce_sum(symmetric, axis=2))  # D^-1/2 [B, F]; rows sum > 0
    first = symmetric * scale[:, :, None] * scale[:, None, :]
    graphs = [first]
    for _ in range(1, self.num_layers):
      graphs.append(tf.matmul(graphs[-1], first))
    return graphs

  def call(self, fields):
    h = total = fields
    for l, (graph, kernel) in enumerate(zip(self.adjacency(fields), self.layer_kernels)):
      a = tf.matmul(graph, tf.matmul(fields, kernel))  # A^(l) E W^(l) [B, F, dim]
      if l < self.num_layers - 1:
        a = tf.nn.leaky_relu(a, alpha=0.01)
      h = a * h
      total = total + h
    return total

  def get_config(self):
    config = super().get_config()
    config.update({'num_layers': self.num_layers, 'hidden': self.hidden})
    return config
