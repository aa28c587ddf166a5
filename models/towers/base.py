"""What every tower is: a Keras model from its features to one embedding per example."""

from typing import Optional

import tensorflow as tf

from core import feature_names as fnames
from models import features
from models.layers import ScenarioPopularityPrior
from models.towers.encoders import flatten_fields
from models.towers.encoders import ItemEncoder
from models.towers.encoders import mlp
from models.towers.encoders import UserEncoder


class Tower(tf.keras.Model):
  """Base of user and item towers: call(features) -> [B, output_dim].

  `feature_names` lists the (transformed, dense) features the tower reads; export builds
  the serving signature from it.
  """

  def __init__(self, feature_space: features.FeatureSpace, output_dim: int,
               scenario_prior: bool = False, **kwargs):
    super().__init__(**kwargs)
    self.feature_space = feature_space
    self.output_dim = output_dim
    # Append the scenario popularity prior (models/layers/scenario_popularity_prior.py):
    # the embedding then has output_dim + S * (number of popularity features) entries.
    self.scenario_prior = scenario_prior
    if scenario_prior and not feature_space.popularity_features:
      raise ValueError(f'scenario_prior needs an item popularity feature (one of '
                       f'{", ".join(fnames.POPULARITY_FEATURES)}); turn on '
                       f'ingestion.scenario_click_features or recent_click_features')

  @property
  def feature_names(self) -> tuple[str, ...]:
    raise NotImplementedError

  def _config(self, **arguments) -> dict:
    """get_config helper: the constructor's arguments, the feature space as JSON."""
    return {'name': self.name, 'feature_space': self.feature_space.to_json(),
            'output_dim': self.output_dim, 'scenario_prior': self.scenario_prior,
            **arguments}

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    config['feature_space'] = features.FeatureSpace.from_json(config['feature_space'])
    return cls(**config)


class UserTower(Tower):
  """A user tower: user features + behaviour sequence + scenario -> user embedding.

  Subclasses implement `embed` (-> u [B, output_dim]); with `scenario_prior` the tower
  returns [u; w_s] [B, output_dim + S * P], P the number of popularity features.
  """

  def __init__(self, feature_space: features.FeatureSpace, output_dim: int,
               embedding_dim: int, history_pooling: str = 'mean', **kwargs):
    super().__init__(feature_space, output_dim, **kwargs)
    self.embedding_dim = embedding_dim
    self.history_pooling = history_pooling
    self.encoder = UserEncoder(feature_space.to_json(), embedding_dim, history_pooling,
                               name='user_encoder')
    if self.scenario_prior:
      self.prior = ScenarioPopularityPrior(len(feature_space.scenarios),
                                           len(feature_space.popularity_features),
                                           fitted_signal=self.fitted_signal or 0,
                                           name='scenario_popularity_prior')

  @property
  def feature_names(self) -> tuple[str, ...]:
    return self.feature_space.user_tower_features

  def embed(self, inputs, training=None) -> tf.Tensor:
    raise NotImplementedError

  @property
  def fitted_signal(self) -> Optional[int]:
    """The index of `scenario_clicks` among the popularity features: the signal whose
    own-scenario entry gets the fitted weight tau_s (None: no such feature)."""
    names = self.feature_space.popularity_features
    return names.index(fnames.SCENARIO_CLICKS) if fnames.SCENARIO_CLICKS in names else None

  def own_scenario_popularity_columns(self) -> list[int]:
    """Column of the item embedding [v; c(i)] holding c_s(i) = log(1 + clicks in s), per
    scenario s in index order: what tau_s multiplies."""
    s = len(self.feature_space.scenarios)
    return [self.output_dim + self.fitted_signal * s + i for i in range(s)]

  def set_popularity_weights(self, tau) -> None:
    """Sets the fitted tau_s [S] (models/layers/scenario_popularity_prior.py)."""
    self.prior.set_fitted(tau)

  def popularity_weights(self) -> list[float]:
    return [float(x) for x in self.prior.fitted.numpy()[:-1]]

  def scenario_profile(self) -> Optional[dict]:
    """What the tower does differently per scenario, for inspection (JSON-ready), or None
    when it has nothing scenario-specific to show."""
    return None

  def call(self, inputs, training=None):
    u = self.embed(inputs, training=training)  # [B, output_dim]
    if not self.scenario_prior:
      return u
    return tf.concat([u, self.prior(self.encoder.scenario_index(inputs), training=training)],
                     axis=1)


class ItemTower(Tower):
  """The item tower of every student: item fields -> MLP -> item embedding.

      v = Dense_out(MLP(concat of the item field embeddings))
  No scenario input, so one item index serves every scenario. With `scenario_prior` the
  item's popularity features (log(1 + clicks) per scenario, [S] each) are appended:
  [v; c(i)] [B, output_dim + S * P] for P popularity features.
  """

  def __init__(self, feature_space: features.FeatureSpace, output_dim: int,
               embedding_dim: int, hidden_units=(256, 128), **kwargs):
    super().__init__(feature_space, output_dim, **kwargs)
    self.embedding_dim = embedding_dim
    self.hidden_units = tuple(hidden_units)
    self.encoder = ItemEncoder(feature_space.to_json(), embedding_dim, name='item_encoder')
    self.hidden = mlp(hidden_units, 'item_mlp')
    self.out = tf.keras.layers.Dense(output_dim, name='item_embedding')

  @property
  def feature_names(self) -> tuple[str, ...]:
    return self.feature_space.item_tower_features

  def call(self, inputs, training=None):
    v = self.out(self.hidden(flatten_fields(self.encoder(inputs)), training=training))
    if not self.scenario_prior:
      return v
    popularity = [tf.cast(inputs[name], v.dtype)  # [B, S] each, log(1 + clicks)
                  for name in self.feature_space.popularity_features]
    return tf.concat([v] + popularity, axis=1)

  def get_config(self):
    return self._config(embedding_dim=self.embedding_dim, hidden_units=self.hidden_units)
