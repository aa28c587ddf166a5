"""The RankMixer ranker (Zhu et al. 2025; MDL's backbone and RankMixer baseline):
semantic feature tokens, stacked RankMixer blocks, per-task towers."""

from typing import Sequence

import tensorflow as tf

from models import features
from models.rankers.base import check_token_width
from models.rankers.base import MultiTaskRanker
from models.rankers.base import TaskTowers
from models.rankers.layers import FeatureTokenizer
from models.rankers.layers import RankMixerBlock


class RankMixerRanker(MultiTaskRanker):
  """Feature tokens through L RankMixer blocks, mean-pooled, then a tower per task:

      T_f^0   = FeatureTokenizer([e_1 .. e_{N_f}])       [B, N_f, d]   (MDL eq. 3)
      T_f^l   = RankMixerBlock(T_f^{l-1})                [B, N_f, d]   l = 1 .. L (eq. 6)
      h       = (1 / N_f) sum_n T_f^L[:, n]              [B, d]
      logits  = [Tower_t(h)]_t                           [B, T]   tower_units, then 1

  The groups e_j are MultiTaskRanker's semantic groups with e_s among them (the scenario
  as a feature token): N_f = 6, or fewer when a side has no field besides its id. d must
  be a multiple of N_f (token mixing). RankMixer pools its tokens for the heads; the mean
  is our choice of pooling.
  """

  def __init__(self, feature_space: features.FeatureSpace, tasks: Sequence[str],
               embedding_dim: int = 16, token_dim: int = 42, num_layers: int = 2,
               ffn_expansion: float = 2, tower_units: Sequence[int] = (64,),
               dropout: float = 0.0, **kwargs):
    super().__init__(feature_space, tasks, embedding_dim, **kwargs)
    self.token_dim = token_dim
    self.num_layers = num_layers
    self.ffn_expansion = ffn_expansion
    self.tower_units = tuple(tower_units)
    self.dropout = dropout
    check_token_width(token_dim, len(self.group_names()), 'RankMixerRanker')
    self.tokenizer = FeatureTokenizer(token_dim, name='feature_tokenizer')
    self.blocks = [RankMixerBlock(ffn_expansion, dropout, name=f'rankmixer_{l}')
                   for l in range(num_layers)]
    self.towers = TaskTowers(self.num_tasks, self.tower_units, dropout, name='towers')

  def feature_tokens(self, inputs, training=None) -> tf.Tensor:
    """T_f^L [B, N_f, d]."""
    tokens = self.tokenizer(self.feature_groups(self.encode(inputs)))  # [B, N_f, d]
    for block in self.blocks:
      tokens = block(tokens, training=training)
    return tokens

  def call(self, inputs, training=None):
    pooled = tf.reduce_mean(self.feature_tokens(inputs, training), axis=1)  # [B, d]
    return self.towers(pooled, training=training)  # [B, T]

  def get_config(self):
    config = super().get_config()
    config.update({'token_dim': self.token_dim, 'num_layers': self.num_layers,
                   'ffn_expansion': self.ffn_expansion,
                   'tower_units': list(self.tower_units), 'dropout': self.dropout})
    return config
