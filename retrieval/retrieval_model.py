"""A TensorFlow-native retrieval SavedModel: raw user features -> top-K item ids, scores.

The exported user tower (raw features -> embedding) followed by
tfrs.layers.factorized_top_k.ScaNN over the item embeddings, with the index's parameters.
Signature `retrieve(<the user tower's raw inputs>) -> {'item_ids': [B, k],
'scores': [B, k]}`. Saved with the Scann op namespace allowed; loading it needs
`import scann` (which registers the op) in the serving process.
"""

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from core import layout
from retrieval import scann_index


class _Retrieval(tf.Module):

  def __init__(self, user_tower, index: tfrs.layers.factorized_top_k.ScaNN):
    super().__init__()
    self.user_tower = user_tower
    self.index = index

  def retrieve(self, **raw_user_features):
    embedding = self.user_tower.signatures[layout.USER_SIGNATURE](
        **raw_user_features)[layout.EMBEDDING_OUTPUT]
    scores, item_ids = self.index(embedding)
    return {'item_ids': item_ids, 'scores': scores}


def save_retrieval_model(user_tower_dir: str, item_ids: np.ndarray,
                         embeddings: np.ndarray, params: scann_index.ScannParameters,
                         directory: str) -> None:
  user_tower = tf.saved_model.load(user_tower_dir)
  index = tfrs.layers.factorized_top_k.ScaNN(
      k=params.k, num_leaves=params.num_leaves,
      num_leaves_to_search=params.num_leaves_to_search,
      dimensions_per_block=params.dims_per_block,
      num_reordering_candidates=params.reorder_candidates)
  index.index(tf.constant(embeddings, tf.float32), tf.constant(item_ids))
  module = _Retrieval(user_tower, index)
  specs = user_tower.signatures[layout.USER_SIGNATURE].structured_input_signature[1]
  retrieve = tf.function(module.retrieve).get_concrete_function(**specs)
  tf.saved_model.save(
      module, directory,
      signatures={layout.RETRIEVE_SIGNATURE: retrieve, 'serving_default': retrieve},
      options=tf.saved_model.SaveOptions(namespace_whitelist=['Scann']))
