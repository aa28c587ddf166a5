"""The feature encoders every tower and the teacher share (same embedding code everywhere)."""

import tensorflow as tf

from core import feature_names as fnames
from models import features
from models.layers import BehaviorSequenceEmbedding
from models.layers import FeatureEmbedding
from models.layers import ScenarioEmbedding


def _fields(tower: features.TowerInputs) -> dict:
  """FeatureEmbedding's arguments for one tower's inputs."""
  return {'categorical': [(c.name, c.vocab_size, c.max_values) for c in tower.categorical],
          'numeric': list(tower.numeric),
          'numeric_lists': [(n.name, n.length) for n in tower.numeric_lists]}


class UserEncoder(tf.keras.layers.Layer):
  """User features, behaviour sequence and scenario -> field embeddings and e_s.

  Returns (fields [B, F_u + 2, dim], e_s [B, dim], scenario index [B]); the last two fields
  are the pooled behaviour sequence and e_s itself. With `return_sequence=True` a fourth
  element carries the unpooled sequence for towers that attend over it: (v [B, L, dim],
  mask [B, L] true where a click is, the clicks' scenario index [B, L]); the first three
  and the weights are the same either way.
  """

  def __init__(self, feature_space: str, dim: int, history_pooling: str = 'mean',
               **kwargs):
    super().__init__(**kwargs)
    self.feature_space = feature_space  # FeatureSpace JSON
    self.dim = dim
    self.history_pooling = history_pooling
    space = features.FeatureSpace.from_json(feature_space)
    self._user = FeatureEmbedding(dim=dim, name='user_fields', **_fields(space.user))
    self._scenario = ScenarioEmbedding(space.scenarios, dim, name='scenario')
    self._history = BehaviorSequenceEmbedding(space.item_vocab_size, len(space.scenarios),
                                              dim, history_pooling, name='history')

  @property
  def num_fields(self) -> int:
    return self._user.num_fields + 2

  def scenario_embedding(self, scenario: tf.Tensor) -> tf.Tensor:
    """e_s [B, dim] of raw scenario values [B]."""
    return self._scenario(scenario)[1]

  def scenario_index(self, inputs) -> tf.Tensor:
    """The scenario's index [B] under the ingestion's mapping."""
    return self._scenario.index(inputs[fnames.SCENARIO])

  def call(self, inputs, return_sequence: bool = False):
    scenario_index, e_s = self._scenario(inputs[fnames.SCENARIO])
    history_scenario = self._scenario.index(inputs[fnames.HISTORY_SCENARIO])  # [B, L]
    history = self._history([inputs[fnames.HISTORY_ITEM_ID], history_scenario],
                            return_sequence=return_sequence)
    if return_sequence:
      history, values, mask = history
    fields = tf.concat([self._user(inputs), history[:, None], e_s[:, None]], axis=1)
    if return_sequence:
      return fields, e_s, scenario_index, (values, mask, history_scenario)
    return fields, e_s, scenario_index

  def get_config(self):
    config = super().get_config()
    config.update({'feature_space': self.feature_space, 'dim': self.dim,
                   'history_pooling': self.history_pooling})
    return config


class ItemEncoder(tf.keras.layers.Layer):
  """Item features -> field embeddings [B, F_i, dim]. No scenario: one index serves all."""

  def __init__(self, feature_space: str, dim: int, **kwargs):
    super().__init__(**kwargs)
    self.feature_space = feature_space
    self.dim = dim
    space = features.FeatureSpace.from_json(feature_space)
    self._item = FeatureEmbedding(dim=dim, name='item_fields', **_fields(space.item))

  @property
  def num_fields(self) -> int:
    return self._item.num_fields

  def call(self, inputs):
    return self._item(inputs)

  def get_config(self):
    config = super().get_config()
    config.update({'feature_space': self.feature_space, 'dim': self.dim})
    return config


def flatten_fields(fields: tf.Tensor) -> tf.Tensor:
  """[B, F, dim] -> [B, F * dim] (the concatenated embeddings e_input)."""
  return tf.reshape(fields, [-1, fields.shape[1] * fields.shape[2]])


def mlp(units, name: str) -> tf.keras.Sequential:
  """Dense + PReLU layers."""
  layers = []
  for i, n in enumerate(units):
    layers += [tf.keras.layers.Dense(n, name=f'dense_{i}'),
               tf.keras.layers.PReLU(name=f'prelu_{i}')]
  return tf.keras.Sequential(layers, name=name)
