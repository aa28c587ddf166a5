"""The MTmixAtt ranker (Meituan 2025; known here only through its summary): AutoToken,
stacked MTmixAttBlocks routed by the example's scenario, per-task towers."""

from typing import Sequence

from models import features
from models.rankers.base import MultiTaskRanker
from models.rankers.base import TaskTowers
from models.rankers.layers import AutoToken
from models.rankers.layers import MTmixAttBlock
from models.towers.encoders import flatten_fields


class MTmixAttRanker(MultiTaskRanker):
  """Learned feature tokens, mixed and routed per scenario, then a tower per task:

      E       = all fields: user fields, pooled history, e_s, item fields    [B, F, e]
      X^0     = AutoToken(E)                                      [B, N, d]
      X^l     = MTmixAttBlock_l(X^{l-1}, s)                       [B, N, d]   l = 1 .. L
      h       = flatten(X^L)                                      [B, N d]
      logits  = [Tower_t(h)]_t                                    [B, T]

  s is the example's scenario index; the blocks' routers have one row per served
  scenario plus one for a value the mapping does not know (ScenarioEmbedding's "other"
  index), so any raw value routes. N = num_tokens, d = token_dim, E_d =
  num_dense_experts, E_s = num_experts sparse experts of which top_k per token.
  Our choices where the summary is silent: every field is one AutoToken feature (no
  hand-made groups: AutoToken is the grouping); the towers read the flattened tokens
  (N d values) rather than their mean, since AutoToken's tokens are different learned
  clusters of features and a mean would mix them back together; no load-balancing loss.
  `routing_weights(inputs)` gives each block's g [B, N, E_s] for the routing figures.
  """

  def __init__(self, feature_space: features.FeatureSpace, tasks: Sequence[str],
               embedding_dim: int = 16, num_tokens: int = 8, token_dim: int = 42,
               num_layers: int = 2, num_dense_experts: int = 1, num_experts: int = 4,
               top_k: int = 1, ffn_expansion: float = 2, tower_units: Sequence[int] = (64,),
               dropout: float = 0.0, **kwargs):
    super().__init__(feature_space, tasks, embedding_dim, **kwargs)
    self.num_tokens = num_tokens
    self.token_dim = token_dim
    self.num_layers = num_layers
    self.num_dense_experts = num_dense_experts
    self.num_experts = num_experts
    self.top_k = top_k
    self.ffn_expansion = ffn_expansion
    self.tower_units = tuple(tower_units)
    self.dropout = dropout
    self.auto_token = AutoToken(num_tokens, token_dim, name='auto_token')
    self.blocks = [MTmixAttBlock(self.num_scenarios + 1, num_dense_experts, num_experts,
                                 top_k, ffn_expansion, name=f'mtmixatt_{l}')
                   for l in range(num_layers)]
    self.towers = TaskTowers(self.num_tasks, self.tower_units, dropout, name='towers')

  def _tokens(self, inputs):
    """(X^0 [B, N, d], scenario index [B])."""
    encoded = self.encode(inputs)
    return self.auto_token(self.all_fields(encoded)), encoded['scenario_index']

  def routing_weights(self, inputs) -> list:
    """[g_l [B, N, E_s] for l = 1 .. L]: each block's sparse-expert weights of every
    token (top_k nonzero per token), at inference."""
    return self._per_block(inputs, 'routing_weights')

  def routing_choices(self, inputs) -> list:
    """[c_l [B, N, E_s] 0/1 for l = 1 .. L]: the top_k experts of every token, per block."""
    return self._per_block(inputs, 'routing_choices')

  def _per_block(self, inputs, method: str) -> list:
    tokens, scenario = self._tokens(inputs)
    values = []
    for block in self.blocks:
      values.append(getattr(block, method)([tokens, scenario]))
      tokens = block([tokens, scenario])
    return values

  def call(self, inputs, training=None):
    tokens, scenario = self._tokens(inputs)  # [B, N, d], [B]
    for block in self.blocks:
      tokens = block([tokens, scenario])  # [B, N, d]
    return self.towers(flatten_fields(tokens), training=training)  # [B, T]

  def get_config(self):
    config = super().get_config()
    config.update({'num_tokens': self.num_tokens, 'token_dim': self.token_dim,
                   'num_layers': self.num_layers,
                   'num_dense_experts': self.num_dense_experts,
                   'num_experts': self.num_experts, 'top_k': self.top_k,
                   'ffn_expansion': self.ffn_expansion,
                   'tower_units': list(self.tower_units), 'dropout': self.dropout})
    return config
