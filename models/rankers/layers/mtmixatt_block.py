"""MTmixAtt's MTmixAttBlock: token mixing by a learnable matrix, shared dense experts and
scenario-aware sparse experts (MTmixAtt, Meituan 2025; known here only through its
summary)."""

import tensorflow as tf

from models.rankers.layers.ffn_experts import FFNExperts


class MTmixAttBlock(tf.keras.layers.Layer):
  """A learned mixing of the T tokens, then dense and scenario-routed sparse experts:

      A      = softmax_rows(M)  (softmax_mixing)  or  M           [T, T], M learnable
      H      = LN_1(X + A X)           (A X)[b, t] = sum_u A[t, u] X[b, u]   [B, T, d]
      D      = (1 / E_d) sum_e Dense_e(H)                         [B, T, d]
      z[b,t] = R[s_b] + H[b, t] W_r                               [E_s] router logits
      p[b,t] = softmax(z[b, t]) over all E_s experts
      g[b,t] = p[b,t] on its top-k experts, 0 elsewhere           [E_s]
      S      = sum_e g[:, :, e] Sparse_e(H)                       [B, T, d]
      out    = LN_2(H + D + S)                                    [B, T, d]

  The MTmixAtt paper is known here only through its summary ("a learnable mixing matrix,
  shared dense experts, and scenario-aware sparse experts"); these details are our
  choices. M starts at zero with softmax rows (plain: at 1/T), a uniform average of the
  tokens either way. The experts are FFNExperts (two-layer GELU FFNs, hidden width
  expansion * d) whose weights every token shares; the E_d dense experts are averaged.
  The router is per scenario and per token: a learned table R [N_scenarios, E_s] (starts
  as N(0, 1) draws) plus a linear term of the token, W_r [d, E_s] (no bias: R is one);
  each token of each example keeps its top_k experts, weighted by their probabilities under
  the softmax over all experts, not renormalised (Switch Transformer, GShard): renormalised
  over the kept experts, top_k = 1 would weigh every chosen expert 1 and the router would
  get no gradient. No load-balancing loss. Every expert runs on every token (g zeroes the others).
  Call with `layer([tokens, scenario_index])`, scenario_index [B] int;
  `routing_weights(...)` is g [B, T, E_s] (top_k nonzero per row, summing to at most 1),
  `routing_choices(...)` the top_k mask [B, T, E_s] of 0/1, and
  `router_logits(...)` is z.
  """

  def __init__(self, num_scenarios: int, num_dense_experts: int = 1,
               num_sparse_experts: int = 4, top_k: int = 2, expansion: float = 2,
               softmax_mixing: bool = True, layer_norm_epsilon: float = 1e-6,
               router_table_initializer=None, **kwargs):
    super().__init__(**kwargs)
    if not 1 <= top_k <= num_sparse_experts:
      raise ValueError(f'top_k={top_k} must be between 1 and num_sparse_experts='
                       f'{num_sparse_experts}')
    self.num_scenarios = num_scenarios
    self.num_dense_experts = num_dense_experts
    self.num_sparse_experts = num_sparse_experts
    self.top_k = top_k
    self.expansion = expansion
    self.softmax_mixing = softmax_mixing
    self.layer_norm_epsilon = layer_norm_epsilon
    self.router_table_initializer = tf.keras.initializers.get(
        router_table_initializer or tf.keras.initializers.RandomNormal(stddev=1.0))
    self.mixing_norm = tf.keras.layers.LayerNormalization(epsilon=layer_norm_epsilon,
                                                          name='mixing_norm')
    self.dense_experts = FFNExperts(num_dense_experts, expansion, name='dense_experts')
    self.sparse_experts = FFNExperts(num_sparse_experts, expansion, name='sparse_experts')
    self.output_norm = tf.keras.layers.LayerNormalization(epsilon=layer_norm_epsilon,
                                                          name='output_norm')

  def build(self, input_shape):
    token_shape = tf.TensorShape(input_shape[0])
    if token_shape.rank != 3 or token_shape[1] is None or token_shape[2] is None:
      raise ValueError(f'MTmixAttBlock takes tokens [B, T, d] with T and d known; got '
                       f'{token_shape}')
    num_tokens, width = int(token_shape[1]), int(token_shape[2])
    self.mixing = self.add_weight(  # M [T, T]
        name='mixing', shape=(num_tokens, num_tokens),
        initializer=tf.keras.initializers.Constant(0.0 if self.softmax_mixing
                                                   else 1.0 / num_tokens))
    self.router_table = self.add_weight(  # R [N_scenarios, E_s]
        name='router_table', shape=(self.num_scenarios, self.num_sparse_experts),
        initializer=self.router_table_initializer)
    self.router_kernel = self.add_weight(  # W_r [d, E_s]
        name='router_kernel', shape=(width, self.num_sparse_experts),
        initializer='glorot_uniform')
    super().build(input_shape)

  def mixing_matrix(self) -> tf.Tensor:
    """A [T, T]: row t holds the weights of the tokens mixed into token t."""
    return tf.nn.softmax(self.mixing, axis=-1) if self.softmax_mixing else self.mixing

  def _mix(self, x):
    mixed = tf.matmul(self.mixing_matrix(), x)  # [T, T] x [B, T, d] -> [B, T, d]
    return self.mixing_norm(x + mixed)  # H [B, T, d]

  def _logits(self, h, scenario_index):
    scenario_index = tf.cast(tf.reshape(scenario_index, [-1]), tf.int32)
    table = tf.gather(self.router_table, scenario_index)  # [B, E_s]
    return table[:, None, :] + tf.matmul(h, self.router_kernel)  # z [B, T, E_s]

  def _choices(self, logits):
    _, experts = tf.math.top_k(logits, k=self.top_k)  # [B, T, k]
    chosen = tf.one_hot(experts, self.num_sparse_experts, dtype=logits.dtype)  # [B,T,k,E_s]
    return tf.reduce_sum(chosen, axis=-2)  # [B, T, E_s] 0/1, top_k ones per token

  def _gates(self, logits):
    return tf.nn.softmax(logits, axis=-1) * self._choices(logits)  # g [B, T, E_s]

  def router_logits(self, inputs) -> tf.Tensor:
    """z [B, T, E_s]: the router's logits of every token's sparse experts."""
    if not self.built:
      self(inputs)
    x, scenario_index = inputs
    return self._logits(self._mix(x), scenario_index)

  def routing_weights(self, inputs) -> tf.Tensor:
    """g [B, T, E_s]: the sparse experts' weights; top_k nonzero per token."""
    return self._gates(self.router_logits(inputs))

  def routing_choices(self, inputs) -> tf.Tensor:
    """[B, T, E_s] 0/1: the top_k experts each token is routed to."""
    return self._choices(self.router_logits(inputs))

  def call(self, inputs):
    x, scenario_index = inputs
    h = self._mix(x)  # [B, T, d]
    dense = tf.reduce_mean(self.dense_experts(h), axis=2)  # D [B, T, d]
    gates = self._gates(self._logits(h, scenario_index))  # g [B, T, E_s]
    sparse = tf.reduce_sum(gates[..., None] * self.sparse_experts(h), axis=2)  # S [B, T, d]
    return self.output_norm(h + dense + sparse)

  def get_config(self):
    config = super().get_config()
    config.update({
        'num_scenarios': self.num_scenarios, 'num_dense_experts': self.num_dense_experts,
        'num_sparse_experts': self.num_sparse_experts, 'top_k': self.top_k,
        'expansion': self.expansion, 'softmax_mixing': self.softmax_mixing,
        'layer_norm_epsilon': self.layer_norm_epsilon,
        'router_table_initializer': tf.keras.initializers.serialize(
            self.router_table_initializer),
    })
    return config
