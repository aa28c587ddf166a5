"""The model-input contract: which transformed features each tower reads, and their shapes.

tf.Transform (models/preprocessing.py) turns raw examples into integer ids (vocabulary
index, OOV buckets at the end) and scaled floats. `FeatureSpace` records, for one trained
model, every feature a tower reads with its vocabulary size and, for lists, the fixed
length; `dense_model_inputs` gives the models dense tensors of exactly those shapes:

    categorical             int64   [B]      vocabulary index
    multi-valued            int64   [B, M]   indices, padded with -1
    numeric                 float32 [B]      scaled value
    numeric list            float32 [B, S]   e.g. scenario_clicks, one value per scenario
                                             (item_outcomes: [B, 1 + T])
    history_item_id         int64   [B, L]   item vocabulary indices, padded with -1
    history_scenario        string  [B, L]   raw scenario values, padded with ''
    scenario                string  [B]      raw scenario value (mapped inside the model)

Scenario values stay raw strings: the models map them with the ingestion's scenario
mapping, which is part of the model, so serving takes the raw value as users have it.
"""

import dataclasses
import json
from typing import Mapping, Optional, Sequence

import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from core import dataset_spec as ds
from core import feature_names as fnames

PADDING_ID = -1  # list padding in id features
PADDING_SCENARIO = ''  # list padding in history_scenario
# Training batches only (models/data.py): for each row, the row of the anchor whose user
# features it repeats (an anchor's own row for the anchors, which come first). With it
# the student runs its user tower once per anchor (models/two_tower.py).
USER_ROW = '__user_row'


@dataclasses.dataclass(frozen=True)
class Categorical:
  name: str
  vocab_size: int  # ids are 0 .. vocab_size - 1, OOV buckets included
  max_values: int = 0  # 0: one value per example; M > 0: a list padded to M


@dataclasses.dataclass(frozen=True)
class NumericList:
  name: str
  length: int  # values per example, padded with 0.0


@dataclasses.dataclass(frozen=True)
class TowerInputs:
  categorical: tuple[Categorical, ...]
  numeric: tuple[str, ...]
  numeric_lists: tuple[NumericList, ...] = ()

  @property
  def names(self) -> tuple[str, ...]:
    return (tuple(c.name for c in self.categorical) + self.numeric +
            tuple(n.name for n in self.numeric_lists))


@dataclasses.dataclass(frozen=True)
class FeatureSpace:
  """Every transformed feature a model reads, with vocabulary sizes and list lengths."""
  user: TowerInputs  # user features, user id included
  item: TowerInputs  # item features, item id included
  item_vocab_size: int  # for the behaviour sequence (same vocabulary as item_id)
  history_length: int  # L
  scenarios: tuple[str, ...]  # raw values in index order (the scenario mapping)

  @property
  def user_tower_features(self) -> tuple[str, ...]:
    return self.user.names + (fnames.HISTORY_ITEM_ID, fnames.HISTORY_SCENARIO, fnames.SCENARIO)

  @property
  def item_tower_features(self) -> tuple[str, ...]:
    return self.item.names

  @property
  def popularity_features(self) -> tuple[str, ...]:
    """The item's popularity lists ([S] each, log(1 + clicks)) the model has."""
    return tuple(n.name for n in self.item.numeric_lists
                 if n.name in fnames.POPULARITY_FEATURES)

  def tensor_specs(self, names: tuple[str, ...],
                   batch_size: Optional[int] = None) -> dict[str, tf.TensorSpec]:
    """The dense input signature of `names` (see the table above)."""
    lists = self.list_lengths()
    numeric = set(self.user.numeric + self.item.numeric) | {
        n.name for n in self.user.numeric_lists + self.item.numeric_lists}
    specs = {}
    for name in names:
      shape = [batch_size, lists[name]] if name in lists else [batch_size]
      dtype = (tf.string if name in (fnames.SCENARIO, fnames.HISTORY_SCENARIO) else
               tf.float32 if name in numeric else tf.int64)
      specs[name] = tf.TensorSpec(shape, dtype, name=name)
    return specs

  def list_lengths(self) -> dict[str, int]:
    """Feature name -> fixed length, for every list feature."""
    lengths = {c.name: c.max_values for c in self.user.categorical + self.item.categorical
               if c.max_values}
    lengths.update({n.name: n.length for n in self.user.numeric_lists +
                    self.item.numeric_lists})
    lengths[fnames.HISTORY_ITEM_ID] = lengths[fnames.HISTORY_SCENARIO] = self.history_length
    return lengths

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self))

  @classmethod
  def from_json(cls, text: str) -> 'FeatureSpace':
    raw = json.loads(text)
    tower = lambda t: TowerInputs(tuple(Categorical(**c) for c in t['categorical']),
                                  tuple(t['numeric']),
                                  tuple(NumericList(**n) for n in t['numeric_lists']))
    return cls(user=tower(raw['user']), item=tower(raw['item']),
               item_vocab_size=raw['item_vocab_size'],
               history_length=raw['history_length'], scenarios=tuple(raw['scenarios']))

  @classmethod
  def build(cls, spec: ds.DatasetSpec, vocab_sizes: Mapping[str, int],
            scenarios: tuple[str, ...], schema: schema_pb2.Schema,
            popularity_features: Sequence[str] = (),
            item_outcomes: bool = False) -> 'FeatureSpace':
    """From the dataset spec, the vocabulary sizes (OOV included) and the curated schema.

    List lengths are the schema's value_count.max: the curated schema is the contract that
    no longer list passes validation. The item tower reads the `popularity_features`
    (model.popularity_features: `scenario_clicks`, `scenario_recent_clicks`), one value per
    served scenario each; with `item_outcomes` (the rankers' ranker.item_outcome_features)
    it also reads `item_outcomes`, one value for the exposures and one per task of the
    spec (logs.tasks).
    """
    max_values = {f.name: f.value_count.max for f in schema.feature
                  if f.HasField('value_count')}

    def tower(id_name: str, table: ds.FeatureTableSpec) -> TowerInputs:
      categorical = [Categorical(id_name, vocab_sizes[id_name])]
      for f in table.features:
        if f.is_numeric:
          continue
        multi = f.kind is ds.FeatureKind.MULTI_CATEGORICAL
        categorical.append(Categorical(f.name, vocab_sizes[f.name],
                                       max_values[f.name] if multi else 0))
      numeric = tuple(f.name for f in table.features if f.is_numeric)
      lists = ()
      if id_name == fnames.ITEM_ID:
        lists = tuple(NumericList(name, len(scenarios)) for name in
                      fnames.POPULARITY_FEATURES if name in popularity_features)
        if item_outcomes:
          lists += (NumericList(fnames.ITEM_OUTCOMES, 1 + len(spec.logs.task_names)),)
      return TowerInputs(tuple(categorical), numeric, lists)

    return cls(user=tower(fnames.USER_ID, spec.users), item=tower(fnames.ITEM_ID, spec.items),
               item_vocab_size=vocab_sizes[fnames.ITEM_ID],
               history_length=max_values[fnames.HISTORY_ITEM_ID], scenarios=scenarios)


def dense_model_inputs(features: Mapping[str, tf.Tensor], space: FeatureSpace,
                       names: Optional[tuple[str, ...]] = None) -> dict[str, tf.Tensor]:
  """Transformed features (dense, sparse or ragged) -> the dense shapes above.

  Lists longer than their fixed length keep their first values.
  """
  lengths = space.list_lengths()
  numeric_lists = {n.name for n in space.user.numeric_lists + space.item.numeric_lists}
  result = {}
  for name in names or tuple(features):
    value = features[name]
    if name in lengths:
      pad = (PADDING_SCENARIO if name == fnames.HISTORY_SCENARIO else
             0.0 if name in numeric_lists else PADDING_ID)
      result[name] = _fixed_length(value, lengths[name], pad)
    else:
      result[name] = _scalar(value)
  return result


def _fixed_length(value, length: int, pad) -> tf.Tensor:
  if isinstance(value, tf.SparseTensor):
    value = tf.sparse.to_dense(value, default_value=pad)
  elif isinstance(value, tf.RaggedTensor):
    value = value.to_tensor(default_value=pad)
  value = value[:, :length]
  padding = tf.maximum(length - tf.shape(value)[1], 0)
  value = tf.pad(value, [[0, 0], [0, padding]], constant_values=pad)
  return tf.ensure_shape(value, [None, length])


def _scalar(value) -> tf.Tensor:
  if isinstance(value, tf.SparseTensor):
    value = tf.sparse.to_dense(value)
  if value.shape.rank == 2:
    value = tf.squeeze(value, axis=1)
  return value
