"""Exported SavedModels: towers (and the teacher) that take raw features.

Each export bundles the tf.Transform graph with the Keras model, so serving sends raw
values as they are in the logs. Signatures:

  user tower   user_embedding(user_id, <user features>, history_item_id, history_scenario,
                              scenario) -> {'embedding': [B, d]}
               user_embedding_examples(examples: serialized tf.Example [B]) -> same
  item tower   item_embedding(item_id, <item features>) -> {'embedding': [B, d]}
               item_embedding_examples(examples) -> same
  teacher      teacher_logit_examples(examples) -> {'logit': [B]}
  ranker       ranker_probabilities(<user and item features>, scenario)
                   -> {<task>: [B] probability, one per task}
               ranker_probabilities_examples(examples) -> same

Raw inputs: one value per example is a [B] tensor (string, or float32 for numeric
features); lists (history, multi-valued features) are [B, N] padded with '' (ignored).
`serving_default` is the raw-tensor signature. Unknown ids and categories map to the
vocabularies' OOV buckets.
"""

import json
import os

import tensorflow as tf
import tensorflow_transform as tft

from core import layout
from models import features


class _RawFeatureModel(tf.Module):
  """tf.Transform layer + Keras model, from raw features to the model's output."""

  def __init__(self, model: tf.keras.Model, tft_output: tft.TFTransformOutput,
               space: features.FeatureSpace, names: tuple[str, ...], output: str):
    super().__init__()
    self.model = model
    self.tft_layer = tft_output.transform_features_layer()  # tracks the vocabularies
    self._space = space
    self._names = names
    self._output = output
    raw_spec = tft_output.raw_feature_spec()
    self.raw_spec = {name: raw_spec[name] for name in names}

  def raw_tensor_specs(self) -> dict[str, tf.TensorSpec]:
    specs = {}
    for name, spec in self.raw_spec.items():
      shape = [None] if isinstance(spec, tf.io.FixedLenFeature) else [None, None]
      specs[name] = tf.TensorSpec(shape, spec.dtype, name=name)
    return specs

  def _run(self, raw: dict) -> dict:
    transformed = self.tft_layer(raw)
    dense = features.dense_model_inputs(transformed, self._space, self._names)
    return {self._output: self.model(dense, training=False)}

  def from_raw_tensors(self, **inputs) -> dict:
    raw = {}
    for name, spec in self.raw_spec.items():
      value = inputs[name]
      raw[name] = (tf.reshape(value, [-1, 1]) if isinstance(spec, tf.io.FixedLenFeature)
                   else tf.sparse.from_dense(value))  # drops '' padding
    return self._run(raw)

  def from_examples(self, examples):
    return self._run(tf.io.parse_example(examples, self.raw_spec))


def examples_function(model: tf.keras.Model, tft_output: tft.TFTransformOutput,
                      space: features.FeatureSpace, names: tuple[str, ...],
                      output: str = layout.EMBEDDING_OUTPUT):
  """The exported `*_examples` signature's computation for a model still in memory:
  serialized raw tf.Examples [B] -> {output: [B, ...]}, through the same transform graph
  (validation during training scores exactly what will be served)."""
  module = _RawFeatureModel(model, tft_output, space, names, output)
  return tf.function(module.from_examples,
                     input_signature=[tf.TensorSpec([None], tf.string, name='examples')])


def _save(module: _RawFeatureModel, path: str, raw_name: str, examples_name: str) -> None:
  raw_fn = tf.function(module.from_raw_tensors).get_concrete_function(
      **module.raw_tensor_specs())
  examples_fn = tf.function(module.from_examples).get_concrete_function(
      tf.TensorSpec([None], tf.string, name='examples'))
  tf.saved_model.save(module, path, signatures={
      raw_name: raw_fn, examples_name: examples_fn, 'serving_default': raw_fn})


def export_towers(user_tower: tf.keras.Model, item_tower: tf.keras.Model,
                  tft_output: tft.TFTransformOutput, space: features.FeatureSpace,
                  directory: str) -> None:
  """Writes <directory>/user_tower, <directory>/item_tower and feature_space.json."""
  _save(_RawFeatureModel(user_tower, tft_output, space, space.user_tower_features,
                         layout.EMBEDDING_OUTPUT),
        os.path.join(directory, layout.USER_TOWER_DIR), layout.USER_SIGNATURE,
        layout.USER_EXAMPLES_SIGNATURE)
  _save(_RawFeatureModel(item_tower, tft_output, space, space.item_tower_features,
                         layout.EMBEDDING_OUTPUT),
        os.path.join(directory, layout.ITEM_TOWER_DIR), layout.ITEM_SIGNATURE,
        layout.ITEM_EXAMPLES_SIGNATURE)
  with tf.io.gfile.GFile(os.path.join(directory, layout.FEATURE_SPACE_FILE), 'w') as f:
    f.write(space.to_json())


def export_teacher(teacher: tf.keras.Model, tft_output: tft.TFTransformOutput,
                   space: features.FeatureSpace, directory: str) -> None:
  """The teacher with a raw tf.Example signature, for evaluation (AUC per scenario)."""
  module = _RawFeatureModel(teacher, tft_output, space, teacher.feature_names,
                            layout.LOGIT_OUTPUT)
  examples_fn = tf.function(module.from_examples).get_concrete_function(
      tf.TensorSpec([None], tf.string, name='examples'))
  tf.saved_model.save(module, directory,
                      signatures={layout.TEACHER_EXAMPLES_SIGNATURE: examples_fn})


class _RawFeatureRanker(_RawFeatureModel):
  """A ranker's logits [B, T] -> one probability [B] per task, under the task's name."""

  def __init__(self, model: tf.keras.Model, tft_output: tft.TFTransformOutput,
               space: features.FeatureSpace, tasks: tuple[str, ...]):
    super().__init__(model, tft_output, space, model.feature_names, '')
    self._tasks = tuple(tasks)

  def _run(self, raw: dict) -> dict:
    transformed = self.tft_layer(raw)
    dense = features.dense_model_inputs(transformed, self._space, self._names)
    probabilities = tf.sigmoid(self.model(dense, training=False))
    return {task: probabilities[:, i] for i, task in enumerate(self._tasks)}


def export_ranker(ranker: tf.keras.Model, tft_output: tft.TFTransformOutput,
                  space: features.FeatureSpace, tasks: tuple[str, ...],
                  directory: str) -> None:
  """Writes the ranker's SavedModel (raw-feature and tf.Example signatures) to
  `directory`, with feature_space.json and tasks.json."""
  _save(_RawFeatureRanker(ranker, tft_output, space, tasks), directory,
        layout.RANKER_SIGNATURE, layout.RANKER_EXAMPLES_SIGNATURE)
  with tf.io.gfile.GFile(os.path.join(directory, layout.FEATURE_SPACE_FILE), 'w') as f:
    f.write(space.to_json())
  with tf.io.gfile.GFile(os.path.join(directory, layout.RANKER_TASKS_FILE), 'w') as f:
    json.dump(list(tasks), f)
