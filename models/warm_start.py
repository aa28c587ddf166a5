"""Warm start: a trained model's weights (a tower's, a teacher's) carried into a new model
of the same architecture whose vocabularies may have changed (a refresh's new users and
items).

    saved (save):     every weight in model.weights order with its name and shape, the
                      vocabulary behind each embedding table (tokens in id order; the OOV
                      buckets follow), the number of OOV buckets, the scenarios in order
    loaded (restore): the same weights by name (Keras's layer numbers aside), the same
                      scenarios and OOV buckets, else refused; weight j <- saved weight j:
                        an embedding table of a vocabulary (`<feature>_embedding`, the
                        history's item table, MDL's scenario and task id tables):
                          row of a known token t  = the saved row of t
                          row of a new token t    = the saved row of the OOV bucket t
                                                    hashed to (what served t so far)
                          OOV bucket b            = the saved bucket b
                        any other weight: copied; its shape must be the same

The rows are remapped with tf.keras.utils.warmstart_embedding_matrix (Keras's utility for
a vocabulary that grew or was reordered). Keras's load_weights and TFX's base_model warm
start restore equal shapes only, so they cannot take a grown vocabulary; the weights are
kept in an .npz by position rather than in a tf.train.Checkpoint because the remap needs
every saved matrix as an array next to its vocabulary.
"""

import io
import json
import os
import re
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from core import dataset_spec as ds
from core import errors
from core import feature_names as fnames
from models import preprocessing

WEIGHTS_FILE = 'weights.npz'
MANIFEST_FILE = 'weights.json'
# An embedding table's layer: FeatureEmbedding names it `<feature>_embedding` (and
# ScenarioEmbedding `scenario_embedding`, which has no vocabulary: the scenarios are
# checked whole), the behaviour sequence's item table is `history_item` (item ids).
_TABLE = re.compile(r'(?:^|/)([A-Za-z0-9_]+?)(_embedding|(?<=history)_item)/embeddings')
# MDL's scenario and task id tables (models/rankers/mdl.py, a ranker as the teacher).
_ID_TABLE = re.compile(r'(?:^|/)(?:scenario|task)_(user_id|item_id)/embeddings')
# Keras numbers unnamed layers per process (dense_3): names compare without the numbers.
_LAYER_NUMBER = re.compile(r'_\d+(?=/|:|$)')


class WarmStartMismatchError(errors.InputError):
  """The saved model does not fit the new one (another architecture, feature set or
  scenario order), or there is no saved model."""


def vocabularies(tft_output: tft.TFTransformOutput,
                 spec: ds.DatasetSpec) -> dict[str, list[str]]:
  """Feature name -> the token of each id of a Transform's vocabularies, in id order."""
  return {name: [token.decode('utf-8', 'backslashreplace')
                 for token in tft_output.vocabulary_by_name(name)]
          for name in preprocessing.vocabulary_names(spec)}


def table_vocabulary(variable_name: str) -> str:
  """The vocabulary an embedding variable is indexed by (else '')."""
  match = _ID_TABLE.search(variable_name)
  if match:
    return match.group(1)
  match = _TABLE.search(variable_name)
  if not match:
    return ''
  return fnames.ITEM_ID if match.group(2) == '_item' else match.group(1)


def save(model: tf.keras.layers.Layer, vocabularies: Mapping[str, Sequence[str]],
         num_oov_buckets: int, scenarios: Sequence[str], directory: str) -> None:
  """Writes `model`'s weights, the `vocabularies` (feature -> tokens in id order; the
  OOV buckets follow) its tables are indexed by, and the scenarios in index order."""
  directory = os.fspath(directory)
  tf.io.gfile.makedirs(directory)
  weights = model.weights
  buffer = io.BytesIO()
  np.savez(buffer, **{f'w{j}': w.numpy() for j, w in enumerate(weights)})
  with tf.io.gfile.GFile(os.path.join(directory, WEIGHTS_FILE), 'wb') as f:
    f.write(buffer.getvalue())
  used = {table_vocabulary(w.name) for w in weights} & set(vocabularies)
  manifest = {'weights': [{'name': w.name, 'shape': list(w.shape)} for w in weights],
              'vocabularies': {name: list(vocabularies[name]) for name in sorted(used)},
              'num_oov_buckets': num_oov_buckets, 'scenarios': list(scenarios)}
  with tf.io.gfile.GFile(os.path.join(directory, MANIFEST_FILE), 'w') as f:
    json.dump(manifest, f)


def restore(model: tf.keras.layers.Layer, vocabularies: Mapping[str, Sequence[str]],
            num_oov_buckets: int, scenarios: Sequence[str], directory: str) -> dict:
  """Sets `model`'s weights from `save`'s files in `directory`, each table remapped from
  the saved vocabulary to `vocabularies` (the new model's). A token the saved model did
  not know starts from the saved row of the OOV bucket it hashed to (what served it so
  far). Returns per vocabulary the ids kept and the ids new, for the training summary."""
  directory = os.fspath(directory)
  path = os.path.join(directory, MANIFEST_FILE)
  if not tf.io.gfile.exists(path):
    raise WarmStartMismatchError(
        f'no saved weights in {directory} ({MANIFEST_FILE}): warm start from a model '
        f'trained by this version of the Trainer, or train from scratch')
  with tf.io.gfile.GFile(path) as f:
    manifest = json.load(f)
  with tf.io.gfile.GFile(os.path.join(directory, WEIGHTS_FILE), 'rb') as f:
    saved = np.load(io.BytesIO(f.read()))
  arrays = [saved[f'w{j}'] for j in range(len(manifest['weights']))]
  fix = ' Train from scratch (no warm start) after changing the model or the data.'
  if list(scenarios) != manifest['scenarios']:
    raise WarmStartMismatchError(
        f'the model in {directory} was trained on the scenarios {manifest["scenarios"]} '
        f'(in index order), this one on {list(scenarios)}.{fix}')
  if num_oov_buckets != manifest['num_oov_buckets']:
    raise WarmStartMismatchError(
        f'the model in {directory} has {manifest["num_oov_buckets"]} OOV buckets per '
        f'vocabulary, this one {num_oov_buckets} (transform.num_oov_buckets).{fix}')
  weights = model.weights
  names = [_LAYER_NUMBER.sub('', w.name) for w in weights]
  saved_names = [_LAYER_NUMBER.sub('', e['name']) for e in manifest['weights']]
  if names != saved_names:
    differ = next((a, b) for a, b in zip(names + [''], saved_names + ['']) if a != b)
    raise WarmStartMismatchError(
        f'the model in {directory} has other weights ({len(saved_names)}; first '
        f'different: {differ[1] or "none"} saved, {differ[0] or "none"} now): another '
        f'architecture or feature set.{fix}')
  counts = {}
  for weight, array in zip(weights, arrays):
    vocabulary = table_vocabulary(weight.name)
    if vocabulary in manifest['vocabularies'] and vocabulary in vocabularies:
      value, counts[vocabulary] = _remapped(
          array, manifest['vocabularies'][vocabulary], list(vocabularies[vocabulary]),
          num_oov_buckets, weight)
    elif tuple(array.shape) == tuple(weight.shape):
      value = array
    else:
      raise WarmStartMismatchError(
          f'{weight.name} has shape {tuple(weight.shape)}, the saved one '
          f'{tuple(array.shape)}: another architecture.{fix}')
    weight.assign(value)
  return counts


def _remapped(array: np.ndarray, base: list[str], new: list[str], num_oov_buckets: int,
              weight: tf.Variable) -> tuple[np.ndarray, dict]:
  """The new table: rows of known tokens and the OOV buckets from `array`, a new token's
  row from the saved OOV bucket it hashed to (tft.apply_vocabulary's
  to_hash_bucket_fast), else from `weight` (no OOV buckets)."""
  if len(base) + num_oov_buckets != array.shape[0] or (
      len(new) + num_oov_buckets != weight.shape[0]):
    raise WarmStartMismatchError(
        f'{weight.name}: {array.shape[0]} saved rows for {len(base)} tokens, '
        f'{weight.shape[0]} rows for {len(new)} tokens now, {num_oov_buckets} OOV buckets')
  buckets = [f'\0oov{b}' for b in range(num_oov_buckets)]  # never a real token
  initial = weight.numpy()
  known = set(base)
  unknown = [i for i, token in enumerate(new) if token not in known]
  if unknown and num_oov_buckets:
    hashed = tf.strings.to_hash_bucket_fast([new[i] for i in unknown],
                                            num_oov_buckets).numpy()
    initial[unknown] = array[len(base) + hashed]
  value = tf.keras.utils.warmstart_embedding_matrix(
      base + buckets, new + buckets, tf.constant(array, weight.dtype),
      new_embeddings_initializer=tf.keras.initializers.Constant(initial))
  return value, {'kept': len(new) - len(unknown), 'new': len(unknown)}
