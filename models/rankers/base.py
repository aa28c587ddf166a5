"""The multi-task ranker interface and what every ranker shares: the field embeddings,
the semantic feature groups of the token rankers, the per-task towers, the loss and the
per-task metrics.

A ranker scores one exposure (user, item, scenario) with one logit per task:

    logits = ranker(features)                 [B, T], T = len(tasks), in `tasks` order
    L      = (1 / T) sum_t BCE(y_t, logits_t)  averaged over the batch     (MDL eq. 1)

`features` are the dense transformed features of FeatureSpace (models/features.py):
user_tower_features + item_tower_features, the raw scenario string included; the
labels y are a [B, T] float tensor of 0/1.
"""

from typing import Optional, Sequence

import tensorflow as tf

from core import feature_names as fnames
from models import features
from models.rankers.layers.target_attention import TargetAttention
from models.towers.encoders import flatten_fields
from models.towers.encoders import ItemEncoder
from models.towers.encoders import UserEncoder

# The semantic feature groups (MDL section 3.1.1: "we manually group features into
# several semantically coherent clusters with domain knowledge"), in token order.
USER_ID, USER_FIELDS, HISTORY, ITEM_ID, ITEM_FIELDS, SCENARIO = (
    'user_id', 'user_fields', 'history', 'item_id', 'item_fields', 'scenario')
FEATURE_GROUPS = (USER_ID, USER_FIELDS, HISTORY, ITEM_ID, ITEM_FIELDS, SCENARIO)


def multi_task_binary_cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
  """Per example, the mean over the T tasks of BCE from logits: [B, T], [B, T] -> [B].

  A Keras loss: Keras then takes the (sample-weighted) batch mean, so the compiled loss
  is mean_b mean_t BCE(y[b, t], logits[b, t]) (MDL eq. 1 up to the constant 1 / (B T)).
  """
  return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
      labels=tf.cast(labels, logits.dtype), logits=logits), axis=-1)


# The item popularity features the rankers read: none yet. The ingestion's scenario_clicks
# are point in time (the clicks strictly before each exposure), so clicked and unclicked
# exposures of an item at one moment show the same count and the feature no longer leaks
# the label (it did when a training example's count was the train window's total less its
# own click); whether it helps the rankers is not measured yet.
POPULARITY_FEATURES: tuple[str, ...] = ()


class TaskAUC(tf.keras.metrics.AUC):
  """ROC AUC of one task's column of [B, T] labels and logits (sigmoid taken here)."""

  def __init__(self, task_index: int, name: Optional[str] = None, **kwargs):
    kwargs.setdefault('from_logits', True)
    super().__init__(name=name, **kwargs)
    self.task_index = task_index

  def update_state(self, y_true, y_pred, sample_weight=None):
    return super().update_state(y_true[:, self.task_index], y_pred[:, self.task_index],
                                sample_weight)

  def get_config(self):
    config = super().get_config()
    config['task_index'] = self.task_index
    return config


def task_metrics(tasks: Sequence[str]) -> list:
  """One AUC per task, named auc_<task>."""
  return [TaskAUC(t, name=f'auc_{task}') for t, task in enumerate(tasks)]


def mlp(units: Sequence[int], dropout: float, name: str) -> tf.keras.Sequential:
  """Dense + ReLU (+ Dropout when dropout > 0) layers; the identity for no units."""
  layers = []
  for i, n in enumerate(units):
    layers.append(tf.keras.layers.Dense(n, activation='relu', name=f'dense_{i}'))
    if dropout:
      layers.append(tf.keras.layers.Dropout(dropout, name=f'dropout_{i}'))
  return tf.keras.Sequential(layers, name=name)


class TaskTowers(tf.keras.layers.Layer):
  """One MLP tower and logit per task over a shared input (or one input per task):

      logit_t = w_t^T MLP_t(x_t) + b_t        x_t = x for every t, or inputs[t]

  Shapes: x [B, D] (or a list of T of them) -> logits [B, T].
  """

  def __init__(self, num_tasks: int, units: Sequence[int] = (64,), dropout: float = 0.0,
               **kwargs):
    super().__init__(**kwargs)
    self.num_tasks = num_tasks
    self.units = tuple(units)
    self.dropout = dropout
    self.towers = [mlp(self.units, dropout, f'tower_{t}') for t in range(num_tasks)]
    self.logits = [tf.keras.layers.Dense(1, name=f'logit_{t}') for t in range(num_tasks)]

  def hidden(self, inputs, training=None) -> list:
    """MLP_t(x_t) [B, units[-1]] of every task."""
    per_task = inputs if isinstance(inputs, (list, tuple)) else [inputs] * self.num_tasks
    return [tower(x, training=training) for tower, x in zip(self.towers, per_task)]

  def call(self, inputs, training=None):
    hidden = self.hidden(inputs, training)
    return tf.concat([logit(h) for logit, h in zip(self.logits, hidden)], axis=1)  # [B, T]

  def get_config(self):
    config = super().get_config()
    config.update({'num_tasks': self.num_tasks, 'units': self.units,
                   'dropout': self.dropout})
    return config


class MultiTaskRanker(tf.keras.Model):
  """A multi-scenario, multi-task ranking model: joint features -> one logit per task.

  call(features, training) -> logits [B, T] in `tasks` order; p_t = sigmoid(logit_t).
  Every ranker embeds its input with the encoders the two-tower models and the teacher
  share (models/towers/encoders.py; the behaviour sequence mean-pooled):

      user fields [B, F_u, e] (user id among them), pooled history [B, e], e_s [B, e],
      item fields [B, F_i, e] (item id among them)

  With `history_attention` (beyond the papers' mean-pooled sequence; ranker.
  history_attention) the candidate also attends over the sequence (DIN's activation unit,
  layers/target_attention.py, the candidate's item id embedding as the query), and that
  candidate-aware history h [B, e] joins the pooled one: one more field in `all_fields`,
  and group (3) becomes [pooled ; h] [B, 2e] (the number of tokens stays).

  `encode` gives them by name; `all_fields` stacks them [B, F_u + 2 + F_i, e] (the
  input of the MLP rankers and of MTmixAtt's AutoToken); `feature_groups` gives the
  token rankers' semantic groups (FEATURE_GROUPS):

      (1) user id   (2) the other user fields   (3) the pooled behaviour sequence
      (4) item id   (5) the other item fields   (6) the scenario embedding e_s

  each group's field embeddings flattened, e_j [B, n_j e]: FeatureTokenizer projects
  them to N_f tokens of width d (MDL eq. 3). A feature space without other user (or
  item) fields has no group (2) (or (5)): the empty group is dropped, not zero-filled,
  so N_f is 5 or 4 (`group_names` lists those kept). The user and item ids are found by
  name (core.feature_names), so their place among the fields does not matter.

  `compile` defaults to the multi-task BCE and one AUC per task (auc_<task>).
  Subclasses implement `call` and extend `get_config` with their own arguments;
  `from_config` reads the feature space back from its JSON.
  """

  def __init__(self, feature_space: features.FeatureSpace, tasks: Sequence[str],
               embedding_dim: int = 16, history_pooling: str = 'mean',
               history_attention: bool = False, **kwargs):
    super().__init__(**kwargs)
    tasks = tuple(tasks)
    if not tasks or len(set(tasks)) != len(tasks):
      raise ValueError(f'a ranker needs distinct task names; got {tasks}')
    for side, name in ((feature_space.user, fnames.USER_ID),
                       (feature_space.item, fnames.ITEM_ID)):
      if name not in side.names:
        raise ValueError(f'the feature space has no {name!r} field; a ranker needs it')
    self.feature_space = feature_space
    self.tasks = tasks
    self.embedding_dim = embedding_dim
    self.history_pooling = history_pooling
    self.history_attention = history_attention
    if history_attention:
      self.target_attention = TargetAttention(name='target_attention')
    space_json = feature_space.to_json()
    self.user_encoder = UserEncoder(space_json, embedding_dim, history_pooling,
                                    name='user_encoder')
    self.item_encoder = ItemEncoder(space_json, embedding_dim, name='item_encoder')

  # ---- the interface ---------------------------------------------------------------

  @property
  def num_tasks(self) -> int:
    return len(self.tasks)

  @property
  def num_scenarios(self) -> int:
    return len(self.feature_space.scenarios)

  def task_index(self, name: str) -> int:
    if name not in self.tasks:
      raise ValueError(f'{name!r} is not a task of this ranker; its tasks: '
                       f'{", ".join(self.tasks)}')
    return self.tasks.index(name)

  @property
  def feature_names(self) -> tuple[str, ...]:
    return (self.feature_space.user_tower_features +
            self.feature_space.item_tower_features)

  def compile(self, optimizer='adam', loss=None, metrics=None, **kwargs):
    """Keras' compile, the loss and metrics defaulting to multi_task_binary_cross_entropy
    and task_metrics(tasks)."""
    super().compile(optimizer=optimizer,
                    loss=loss or multi_task_binary_cross_entropy,
                    metrics=task_metrics(self.tasks) if metrics is None else metrics,
                    **kwargs)

  # ---- the shared encoding ----------------------------------------------------------

  def encode(self, inputs, return_sequence: bool = False) -> dict:
    """The field embeddings by name:

        user_fields [B, F_u, e], history [B, e], scenario_embedding [B, e],
        item_fields [B, F_i, e], scenario_index [B] int (len(scenarios) for a value the
        mapping does not know), with return_sequence `sequence`: (v [B, L, e],
        mask [B, L], the clicks' scenario index [B, L]), and with history_attention
        `attended_history` [B, e].
    """
    encoded = self.user_encoder(inputs, return_sequence=(return_sequence or
                                                         self.history_attention))
    fields, e_s, scenario_index = encoded[:3]
    result = {'user_fields': fields[:, :-2], 'history': fields[:, -2],
              'scenario_embedding': e_s, 'scenario_index': scenario_index,
              'item_fields': self.item_encoder(inputs)}
    if self.history_attention:
      values, mask, _ = encoded[3]
      item_id = self.feature_space.item.names.index(fnames.ITEM_ID)
      result['attended_history'] = self.target_attention(
          [result['item_fields'][:, item_id], values, mask])
    if return_sequence:
      result['sequence'] = encoded[3]
    return result

  @staticmethod
  def all_fields(encoded: dict) -> tf.Tensor:
    """[B, F_u + 2 (+ 1) + F_i, e]: user fields, pooled history (and the attended one),
    e_s, item fields."""
    history = [encoded['history'][:, None]]
    if 'attended_history' in encoded:
      history.append(encoded['attended_history'][:, None])
    return tf.concat([encoded['user_fields'], *history,
                      encoded['scenario_embedding'][:, None], encoded['item_fields']],
                     axis=1)

  def group_names(self, include_scenario: bool = True) -> tuple[str, ...]:
    """The non-empty semantic groups, in token order."""
    names = []
    for name in FEATURE_GROUPS:
      if name == USER_FIELDS and len(self.feature_space.user.names) == 1:
        continue  # the user id is the only user field: no group (2)
      if name == ITEM_FIELDS and len(self.feature_space.item.names) == 1:
        continue
      if name == SCENARIO and not include_scenario:
        continue
      names.append(name)
    return tuple(names)

  def feature_groups(self, encoded: dict, include_scenario: bool = True) -> list:
    """e_j [B, n_j e] of each group of group_names(include_scenario), in that order."""
    user_id = self.feature_space.user.names.index(fnames.USER_ID)
    item_id = self.feature_space.item.names.index(fnames.ITEM_ID)
    user, item = encoded['user_fields'], encoded['item_fields']

    def others(fields, index):  # every field but `index`, flattened [B, (F - 1) e]
      return flatten_fields(tf.concat([fields[:, :index], fields[:, index + 1:]], axis=1))

    groups = []
    for name in self.group_names(include_scenario):
      if name == USER_ID:
        groups.append(user[:, user_id])  # [B, e]
      elif name == USER_FIELDS:
        groups.append(others(user, user_id))  # [B, (F_u - 1) e]
      elif name == HISTORY:
        groups.append(tf.concat([encoded['history'], encoded['attended_history']], axis=1)
                      if 'attended_history' in encoded else encoded['history'])  # [B, (2)e]
      elif name == ITEM_ID:
        groups.append(item[:, item_id])  # [B, e]
      elif name == ITEM_FIELDS:
        groups.append(others(item, item_id))  # [B, (F_i - 1) e]
      else:
        groups.append(encoded['scenario_embedding'])  # e_s [B, e]
    return groups

  # ---- configuration ----------------------------------------------------------------

  def get_config(self):
    return {'name': self.name, 'feature_space': self.feature_space.to_json(),
            'tasks': list(self.tasks), 'embedding_dim': self.embedding_dim,
            'history_pooling': self.history_pooling,
            'history_attention': self.history_attention}

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    config['feature_space'] = features.FeatureSpace.from_json(config['feature_space'])
    config['tasks'] = tuple(config['tasks'])
    return cls(**config)


def check_token_width(token_dim: int, num_tokens: int, model: str) -> None:
  """RankMixer's token mixing splits each of T tokens into T heads: d must be a
  multiple of T."""
  if token_dim % num_tokens:
    raise ValueError(f'{model}: token_dim ({token_dim}) must be a multiple of the number '
                     f'of feature tokens ({num_tokens}): RankMixer token mixing splits each '
                     f'token into one head per token')
