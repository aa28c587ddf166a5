"""ADIN user tower: Adaptive Domain Interest Network (Jiang et al., CIKM 2022), for retrieval.

Reproduced from the public description (arXiv 2206.09672): the user side of the two-tower
ADIN model,
  1. Domain Interest Adaptation Layer: a scenario-specific squeeze-and-excitation over the
     feature fields, w = sigmoid(W2_d relu(W1_d z)), z the per-field mean of the
     embeddings; each field is scaled by its weight;
  2. a shared network and a scenario-specific network, each Dense -> DSBN -> PReLU;
  3. a fusion layer over both (concatenation -> Dense -> PReLU);
  4. a scenario-specific forward network to the user embedding.
Not reproduced: the self-training strategy (pseudo labels across scenarios) and the
sampled-softmax loss; like every student here, ADIN trains with BCE on clicks + random
negatives. The item tower is the shared scenario-independent one (one index for all).
"""

import tensorflow as tf

from models import features
from models.layers import DomainSpecificBatchNormalization
from models.layers import ScenarioSpecificDense
from models.towers.base import UserTower
from models.towers.encoders import flatten_fields


class ADINUserTower(UserTower):

  def __init__(self, feature_space: features.FeatureSpace, output_dim: int = 64,
               embedding_dim: int = 16, hidden_units=(256, 128),
               history_pooling: str = 'mean', squeeze_ratio: int = 4, **kwargs):
    super().__init__(feature_space, output_dim, embedding_dim, history_pooling, **kwargs)
    self.hidden_units = tuple(hidden_units)
    self.squeeze_ratio = squeeze_ratio
    scenarios = len(feature_space.scenarios)
    num_fields = self.encoder.num_fields
    self.squeeze = ScenarioSpecificDense(max(1, num_fields // squeeze_ratio), scenarios,
                                         'relu', name='dial_squeeze')
    self.excite = ScenarioSpecificDense(num_fields, scenarios, 'sigmoid', name='dial_excite')
    first, second = hidden_units[0], hidden_units[-1]
    self.shared = tf.keras.layers.Dense(first, name='shared')
    self.shared_norm = DomainSpecificBatchNormalization(scenarios, name='shared_dsbn')
    self.specific = ScenarioSpecificDense(first, scenarios, name='specific')
    self.specific_norm = DomainSpecificBatchNormalization(scenarios, name='specific_dsbn')
    self.shared_act = tf.keras.layers.PReLU(name='shared_prelu')
    self.specific_act = tf.keras.layers.PReLU(name='specific_prelu')
    self.fusion = tf.keras.Sequential([tf.keras.layers.Dense(second),
                                       tf.keras.layers.PReLU()], name='fusion')
    self.forward = ScenarioSpecificDense(output_dim, scenarios, name='forward')

  def field_weights(self, fields: tf.Tensor, scenario_index: tf.Tensor) -> tf.Tensor:
    """The domain interest adaptation weights [B, F]."""
    z = tf.reduce_mean(fields, axis=2)  # squeeze: [B, F]
    return self.excite([self.squeeze([z, scenario_index]), scenario_index])

  def embed(self, inputs, training=None):
    fields, _, d = self.encoder(inputs)
    x = flatten_fields(fields * self.field_weights(fields, d)[:, :, None])
    shared = self.shared_act(self.shared_norm([self.shared(x), d], training=training))
    specific = self.specific_act(self.specific_norm([self.specific([x, d]), d],
                                                    training=training))
    fused = self.fusion(tf.concat([shared, specific], axis=1))
    return self.forward([fused, d])

  def get_config(self):
    return self._config(embedding_dim=self.embedding_dim, hidden_units=self.hidden_units,
                        history_pooling=self.history_pooling, squeeze_ratio=self.squeeze_ratio)
