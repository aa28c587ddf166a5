"""The two-tower DNN baseline (DSSM-style) user tower."""

import tensorflow as tf

from models import features
from models.towers.base import UserTower
from models.towers.encoders import flatten_fields
from models.towers.encoders import mlp


class DNNUserTower(UserTower):
  """u = Dense_out(MLP(e_input)); the scenario enters only as the e_s field of e_input."""

  def __init__(self, feature_space: features.FeatureSpace, output_dim: int = 64,
               embedding_dim: int = 16, hidden_units=(256, 128),
               history_pooling: str = 'mean', **kwargs):
    super().__init__(feature_space, output_dim, embedding_dim, history_pooling, **kwargs)
    self.hidden_units = tuple(hidden_units)
    self.hidden = mlp(hidden_units, 'user_mlp')
    self.out = tf.keras.layers.Dense(output_dim, name='user_embedding')

  def embed(self, inputs, training=None):
    fields, _, _ = self.encoder(inputs)
    return self.out(self.hidden(flatten_fields(fields), training=training))

  def get_config(self):
    return self._config(embedding_dim=self.embedding_dim, hidden_units=self.hidden_units,
                        history_pooling=self.history_pooling)
