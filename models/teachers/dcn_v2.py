"""DCN-v2 teacher: explicit feature crosses over the joint user, item and scenario fields."""

import tensorflow as tf
import tensorflow_recommenders as tfrs

from models import features
from models.teachers.base import RankingTeacher
from models.towers.encoders import flatten_fields
from models.towers.encoders import ItemEncoder
from models.towers.encoders import mlp
from models.towers.encoders import UserEncoder


class DCNv2Teacher(RankingTeacher):
  """logit = Dense_1(MLP(x_L)),  x_{l+1} = x_0 * (W_l x_l + b_l) + x_l  (DCN-v2 cross).

  x_0 concatenates the user fields, the pooled behaviour sequence, e_s and the item fields,
  so the cross layers model user x item x scenario interactions (early interaction).
  projection_dim > 0 uses low-rank cross layers (W_l = U_l V_l).
  """

  def __init__(self, feature_space: features.FeatureSpace, embedding_dim: int = 16,
               cross_layers: int = 3, projection_dim: int = 64, hidden_units=(256, 128),
               history_pooling: str = 'mean', **kwargs):
    super().__init__(feature_space, **kwargs)
    self.embedding_dim, self.cross_layers = embedding_dim, cross_layers
    self.projection_dim, self.hidden_units = projection_dim, tuple(hidden_units)
    self.history_pooling = history_pooling
    space_json = feature_space.to_json()
    self.user_encoder = UserEncoder(space_json, embedding_dim, history_pooling,
                                    name='user_encoder')
    self.item_encoder = ItemEncoder(space_json, embedding_dim, name='item_encoder')
    self.crosses = [tfrs.layers.dcn.Cross(projection_dim=projection_dim or None,
                                          name=f'cross_{i}') for i in range(cross_layers)]
    self.deep = mlp(hidden_units, 'deep')
    self.logit = tf.keras.layers.Dense(1, name='logit')

  def call(self, inputs, training=None):
    user_fields, _, _ = self.user_encoder(inputs)
    x0 = tf.concat([flatten_fields(user_fields),
                    flatten_fields(self.item_encoder(inputs))], axis=1)
    x = x0
    for cross in self.crosses:
      x = cross(x0, x)
    return tf.squeeze(self.logit(self.deep(x, training=training)), axis=1)

  def get_config(self):
    return {'name': self.name, 'feature_space': self.feature_space.to_json(),
            'embedding_dim': self.embedding_dim, 'cross_layers': self.cross_layers,
            'projection_dim': self.projection_dim, 'hidden_units': self.hidden_units,
            'history_pooling': self.history_pooling}
