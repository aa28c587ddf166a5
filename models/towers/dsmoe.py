"""The DSMOE user tower: the SAP-based MMOE over the user's encoded features."""

import tensorflow as tf

from models import features
from models.layers import SAPMixtureOfExperts
from models.towers.base import UserTower
from models.towers.encoders import flatten_fields


class DSMOEUserTower(UserTower):
  """u = SAP_forward(sum_k alpha_k(e_s) Expert_k(e_input | e_s, d)).

  e_input concatenates the user field embeddings, the pooled behaviour sequence and e_s.
  Flags give the paper's ablations and the MMOE baseline: use_sap=False (Dense instead of
  SAP), use_dsbn=False (shared BatchNormalization), both off = plain MMOE with scenario
  gates; num_experts is K, rank is R.
  """

  def __init__(self, feature_space: features.FeatureSpace, output_dim: int = 64,
               embedding_dim: int = 16, num_experts: int = 3, expert_units: int = 128,
               rank: int = 4, use_sap: bool = True, use_dsbn: bool = True,
               history_pooling: str = 'mean', **kwargs):
    super().__init__(feature_space, output_dim, embedding_dim, history_pooling, **kwargs)
    self.num_experts, self.expert_units, self.rank = num_experts, expert_units, rank
    self.use_sap, self.use_dsbn = use_sap, use_dsbn
    self.mixture = SAPMixtureOfExperts(
        output_dim, len(feature_space.scenarios), num_experts, expert_units, rank,
        use_sap, use_dsbn, name='sap_mmoe')

  def embed(self, inputs, training=None):
    fields, e_s, scenario_index = self.encoder(inputs)
    return self.mixture([flatten_fields(fields), e_s, scenario_index], training=training)

  def scenario_profile(self) -> dict:
    """The paper's case study (Figure 4) of this tower, for each served scenario s:

        gate_weights[s]                = alpha(e_s)        [S, K], rows sum to one
        scenario_coefficients[layer][s] = b_s of that SAP   [S, R] (empty without SAP)
    """
    scenarios = list(self.feature_space.scenarios)
    e_s = self.encoder.scenario_embedding(tf.constant(scenarios))  # [S, dim]
    return {'scenarios': scenarios,
            'gate_weights': self.mixture.gate_weights(e_s).numpy().tolist(),
            'scenario_coefficients': {
                name: layer.scenario_coefficients(e_s).numpy().tolist()
                for name, layer in self.mixture.sap_layers().items()}}

  def get_config(self):
    return self._config(embedding_dim=self.embedding_dim, num_experts=self.num_experts,
                        expert_units=self.expert_units, rank=self.rank,
                        use_sap=self.use_sap, use_dsbn=self.use_dsbn,
                        history_pooling=self.history_pooling)
