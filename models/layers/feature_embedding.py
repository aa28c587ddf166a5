"""Embedding of a tower's input features (section 3.3, "Embedding Layer")."""

from typing import Sequence

import tensorflow as tf

from models.layers.masked_pooling import MaskedPooling


class FeatureEmbedding(tf.keras.layers.Layer):
  """One `dim`-vector per feature field, stacked: [B, F, dim].

      categorical (sparse)   e = W_m onehot(f)      an Embedding row
      multi-valued           e = masked mean of the Embedding rows of its values (-1: pad)
      numeric (dense)        e = W_m f              a learned dim-vector times the value
      numeric list           e = f W_m              f [S] values, W_m [S, dim]

  Args:
    categorical: (name, vocabulary size, max_values) per categorical field; max_values 0
      for one value per example, M for a list [B, M].
    numeric: names of numeric fields.
    dim: the embedding dimension (16 in the paper).
    numeric_lists: (name, length) per numeric list field [B, length].
  Call with the feature dict; fields come out in the order categorical, numeric, numeric
  lists.
  """

  def __init__(self, categorical: Sequence[Sequence], numeric: Sequence[str], dim: int,
               numeric_lists: Sequence[Sequence] = (), **kwargs):
    super().__init__(**kwargs)
    self.categorical = [tuple(c) for c in categorical]
    self.numeric = list(numeric)
    self.numeric_lists = [tuple(n) for n in numeric_lists]
    self.dim = dim
    self._embeddings = {
        name: tf.keras.layers.Embedding(vocab_size, dim, name=f'{name}_embedding')
        for name, vocab_size, _ in self.categorical}
    self._pooling = MaskedPooling('mean')

  @property
  def num_fields(self) -> int:
    return len(self.categorical) + len(self.numeric) + len(self.numeric_lists)

  def build(self, input_shape):
    self.numeric_kernel = self.add_weight(  # W_m for each numeric field [N, dim]
        name='numeric_kernel', shape=(len(self.numeric), self.dim),
        initializer='glorot_uniform')
    self.numeric_list_kernels = [  # W_m [S, dim] for each numeric list field
        self.add_weight(name=f'{name}_kernel', shape=(length, self.dim),
                        initializer='glorot_uniform')
        for name, length in self.numeric_lists]
    super().build(input_shape)

  def call(self, features):
    fields = []
    for name, _, max_values in self.categorical:
      ids = tf.cast(features[name], tf.int64)
      if max_values:
        mask = ids >= 0
        rows = self._embeddings[name](tf.maximum(ids, 0))  # [B, M, dim]
        fields.append(self._pooling([rows, mask]))
      else:
        fields.append(self._embeddings[name](ids))  # [B, dim]
    if self.numeric:
      values = tf.stack([tf.cast(features[n], tf.float32) for n in self.numeric], axis=1)
      fields += tf.unstack(values[:, :, None] * self.numeric_kernel, axis=1)
    for (name, _), kernel in zip(self.numeric_lists, self.numeric_list_kernels):
      fields.append(tf.matmul(tf.cast(features[name], tf.float32), kernel))
    return tf.stack(fields, axis=1)  # [B, F, dim]

  def get_config(self):
    config = super().get_config()
    config.update({'categorical': self.categorical, 'numeric': self.numeric,
                   'dim': self.dim, 'numeric_lists': self.numeric_lists})
    return config


class ScenarioEmbedding(tf.keras.layers.Layer):
  """Raw scenario value -> (index, e_s) with the ingestion's scenario mapping.

  `scenarios` lists the raw values in index order; a value outside it (only possible in a
  behaviour sequence: a click in a scenario the model does not serve) gets index
  len(scenarios), the "other scenarios" row. Shapes: any [...] strings -> index [...],
  e_s [..., dim].
  """

  def __init__(self, scenarios: Sequence[str], dim: int, **kwargs):
    super().__init__(**kwargs)
    self.scenarios = list(scenarios)
    self.dim = dim
    self._table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(self.scenarios, tf.string),
            tf.range(len(self.scenarios), dtype=tf.int64)),
        default_value=len(self.scenarios))
    self._embedding = tf.keras.layers.Embedding(len(self.scenarios) + 1, dim,
                                                name='scenario_embedding')

  def index(self, scenario: tf.Tensor) -> tf.Tensor:
    return self._table.lookup(scenario)

  def call(self, scenario):
    index = self.index(scenario)
    return index, self._embedding(index)

  def get_config(self):
    config = super().get_config()
    config.update({'scenarios': self.scenarios, 'dim': self.dim})
    return config


class BehaviorSequenceEmbedding(tf.keras.layers.Layer):
  """The user's multi-scenario behaviour sequence -> one pooled vector [B, dim].

      v_l = Embedding_item(history_item_id[l]) + Embedding_scenario(history_scenario[l])
      e   = POOLING(v_1 .. v_L)  over positions whose item id is not padding (-1)

  Call with `layer([history_item_id [B, L], history_scenario_index [B, L]])`; with
  `return_sequence=True` it returns (e [B, dim], v [B, L, dim], mask [B, L]) for the
  towers that attend over the sequence (the default output and the weights are the same).
  """

  def __init__(self, item_vocab_size: int, num_scenarios: int, dim: int,
               pooling: str = 'mean', **kwargs):
    super().__init__(**kwargs)
    self.item_vocab_size = item_vocab_size
    self.num_scenarios = num_scenarios
    self.dim = dim
    self.pooling = pooling
    self._items = tf.keras.layers.Embedding(item_vocab_size, dim, name='history_item')
    self._scenarios = tf.keras.layers.Embedding(num_scenarios + 1, dim,
                                                name='history_scenario')
    self._pool = MaskedPooling(pooling)

  def call(self, inputs, return_sequence: bool = False):
    item_ids, scenario_index = inputs
    item_ids = tf.cast(item_ids, tf.int64)
    mask = item_ids >= 0  # [B, L]
    values = self._items(tf.maximum(item_ids, 0)) + self._scenarios(scenario_index)
    pooled = self._pool([values, mask])  # [B, dim]
    if return_sequence:
      return pooled, values, mask
    return pooled

  def get_config(self):
    config = super().get_config()
    config.update({'item_vocab_size': self.item_vocab_size,
                   'num_scenarios': self.num_scenarios, 'dim': self.dim,
                   'pooling': self.pooling})
    return config
