"""The MMoE ranker (Ma et al., KDD 2018; MDL's MMoE baseline): experts shared by the
tasks, one softmax gate per task."""

from typing import Sequence

import tensorflow as tf

from models import features
from models.rankers.base import mlp
from models.rankers.base import MultiTaskRanker
from models.rankers.base import TaskTowers
from models.towers.encoders import flatten_fields


class MMoERanker(MultiTaskRanker):
  """Multi-gate mixture of experts over all fields (scenario as the feature e_s):

      x      = flatten(all fields)                      [B, (F_u + 2 + F_i) e]
      f_k    = Expert_k(x)                              [B, u]   k = 1 .. K, MLP(hidden_units)
      g_t    = softmax(W_t x + b_t)                     [B, K]   one gate per task
      logit_t = Tower_t(sum_k g_t[k] f_k)               [B]      tower_units, then 1
      logits = [logit_1 .. logit_T]                     [B, T]

  K = num_experts, u = hidden_units[-1]. The gates read the same input as the experts
  (Ma et al.'s eq. 5); no load-balancing term.
  """

  def __init__(self, feature_space: features.FeatureSpace, tasks: Sequence[str],
               embedding_dim: int = 16, num_experts: int = 4,
               hidden_units: Sequence[int] = (256, 128), tower_units: Sequence[int] = (64,),
               dropout: float = 0.0, **kwargs):
    super().__init__(feature_space, tasks, embedding_dim, **kwargs)
    if not hidden_units:
      raise ValueError('MMoERanker needs hidden_units: the experts are MLPs')
    self.num_experts = num_experts
    self.hidden_units = tuple(hidden_units)
    self.tower_units = tuple(tower_units)
    self.dropout = dropout
    self.experts = [mlp(self.hidden_units, dropout, f'expert_{k}')
                    for k in range(num_experts)]
    self.gates = [tf.keras.layers.Dense(num_experts, activation='softmax', name=f'gate_{t}')
                  for t in range(self.num_tasks)]
    self.towers = TaskTowers(self.num_tasks, self.tower_units, dropout, name='towers')

  def gate_weights(self, inputs) -> tf.Tensor:
    """g [B, T, K]: each task's weights of the experts."""
    x = flatten_fields(self.all_fields(self.encode(inputs)))
    return tf.stack([gate(x) for gate in self.gates], axis=1)

  def call(self, inputs, training=None):
    x = flatten_fields(self.all_fields(self.encode(inputs)))  # [B, F e]
    experts = tf.stack([e(x, training=training) for e in self.experts], axis=1)  # [B, K, u]
    mixed = [tf.squeeze(tf.matmul(gate(x)[:, None, :], experts), axis=1)  # [B, u] per task
             for gate in self.gates]
    return self.towers(mixed, training=training)  # [B, T]

  def get_config(self):
    config = super().get_config()
    config.update({'num_experts': self.num_experts, 'hidden_units': list(self.hidden_units),
                   'tower_units': list(self.tower_units), 'dropout': self.dropout})
    return config
