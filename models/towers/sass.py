"""SASS user tower: Scenario-Adaptive and Self-Supervised model (Zhang et al., CIKM 2022).

Reproduced from the public description (arXiv 2208.11457): the Multi-Layer Scenario
Adaptive Transfer (ML-SAT) module on the user side,
  - a global network shared by all scenarios and a scenario-specific network, layer by
    layer (g_l = PReLU(Dense(g_{l-1})), s~_l = PReLU(Dense_d(s_{l-1})));
  - at each layer an adaptive gate chooses what global information to transfer,
    t_l = sigmoid(Dense_d([s~_l, g_l])) * g_l, and an update gate fuses it,
    s_l = u_l * s~_l + (1 - u_l) * t_l, u_l = sigmoid(Dense_d([s~_l, t_l]));
  - a scenario bias network on e_s, concatenated before the output layer.
Dense_d are scenario-specific layers. Not reproduced: the contrastive pre-training stage
and the scenario-specific item representations (here the item tower is the shared
scenario-independent one, so a single index serves every scenario).
"""

import tensorflow as tf

from models import features
from models.layers import ScenarioSpecificDense
from models.towers.base import UserTower
from models.towers.encoders import flatten_fields


class SASSUserTower(UserTower):

  def __init__(self, feature_space: features.FeatureSpace, output_dim: int = 64,
               embedding_dim: int = 16, hidden_units=(256, 128),
               history_pooling: str = 'mean', **kwargs):
    super().__init__(feature_space, output_dim, embedding_dim, history_pooling, **kwargs)
    self.hidden_units = tuple(hidden_units)
    scenarios = len(feature_space.scenarios)
    self.global_layers, self.specific_layers = [], []
    self.adaptive_gates, self.update_gates = [], []
    for i, units in enumerate(hidden_units):
      self.global_layers.append(tf.keras.Sequential(
          [tf.keras.layers.Dense(units), tf.keras.layers.PReLU()], name=f'global_{i}'))
      self.specific_layers.append(ScenarioSpecificDense(units, scenarios,
                                                        name=f'specific_{i}'))
      self.adaptive_gates.append(ScenarioSpecificDense(units, scenarios, 'sigmoid',
                                                       name=f'adaptive_gate_{i}'))
      self.update_gates.append(ScenarioSpecificDense(units, scenarios, 'sigmoid',
                                                     name=f'update_gate_{i}'))
    self.specific_act = [tf.keras.layers.PReLU(name=f'specific_prelu_{i}')
                         for i in range(len(hidden_units))]
    self.bias_network = tf.keras.layers.Dense(hidden_units[-1], activation='relu',
                                              name='scenario_bias')
    self.out = tf.keras.layers.Dense(output_dim, name='user_embedding')

  def embed(self, inputs, training=None):
    fields, e_s, d = self.encoder(inputs)
    g = s = flatten_fields(fields)
    for global_layer, specific, act, adaptive, update in zip(
        self.global_layers, self.specific_layers, self.specific_act, self.adaptive_gates,
        self.update_gates):
      g = global_layer(g)
      candidate = act(specific([s, d]))
      transfer = adaptive([tf.concat([candidate, g], axis=1), d]) * g
      u = update([tf.concat([candidate, transfer], axis=1), d])
      s = u * candidate + (1.0 - u) * transfer
    return self.out(tf.concat([s, self.bias_network(e_s)], axis=1))

  def get_config(self):
    return self._config(embedding_dim=self.embedding_dim, hidden_units=self.hidden_units,
                        history_pooling=self.history_pooling)
