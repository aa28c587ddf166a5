"""The domain-fused module: each task token takes in the example's own scenario token
(MDL section 3.2.3, eq. 9-10)."""

import tensorflow as tf


class DomainFusedModule(tf.keras.layers.Layer):
  """Adds the example's scenario information to every task token.

      t_avg = mean(t_{s, s_b}, t_{s, global})     [B, d]    (eq. 9, use_global_token)
      t_avg = t_{s, s_b}                          [B, d]    (without the global token)
      out   = T_t + t_avg                         [B, N_t, d]  (eq. 10, over the tasks)

  s_b is the example's scenario index. With use_global_token the scenario tokens are
  [t_{s,1}; ...; t_{s,N_s}; t_{s,global}], the global token last (N_s + 1 tokens);
  without, the N_s scenario tokens only. One scenario per example: the paper's examples in
  several overlapping scenarios (eq. 9 averages all their tokens) are not supported.
  No weights: gradients reach only the example's own scenario token (and the global one).
  Call with `layer([task_tokens, scenario_tokens, scenario_index])`, scenario_index [B] int.
  """

  def __init__(self, use_global_token: bool = True, **kwargs):
    super().__init__(**kwargs)
    self.use_global_token = use_global_token

  def scenario_summary(self, scenario_tokens, scenario_index) -> tf.Tensor:
    """t_avg [B, d]."""
    scenario_index = tf.cast(tf.reshape(scenario_index, [-1]), tf.int32)
    own = tf.gather(scenario_tokens, scenario_index, axis=1, batch_dims=1)  # [B, d]
    if self.use_global_token:
      return 0.5 * (own + scenario_tokens[:, -1])
    return own

  def call(self, inputs):
    task_tokens, scenario_tokens, scenario_index = inputs
    return task_tokens + self.scenario_summary(scenario_tokens, scenario_index)[:, None, :]

  def get_config(self):
    config = super().get_config()
    config.update({'use_global_token': self.use_global_token})
    return config
