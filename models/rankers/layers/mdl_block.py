"""One MDL block: feature, scenario and task tokens interact (MDL section 3.3, eq. 6 and
11-15)."""

import tensorflow as tf

from models.rankers.layers.domain_aware_attention import DomainAwareAttention
from models.rankers.layers.domain_fused_module import DomainFusedModule
from models.rankers.layers.per_token_ffn import PerTokenFFN
from models.rankers.layers.rankmixer_block import RankMixerBlock

KINDS = ('scenario', 'task')
KEYS = ('feature_tokens', 'scenario_tokens', 'task_tokens', 'scenario_index')


class MDLBlock(tf.keras.layers.Layer):
  """One layer of MDL, all tokens of width d:

      T_f'    = RankMixerBlock(T_f)                                  (eq. 6)
      T_s^    = DAA_s(T_s, T_f') + T_s                               (eq. 11)
      T_s'    = PerTokenFFN_s(T_s^) + T_s^                           (eq. 12)
      T_t^    = DAA_t(T_t, T_f') + T_t                               (eq. 13)
      T_t~    = DomainFused(T_t^, T_s^, scenario)                    (eq. 14)
      T_t'    = PerTokenFFN_t(T_t~) + T_t~                           (eq. 15)

  DAA is DomainAwareAttention; the task tokens take in the scenario tokens of eq. 11
  (before the scenario FFN), as eq. 14 writes. T_s holds N_s + 1 tokens (the global one
  last) with use_global_token, N_s without.

  Ablations (MDL section 4.3, "replace domain-aware attention ... with interaction in
  RankMixer"). `use_domain_attention`: True (both kinds attend), False (neither), or a
  list of the kinds that keep their attention ('scenario', 'task'). The DAA term of a
  kind without attention is replaced by I_x, the rest of eq. 11-15 unchanged:
    'rankmixer':  one RankMixerBlock over the concatenation [T_f; T_x...] of the feature
                  tokens and the tokens of every kind without attention replaces the
                  feature block: T_f' is its first N_f outputs and I_x the outputs at the
                  positions of T_x. The domain tokens then also reach the feature tokens,
                  as tokens of one RankMixer do. Needs d a multiple of the token count.
    'mean_pool':  T_f' = RankMixerBlock(T_f) and I_x = mean over n of T_f'[n], the same
                  vector for every token of the kind (parameter-free).
    'auto':       'rankmixer' when d is a multiple of the token count, else 'mean_pool'
                  (the choice made is `resolved_interaction` after build).
  `use_global_token`: see DomainFusedModule.

  Inputs: a dict with keys feature_tokens [B, N_f, d], scenario_tokens [B, N_s (+1), d],
  task_tokens [B, N_t, d], scenario_index [B] int; or the tuple of them in that order. The
  output has the same structure, scenario_index passed through, so blocks stack. With
  `update_scenario_tokens=False` (a ranker's last block when only task tokens feed the
  logits) the scenario tokens come out as T_s hat, without eq. 12's FFN.
  `attention_scores(inputs)` is {kind: [B, H, N_kind, N_f]} of the kinds that attend.
  """

  def __init__(self, num_heads: int = 1, expansion: float = 4, dropout: float = 0.0,
               use_domain_attention=True, use_global_token: bool = True,
               ablation_interaction: str = 'auto', layer_norm_epsilon: float = 1e-6,
               update_scenario_tokens: bool = True, **kwargs):
    super().__init__(**kwargs)
    if isinstance(use_domain_attention, bool):
      attended = KINDS if use_domain_attention else ()
    else:
      attended = tuple(use_domain_attention)
      if set(attended) - set(KINDS):
        raise ValueError(f'use_domain_attention: a bool or kinds among {KINDS}; got '
                         f'{use_domain_attention!r}')
    if ablation_interaction not in ('auto', 'rankmixer', 'mean_pool'):
      raise ValueError(f"ablation_interaction: 'auto', 'rankmixer' or 'mean_pool'; got "
                       f'{ablation_interaction!r}')
    self.num_heads = num_heads
    self.expansion = expansion
    self.dropout = dropout
    self.use_domain_attention = use_domain_attention
    self.use_global_token = use_global_token
    self.ablation_interaction = ablation_interaction
    self.layer_norm_epsilon = layer_norm_epsilon
    self.update_scenario_tokens = update_scenario_tokens
    self.attended = tuple(k for k in KINDS if k in attended)
    self.mixed = tuple(k for k in KINDS if k not in attended)
    self.resolved_interaction = None
    self.rankmixer = RankMixerBlock(expansion, dropout, layer_norm_epsilon, name='rankmixer')
    self.attention = {kind: DomainAwareAttention(num_heads, name=f'{kind}_attention')
                      for kind in self.attended}
    # The last block of a ranker whose logits read only task tokens: its eq. 12 output
    # would feed nothing (eq. 14 fuses T_s hat), so there is no FFN to leave untrained.
    self.scenario_ffn = (PerTokenFFN(expansion, dropout=dropout, name='scenario_ffn')
                         if update_scenario_tokens else None)
    self.task_ffn = PerTokenFFN(expansion, dropout=dropout, name='task_ffn')
    self.domain_fused = DomainFusedModule(use_global_token, name='domain_fused')

  @staticmethod
  def _unpack(inputs):
    if isinstance(inputs, dict):
      return tuple(inputs[key] for key in KEYS)
    return tuple(inputs)

  def build(self, input_shape):
    shapes = [tf.TensorShape(s) for s in self._unpack(input_shape)]
    tokens = dict(zip(('feature',) + KINDS, shapes[:3]))
    widths = {int(s[-1]) for s in tokens.values()}
    if len(widths) != 1:
      raise ValueError(f'MDLBlock takes tokens of one width d; got feature, scenario, task '
                       f'shapes {shapes[:3]}')
    width, = widths
    self._resolve_interaction(width, int(tokens['feature'][1]) +
                              sum(int(tokens[k][1]) for k in self.mixed))
    super().build(input_shape)

  def _resolve_interaction(self, width: int, joint: int) -> None:
    """Sets `resolved_interaction` for tokens of width d and `joint` tokens mixed."""
    if not self.mixed:
      self.resolved_interaction = None
    elif self.ablation_interaction == 'auto':
      self.resolved_interaction = 'mean_pool' if width % joint else 'rankmixer'
    else:
      self.resolved_interaction = self.ablation_interaction

  def _feature_interaction(self, feature_tokens, domain_tokens, training):
    """T_f' [B, N_f, d] and the replacement I_x of DAA_x for the kinds without attention."""
    if self.resolved_interaction == 'rankmixer':
      joint = self.rankmixer(
          tf.concat([feature_tokens] + [domain_tokens[k] for k in self.mixed], axis=1),
          training=training)  # [B, N_f + sum N_x, d]
      sizes = [feature_tokens.shape[1]] + [domain_tokens[k].shape[1] for k in self.mixed]
      features, *mixed = tf.split(joint, sizes, axis=1)
      return features, dict(zip(self.mixed, mixed))
    features = self.rankmixer(feature_tokens, training=training)  # [B, N_f, d]
    pooled = tf.reduce_mean(features, axis=1, keepdims=True)  # [B, 1, d]
    return features, {k: tf.broadcast_to(pooled, tf.shape(domain_tokens[k]))
                      for k in self.mixed}

  def _forward(self, inputs, training=None):
    feature_tokens, scenario_tokens, task_tokens, scenario_index = self._unpack(inputs)
    domain = {'scenario': scenario_tokens, 'task': task_tokens}
    features, interaction = self._feature_interaction(feature_tokens, domain, training)
    scores = {}
    for kind in self.attended:
      interaction[kind], scores[kind] = self.attention[kind](
          [domain[kind], features], return_attention_scores=True)
    scenario_hat = interaction['scenario'] + scenario_tokens  # eq. 11
    scenario_out = (scenario_hat if self.scenario_ffn is None else  # eq. 12
                    self.scenario_ffn(scenario_hat, training=training) + scenario_hat)
    task_hat = interaction['task'] + task_tokens  # eq. 13
    task_fused = self.domain_fused([task_hat, scenario_hat, scenario_index])  # eq. 14
    task_out = self.task_ffn(task_fused, training=training) + task_fused  # eq. 15
    outputs = (features, scenario_out, task_out, scenario_index)
    if isinstance(inputs, dict):
      outputs = dict(zip(KEYS, outputs))
    return outputs, scores

  def call(self, inputs, training=None):
    return self._forward(inputs, training)[0]

  def attention_scores(self, inputs) -> dict:
    """{kind: A [B, H, N_kind, N_f]} of the kinds that attend, over this block's T_f'."""
    if not self.built:
      self(inputs)
    return self._forward(inputs, training=False)[1]

  def get_config(self):
    config = super().get_config()
    use = self.use_domain_attention
    config.update({
        'num_heads': self.num_heads, 'expansion': self.expansion, 'dropout': self.dropout,
        'use_domain_attention': use if isinstance(use, bool) else list(use),
        'use_global_token': self.use_global_token,
        'ablation_interaction': self.ablation_interaction,
        'layer_norm_epsilon': self.layer_norm_epsilon,
        'update_scenario_tokens': self.update_scenario_tokens,
    })
    return config
