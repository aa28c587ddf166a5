"""The SAP-based MMOE block of DSMOE (section 3.3, "SAP based MMOE")."""

import tensorflow as tf

from models.layers.domain_specific_batch_normalization import DomainSpecificBatchNormalization
from models.layers.scenario_adaptive_projection import ScenarioAdaptiveProjection


class ScenarioAdaptiveExpert(tf.keras.layers.Layer):
  """Expert_k(x | e_s, d) = DSBN_k(PReLU(SAP_k(x | e_s)), d).

  Ablations: use_sap=False puts a plain Dense layer in place of SAP; use_dsbn=False one
  BatchNormalization shared by all scenarios in place of DSBN.
  Shapes: x [B, d_in], e_s [B, d_s], d [B] -> [B, units].
  Call with `layer([x, scenario_embedding, scenario_index], training=...)`.
  """

  def __init__(self, units: int, num_scenarios: int, rank: int = 4, use_sap: bool = True,
               use_dsbn: bool = True, **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.num_scenarios = num_scenarios
    self.rank = rank
    self.use_sap = use_sap
    self.use_dsbn = use_dsbn
    self._projection = (ScenarioAdaptiveProjection(units, rank, name='sap') if use_sap
                        else tf.keras.layers.Dense(units, name='dense'))
    self._activation = tf.keras.layers.PReLU(name='prelu')
    self._normalization = (DomainSpecificBatchNormalization(num_scenarios, name='dsbn')
                           if use_dsbn else tf.keras.layers.BatchNormalization(name='bn'))

  @property
  def projection(self) -> tf.keras.layers.Layer:
    """SAP_k (a Dense layer with use_sap=False)."""
    return self._projection

  def call(self, inputs, training=None):
    x, scenario_embedding, scenario_index = inputs
    h = self._projection([x, scenario_embedding] if self.use_sap else x)
    h = self._activation(h)
    if self.use_dsbn:
      return self._normalization([h, scenario_index], training=training)
    return self._normalization(h, training=training)

  def get_config(self):
    config = super().get_config()
    config.update({'units': self.units, 'num_scenarios': self.num_scenarios,
                   'rank': self.rank, 'use_sap': self.use_sap, 'use_dsbn': self.use_dsbn})
    return config


class SAPMixtureOfExperts(tf.keras.layers.Layer):
  """K scenario-adaptive experts mixed by a scenario gate, then a SAP forward layer.

      g       = W_gate e_s + b_gate                    gate logits [B, K]
      alpha   = softmax(g)                             depends on the scenario only
      z_mix   = sum_k alpha_k Expert_k(x | e_s, d)     [B, expert_units]
      z_out   = SAP_forward(z_mix | e_s)               [B, output_units]

  With use_sap=False and use_dsbn=False this is a plain MMOE with scenario gates (the
  paper's MMOE baseline and its "w/o SAP" / "w/o DSBN" ablations).
  Call with `layer([x, scenario_embedding, scenario_index], training=...)`.
  """

  def __init__(self, output_units: int, num_scenarios: int, num_experts: int = 3,
               expert_units: int = 128, rank: int = 4, use_sap: bool = True,
               use_dsbn: bool = True, **kwargs):
    super().__init__(**kwargs)
    self.output_units = output_units
    self.num_scenarios = num_scenarios
    self.num_experts = num_experts
    self.expert_units = expert_units
    self.rank = rank
    self.use_sap = use_sap
    self.use_dsbn = use_dsbn
    self._experts = [
        ScenarioAdaptiveExpert(expert_units, num_scenarios, rank, use_sap, use_dsbn,
                               name=f'expert_{k}') for k in range(num_experts)]
    self._gate = tf.keras.layers.Dense(num_experts, name='gate')
    self._forward = (ScenarioAdaptiveProjection(output_units, rank, name='sap_forward')
                     if use_sap else tf.keras.layers.Dense(output_units, name='forward'))

  def sap_layers(self) -> dict[str, ScenarioAdaptiveProjection]:
    """The SAP layers by name ('expert_0' .. 'expert_{K-1}', 'forward'); none without
    use_sap."""
    if not self.use_sap:
      return {}
    named = {expert.name: expert.projection for expert in self._experts}
    named['forward'] = self._forward
    return named

  def gate_weights(self, scenario_embedding: tf.Tensor) -> tf.Tensor:
    """alpha [B, K]: softmax of the gate logits; sums to one per example."""
    return tf.nn.softmax(self._gate(scenario_embedding), axis=-1)

  def call(self, inputs, training=None):
    x, scenario_embedding, scenario_index = inputs
    experts = tf.stack([expert([x, scenario_embedding, scenario_index], training=training)
                        for expert in self._experts], axis=1)  # [B, K, expert_units]
    alpha = self.gate_weights(scenario_embedding)  # [B, K]
    mixed = tf.reduce_sum(alpha[:, :, None] * experts, axis=1)  # [B, expert_units]
    if self.use_sap:
      return self._forward([mixed, scenario_embedding])
    return self._forward(mixed)

  def get_config(self):
    config = super().get_config()
    config.update({'output_units': self.output_units, 'num_scenarios': self.num_scenarios,
                   'num_experts': self.num_experts, 'expert_units': self.expert_units,
                   'rank': self.rank, 'use_sap': self.use_sap, 'use_dsbn': self.use_dsbn})
    return config
