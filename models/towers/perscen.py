"""PERSCEN user tower: personalized interaction pattern and scenario preference (Du et al.,
KDD 2025).

Reproduced from the paper ("PERSCEN: Learning personalized interaction pattern and
scenario preference for multi-scenario matching", https://arxiv.org/abs/2506.18382; code
at https://github.com/LARS-research/PERSCEN, not reachable from here) and the public code
of EmerG (https://github.com/LARS-research/EmerG, model/gnn.py and model/warm.py), whose
graph generator and GNN layer PERSCEN's section 4.2 builds on:
  1. user-specific feature graph: a field-wise generator gives each user an adjacency over
     their own fields, refined (row softmax, symmetrised, D^-1/2 S D^-1/2) and raised to
     higher orders A^(l) = A^(l-1) A^(1); a lightweight GNN (h^(l) = act(A^(l) E W^(l)) *
     h^(l-1), H = sum_l h^(l)) gives the preference shared across scenarios,
     h_u = flatten(H) (models/layers/user_feature_graph.py);
  2. scenario-aware preference: the clicks the user made in the current scenario s are
     pooled and encoded, z = MLP(mean of v_l over clicks in s), vector-quantized on a
     codebook shared by all scenarios with a straight-through gradient and the codebook +
     commitment loss (models/layers/vector_quantizer.py), p = z + c_j; with the scenario
     encoder p_s = e_s W_s, p^ = MLP([p; p_s]);
  3. progressive scenario adaptive transfer: a stack of scenario-aware GLUs over the
     shared path, x_l = PReLU(x_{l-1} W_l) * sigmoid(p^ V_l), x_0 = h_u
     (models/layers/scenario_aware_glu.py), and a learned fusion,
         u = alpha Dense(x_L) + (1 - alpha) Dense(p^),  alpha = sigmoid(a).
The graph is over the user fields and the pooled whole behaviour sequence (the encoder's
fields without e_s: the scenario enters through p^ only). Loss: BCE + the VQ loss (in
training; models/two_tower.py adds the layers' losses).
Chosen here where the sources are silent or out of reach: one generator hidden layer of
`graph_hidden` units with a learned code per field (EmerG: three layers on [E; one-hot of
the field]); no sparsification of the adjacency (a handful of fields); L = `graph_layers`
GNN layers summed (EmerG sums them through a multi-head attention); the GLU gate reads p^
alone; p^ and the codebook are `preference_units`-dimensional, `codebook_size` codes,
commitment 0.25 (VQ-VAE's). The item tower is the shared scenario-independent one (one
index for all scenarios), not PERSCEN's item-side counterpart.
"""

import tensorflow as tf

from models import features
from models.layers import MaskedPooling
from models.layers import ScenarioAwareGLU
from models.layers import UserFeatureGraph
from models.layers import VectorQuantizer
from models.towers.base import UserTower
from models.towers.encoders import flatten_fields


def _dense_prelu(units: int, name: str) -> tf.keras.Sequential:
  return tf.keras.Sequential([tf.keras.layers.Dense(units, name='dense'),
                              tf.keras.layers.PReLU(name='prelu')], name=name)


class PERSCENUserTower(UserTower):

  def __init__(self, feature_space: features.FeatureSpace, output_dim: int = 64,
               embedding_dim: int = 16, hidden_units=(256, 128),
               history_pooling: str = 'mean', graph_layers: int = 2, graph_hidden: int = 16,
               preference_units: int = 32, codebook_size: int = 16, **kwargs):
    super().__init__(feature_space, output_dim, embedding_dim, history_pooling, **kwargs)
    self.hidden_units = tuple(hidden_units)
    self.graph_layers, self.graph_hidden = graph_layers, graph_hidden
    self.preference_units, self.codebook_size = preference_units, codebook_size
    self.graph = UserFeatureGraph(graph_layers, graph_hidden, name='feature_graph')
    self.scenario_pooling = MaskedPooling('mean', name='scenario_sequence_pooling')
    self.sequence_encoder = tf.keras.Sequential(
        [_dense_prelu(preference_units, 'hidden'),
         tf.keras.layers.Dense(preference_units, name='latent')], name='sequence_encoder')
    self.quantizer = VectorQuantizer(codebook_size, name='vector_quantizer')
    self.scenario_encoder = tf.keras.layers.Dense(preference_units, name='scenario_encoder')
    self.preference = _dense_prelu(preference_units, 'scenario_preference')
    self.transfer = [ScenarioAwareGLU(units, name=f'scenario_glu_{i}')
                     for i, units in enumerate(hidden_units)]
    self.shared_out = tf.keras.layers.Dense(output_dim, name='shared_embedding')
    self.preference_out = tf.keras.layers.Dense(output_dim, name='preference_embedding')
    self.fusion_logit = self.add_weight(name='fusion_logit', shape=(), initializer='zeros')

  def scenario_preference(self, e_s, scenario_index, sequence, mask, history_scenario,
                          training=None) -> tf.Tensor:
    """p^ [B, preference_units] from the clicks in the example's own scenario."""
    in_scenario = tf.logical_and(tf.cast(mask, tf.bool),
                                 tf.equal(history_scenario, scenario_index[:, None]))
    z = self.sequence_encoder(self.scenario_pooling([sequence, in_scenario]))  # [B, P]
    p = z + self.quantizer(z, training=training)  # residual: z + c_j
    return self.preference(tf.concat([p, self.scenario_encoder(e_s)], axis=1))

  def embed(self, inputs, training=None):
    fields, e_s, d, (sequence, mask, history_scenario) = self.encoder(inputs,
                                                                      return_sequence=True)
    x = flatten_fields(self.graph(fields[:, :-1]))  # h_u [B, (F - 1) dim], shared
    p_hat = self.scenario_preference(e_s, d, sequence, mask, history_scenario,
                                     training=training)
    for glu in self.transfer:
      x = glu([x, p_hat])
    alpha = tf.sigmoid(self.fusion_logit)
    return alpha * self.shared_out(x) + (1.0 - alpha) * self.preference_out(p_hat)

  def get_config(self):
    return self._config(embedding_dim=self.embedding_dim, hidden_units=self.hidden_units,
                        history_pooling=self.history_pooling,
                        graph_layers=self.graph_layers, graph_hidden=self.graph_hidden,
                        preference_units=self.preference_units,
                        codebook_size=self.codebook_size)
