"""A mixture of shared and scenario-specific experts with a scenario gate (M5's Split MoE)."""

import tensorflow as tf

from models.layers.scenario_specific_dense import ScenarioSpecificDense


class SplitMixtureOfExperts(tf.keras.layers.Layer):
  """K shared experts and one expert per scenario, mixed by the scenario's own gate.

      E_k(x)  = PReLU_k(x W_k + b_k)                 k = 1 .. K, shared by all scenarios
      E_s(x)  = PReLU_S(x W_S[s] + b_S[s])           the expert of scenario s only
      g       = softmax(x W_g[s] + b_g[s])           [B, K + 1], a gate per scenario
      y       = sum_k g_k E_k(x) + g_{K+1} E_s(x)    [B, units]

  The experts are split into shared and scenario-specific ones (as PLE's CGC layer); each
  scenario's gate reads the input, as MMOE's task gates. W_S and W_g are
  ScenarioSpecificDense kernels [S, d_in, .].
  Shapes: x [B, d_in], scenario index [B] -> y [B, units].
  Call with `layer([x, scenario_index])`; `gate_weights([x, scenario_index])` is g.
  """

  def __init__(self, units: int, num_scenarios: int, num_experts: int = 3, **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.num_scenarios = num_scenarios
    self.num_experts = num_experts
    self._shared = [tf.keras.layers.Dense(units, name=f'shared_expert_{k}')
                    for k in range(num_experts)]
    self._shared_act = [tf.keras.layers.PReLU(name=f'shared_prelu_{k}')
                        for k in range(num_experts)]
    self._specific = ScenarioSpecificDense(units, num_scenarios, name='scenario_expert')
    self._specific_act = tf.keras.layers.PReLU(name='scenario_prelu')
    self._gate = ScenarioSpecificDense(num_experts + 1, num_scenarios, 'softmax',
                                       name='scenario_gate')

  def gate_weights(self, inputs) -> tf.Tensor:
    """g [B, K + 1]: the scenario's weights of the shared experts, then its own expert."""
    return self._gate(inputs)

  def call(self, inputs):
    x, scenario_index = inputs
    experts = [act(dense(x)) for dense, act in zip(self._shared, self._shared_act)]
    experts.append(self._specific_act(self._specific([x, scenario_index])))
    experts = tf.stack(experts, axis=1)  # [B, K + 1, units]
    return tf.reduce_sum(self.gate_weights(inputs)[:, :, None] * experts, axis=1)

  def get_config(self):
    config = super().get_config()
    config.update({'units': self.units, 'num_scenarios': self.num_scenarios,
                   'num_experts': self.num_experts})
    return config
