"""What every tower is: a Keras model from its features to one embedding per example."""

import tensorflow as tf

from models import features
from models.towers.encoders import flatten_fields
from models.towers.encoders import ItemEncoder
from models.towers.encoders import mlp
from models.towers.encoders import UserEncoder


class Tower(tf.keras.Model):
  """Base of user and item towers: call(features) -> [B, output_dim].

  `feature_names` lists the (transformed, dense) features the tower reads; export builds
  the serving signature from it.
  """

  def __init__(self, feature_space: features.FeatureSpace, output_dim: int, **kwargs):
    super().__init__(**kwargs)
    self.feature_space = feature_space
    self.output_dim = output_dim

  @property
  def feature_names(self) -> tuple[str, ...]:
    raise NotImplementedError


class UserTower(Tower):
  """A user tower: user features + behaviour sequence + scenario -> user embedding."""

  def __init__(self, feature_space: features.FeatureSpace, output_dim: int,
               embedding_dim: int, history_pooling: str = 'mean', **kwargs):
    super().__init__(feature_space, output_dim, **kwargs)
    self.encoder = UserEncoder(feature_space.to_json(), embedding_dim, history_pooling,
                               name='user_encoder')

  @property
  def feature_names(self) -> tuple[str, ...]:
    return self.feature_space.user_tower_features


class ItemTower(Tower):
  """The item tower of every student: item fields -> MLP -> item embedding.

      v = Dense_out(MLP(concat of the item field embeddings))
  No scenario input, so one item index serves every scenario.
  """

  def __init__(self, feature_space: features.FeatureSpace, output_dim: int,
               embedding_dim: int, hidden_units=(256, 128), **kwargs):
    super().__init__(feature_space, output_dim, **kwargs)
    self.encoder = ItemEncoder(feature_space.to_json(), embedding_dim, name='item_encoder')
    self.hidden = mlp(hidden_units, 'item_mlp')
    self.out = tf.keras.layers.Dense(output_dim, name='item_embedding')

  @property
  def feature_names(self) -> tuple[str, ...]:
    return self.feature_space.item_tower_features

  def call(self, inputs, training=None):
    return self.out(self.hidden(flatten_fields(self.encoder(inputs)), training=training))
