"""The MDL ranker (Multi-Distribution Learner, section 3): feature, scenario and task
tokens interacting through stacked MDL blocks, one logit per task from its task token."""

from typing import Sequence

import tensorflow as tf

from core import feature_names as fnames
from models import features
from models.rankers.base import check_token_width
from models.rankers.base import mlp
from models.rankers.base import MultiTaskRanker
from models.rankers.layers import DomainFusedModule
from models.rankers.layers import FeatureTokenizer
from models.rankers.layers import MDLBlock
from models.rankers.layers import PerTokenDense
from models.rankers.layers import PerTokenFFN

SCENARIO_KIND, TASK_KIND = 'scenario', 'task'


class MDLRanker(MultiTaskRanker):
  """MDL (section 3, eq. 2-16), all tokens of width d = token_dim:

  Feature tokens (3.1.1, eq. 2-3): MultiTaskRanker's semantic groups, e_s among them,

      T_f = FeatureTokenizer([e_1 .. e_{N_f}])                         [B, N_f, d]

  Scenario tokens (3.1.2, eq. 4), one per served scenario s plus the global one:

      t_s = ReLU(PerTokenFFN_s(ê_imp ⊕ ê_spec,s))                      [B, N_s + 1, d]
      ê_imp     = [E'_user(user id) ; E'_item(item id)]                [B, 2e]
      ê_spec,s  = mean of the behaviour sequence's v_l over the clicks l made in s
                  (the global token: over all clicks; zeros without any)  [B, e]

  Task tokens (3.1.2, "similarly ... other important feature embeddings and task-related
  feature embeddings"), one per task n:

      t_n = ReLU(PerTokenFFN_n(E''_user(user id) ⊕ E''_item(item id) ⊕ u_n))  [B, N_t, d]

  Blocks (3.3, eq. 6, 11-15): L MDLBlocks, then eq. 16:

      logit_n = w_n^T t_{t,n}^{(L)} + b_n                              [B, T]

  Where the paper is silent, our choices:
  - e_s stays a feature token (N_f = 6). MDL gives the scenario to the tokens through
    the scenario tokens, but its features (Douyin's 500) are not said to leave the
    scenario's own features out; keeping e_s keeps MDL's feature tokens those of the
    RankMixer baseline (the comparison isolates the scenario and task tokens), keeps the
    scenario in the ablation without scenario tokens, and keeps N_f = 6 a divisor of
    the default d = 42 (token mixing).
  - E'_user, E'_item (scenario tokens) and E''_user, E''_item (task tokens) are four
    extra embedding tables of the raw user and item ids, distinct from the feature
    tokens' tables ("different from the input embeddings of feature tokens, but same raw
    features"), width e = embedding_dim.
  - ê_spec pools the sequence embeddings v_l the feature tokens' history group pools
    (item embedding + click-scenario embedding; UserEncoder's tables, not extra ones);
    clicks in a scenario the model does not serve count for the global token only.
  - The task-related input u_n [e] is a learned embedding per task: the data has no task
    features. The per-token FFN is the two-layer GELU PerTokenFFN, hidden width
    ffn_expansion * 3e, output d, then the ReLU of eq. 4 (for task tokens too).
  - The logits layer of eq. 16 is linear, one per task (PerTokenDense to 1 unit).

  Ablations (the paper's section 4.3), from RankerConfig:
  - use_task_tokens=False: no task tokens; task towers: per task an MLP (tower_units,
    ReLU) over [mean_n T_f^{(L)}[n] ; t_avg], t_avg the example's fused scenario token
    (DomainFusedModule's eq. 9 on the final scenario tokens), then its logit.
  - use_scenario_tokens=False: no scenario tokens, no domain fusion (eq. 14 drops out);
    scenario towers: the logit of task n is a linear layer of its own for each
    (scenario, task) pair, chosen by the example's scenario (one more row for a value
    the mapping does not know). With use_task_tokens=False too, that layer follows the
    task towers, whose input is then the pooled feature tokens alone.
  - use_global_token=False: N_s scenario tokens, eq. 9 averages nothing (own token).
  - use_domain_attention=False: MDLBlock's ablation (RankMixer interaction of the
    domain tokens, 'auto': RankMixer over the joint tokens when d is a multiple of their
    count, else the mean-pooled feature tokens; see MDLBlock).
  Without the global token an example's scenario must be a served one (with it, an
  unknown value's own token is the global one). `attention_scores(inputs)` gives each
  block's {'scenario': [B, H, N_s (+1), N_f], 'task': [B, H, N_t, N_f]} (the kinds that
  attend).
  """

  def __init__(self, feature_space: features.FeatureSpace, tasks: Sequence[str],
               embedding_dim: int = 16, token_dim: int = 42, num_layers: int = 2,
               num_heads: int = 3, ffn_expansion: float = 2,
               tower_units: Sequence[int] = (64,), use_task_tokens: bool = True,
               use_scenario_tokens: bool = True, use_global_token: bool = True,
               use_domain_attention: bool = True, dropout: float = 0.0, **kwargs):
    super().__init__(feature_space, tasks, embedding_dim, **kwargs)
    self.token_dim = token_dim
    self.num_layers = num_layers
    self.num_heads = num_heads
    self.ffn_expansion = ffn_expansion
    self.tower_units = tuple(tower_units)
    self.use_task_tokens = use_task_tokens
    self.use_scenario_tokens = use_scenario_tokens
    self.use_global_token = use_global_token
    self.use_domain_attention = use_domain_attention
    self.dropout = dropout
    check_token_width(token_dim, len(self.group_names()), 'MDLRanker')
    self.kinds = tuple(k for k, used in ((SCENARIO_KIND, use_scenario_tokens),
                                         (TASK_KIND, use_task_tokens)) if used)
    vocab = {c.name: c.vocab_size for c in
             feature_space.user.categorical + feature_space.item.categorical}
    extra = lambda name, field: tf.keras.layers.Embedding(vocab[field], embedding_dim,
                                                          name=name)
    self.tokenizer = FeatureTokenizer(token_dim, name='feature_tokenizer')
    if use_scenario_tokens:
      self.scenario_user_id = extra('scenario_user_id', fnames.USER_ID)  # E'_user
      self.scenario_item_id = extra('scenario_item_id', fnames.ITEM_ID)  # E'_item
      self.scenario_tokenizer = PerTokenFFN(ffn_expansion, units=token_dim,
                                            name='scenario_tokenizer')
    if use_task_tokens:
      self.task_user_id = extra('task_user_id', fnames.USER_ID)  # E''_user
      self.task_item_id = extra('task_item_id', fnames.ITEM_ID)  # E''_item
      self.task_tokenizer = PerTokenFFN(ffn_expansion, units=token_dim,
                                        name='task_tokenizer')
      self.task_embedding = self.add_weight(  # u_n [N_t, e]
          name='task_embedding', shape=(self.num_tasks, embedding_dim),
          initializer=tf.keras.initializers.RandomNormal(stddev=0.05))
    block_args = dict(num_heads=num_heads, expansion=ffn_expansion, dropout=dropout,
                      use_domain_attention=use_domain_attention,
                      use_global_token=use_global_token)
    self.blocks = [MDLBlock(**block_args, update_scenario_tokens=l < num_layers - 1,
                            name=f'mdl_block_{l}')
                   if len(self.kinds) == 2 else
                   MDLBlockOfKinds(self.kinds, **block_args, name=f'mdl_block_{l}')
                   for l in range(num_layers)]
    if not use_task_tokens:
      self.task_towers = [mlp(self.tower_units, dropout, f'task_tower_{t}')
                          for t in range(self.num_tasks)]
      if use_scenario_tokens:
        self.output_fusion = DomainFusedModule(use_global_token, name='output_fusion')
    if use_scenario_tokens:
      self.logits_layer = PerTokenDense(1, name='logits_layer')  # eq. 16, per task
    else:
      self.logits_layer = ScenarioTaskLogits(self.num_scenarios + 1, name='scenario_towers')

  @property
  def num_scenario_tokens(self) -> int:
    return self.num_scenarios + 1 if self.use_global_token else self.num_scenarios

  # ---- tokenization (section 3.1) ----------------------------------------------------

  def scenario_specific_history(self, sequence) -> tf.Tensor:
    """ê_spec [B, N_s (+1), e]: the sequence mean-pooled over each scenario's clicks (the
    global token's row: over every click)."""
    values, mask, click_scenario = sequence  # [B, L, e], [B, L], [B, L]
    mask = tf.cast(mask, values.dtype)
    # A click of an unserved scenario (index N_s) has an all-zero one-hot row.
    weights = tf.one_hot(click_scenario, self.num_scenarios, dtype=values.dtype)
    weights = weights * mask[:, :, None]  # [B, L, N_s]
    if self.use_global_token:
      weights = tf.concat([weights, mask[:, :, None]], axis=2)  # [B, L, N_s + 1]
    sums = tf.matmul(weights, values, transpose_a=True)  # [B, N_s (+1), e]
    counts = tf.reduce_sum(weights, axis=1)[:, :, None]  # [B, N_s (+1), 1]
    return sums / tf.maximum(counts, 1.0)

  def _ids(self, inputs):
    return (tf.cast(inputs[fnames.USER_ID], tf.int64),
            tf.cast(inputs[fnames.ITEM_ID], tf.int64))

  def _scenario_tokens(self, inputs, encoded) -> tf.Tensor:
    """T_s [B, N_s (+1), d] (eq. 4)."""
    user_id, item_id = self._ids(inputs)
    spec = self.scenario_specific_history(encoded['sequence'])  # [B, S', e]
    important = tf.concat([self.scenario_user_id(user_id), self.scenario_item_id(item_id)],
                          axis=1)  # ê_imp [B, 2e]
    important = tf.tile(important[:, None, :], [1, spec.shape[1], 1])  # [B, S', 2e]
    return tf.nn.relu(self.scenario_tokenizer(tf.concat([important, spec], axis=2)))

  def _task_tokens(self, inputs) -> tf.Tensor:
    """T_t [B, N_t, d]."""
    user_id, item_id = self._ids(inputs)
    important = tf.concat([self.task_user_id(user_id), self.task_item_id(item_id)],
                          axis=1)  # [B, 2e]
    important = tf.tile(important[:, None, :], [1, self.num_tasks, 1])  # [B, N_t, 2e]
    task = tf.tile(self.task_embedding[None], [tf.shape(important)[0], 1, 1])  # [B, N_t, e]
    return tf.nn.relu(self.task_tokenizer(tf.concat([important, task], axis=2)))

  def initial_tokens(self, inputs) -> dict:
    """The blocks' input: feature_tokens, scenario_tokens (if used), task_tokens (if
    used), scenario_index."""
    encoded = self.encode(inputs, return_sequence=self.use_scenario_tokens)
    state = {'feature_tokens': self.tokenizer(self.feature_groups(encoded)),
             'scenario_index': encoded['scenario_index']}
    if self.use_scenario_tokens:
      state['scenario_tokens'] = self._scenario_tokens(inputs, encoded)
    if self.use_task_tokens:
      state['task_tokens'] = self._task_tokens(inputs)
    return state

  # ---- forward -----------------------------------------------------------------------

  def final_tokens(self, inputs, training=None) -> dict:
    """The last block's output (same keys as initial_tokens)."""
    state = self.initial_tokens(inputs)
    for block in self.blocks:
      state = block(state, training=training)
    return state

  def head_inputs(self, state: dict, training=None) -> tf.Tensor:
    """h [B, T, u]: the final task tokens, or the task towers' outputs."""
    if self.use_task_tokens:
      return state['task_tokens']  # [B, N_t, d]
    x = tf.reduce_mean(state['feature_tokens'], axis=1)  # [B, d]
    if self.use_scenario_tokens:
      fused = self.output_fusion.scenario_summary(state['scenario_tokens'],
                                                  state['scenario_index'])  # [B, d]
      x = tf.concat([x, fused], axis=1)  # [B, 2d]
    return tf.stack([tower(x, training=training) for tower in self.task_towers], axis=1)

  def call(self, inputs, training=None):
    state = self.final_tokens(inputs, training)
    h = self.head_inputs(state, training)  # [B, T, u]
    if self.use_scenario_tokens:
      return tf.squeeze(self.logits_layer(h), axis=2)  # [B, T]
    return self.logits_layer([h, state['scenario_index']])  # [B, T]

  def attention_scores(self, inputs) -> list:
    """[{kind: A [B, H, N_kind, N_f]} for each block]: the domain-aware attention of the
    scenario and task tokens over the feature tokens (the kinds that attend), at
    inference; rows sum to 1."""
    state = self.initial_tokens(inputs)
    scores = []
    for block in self.blocks:
      scores.append(block.attention_scores(state))
      state = block(state, training=False)
    return scores

  def get_config(self):
    config = super().get_config()
    config.update({'token_dim': self.token_dim, 'num_layers': self.num_layers,
                   'num_heads': self.num_heads, 'ffn_expansion': self.ffn_expansion,
                   'tower_units': list(self.tower_units),
                   'use_task_tokens': self.use_task_tokens,
                   'use_scenario_tokens': self.use_scenario_tokens,
                   'use_global_token': self.use_global_token,
                   'use_domain_attention': self.use_domain_attention,
                   'dropout': self.dropout})
    return config


class ScenarioTaskLogits(tf.keras.layers.Layer):
  """MDL's "scenario towers" (ablation w/o scenario tokens): a linear logit of its own
  for each (scenario, task), the example's scenario choosing:

      logit[b, n] = h[b, n] . W[s_b, n] + c[s_b, n]          W [S, T, u], c [S, T]

  Call with `layer([h [B, T, u], scenario_index [B]])` -> [B, T].
  """

  def __init__(self, num_scenarios: int, **kwargs):
    super().__init__(**kwargs)
    self.num_scenarios = num_scenarios

  def build(self, input_shape):
    h_shape = tf.TensorShape(input_shape[0])
    num_tasks, width = int(h_shape[1]), int(h_shape[2])
    self.kernel = self.add_weight(name='kernel', shape=(self.num_scenarios, num_tasks, width),
                                  initializer='glorot_uniform')
    self.bias = self.add_weight(name='bias', shape=(self.num_scenarios, num_tasks),
                                initializer='zeros')
    super().build(input_shape)

  def call(self, inputs):
    h, scenario_index = inputs
    scenario_index = tf.cast(tf.reshape(scenario_index, [-1]), tf.int32)
    kernel = tf.gather(self.kernel, scenario_index)  # [B, T, u]
    return tf.reduce_sum(h * kernel, axis=2) + tf.gather(self.bias, scenario_index)

  def get_config(self):
    config = super().get_config()
    config['num_scenarios'] = self.num_scenarios
    return config


class MDLBlockOfKinds(MDLBlock):
  """An MDLBlock of the ablations that drop a kind of domain token: `kinds` lists those
  kept ('scenario', 'task', both or neither). Eq. 6 always; eq. 11-12 with scenario
  tokens; eq. 13 and 15 with task tokens, eq. 14 (the fusion) only with both. The input
  and output dicts hold feature_tokens, scenario_index and the kept kinds' tokens; the
  use_domain_attention ablation acts on the kept kinds (the interaction of a kind without
  attention as MDLBlock's). With both kinds, prefer MDLBlock itself.
  """

  def __init__(self, kinds: Sequence[str] = (SCENARIO_KIND, TASK_KIND), **kwargs):
    super().__init__(**kwargs)
    self.kinds = tuple(k for k in (SCENARIO_KIND, TASK_KIND) if k in kinds)
    self.attended = tuple(k for k in self.attended if k in self.kinds)
    self.mixed = tuple(k for k in self.mixed if k in self.kinds)
    self.attention = {k: layer for k, layer in self.attention.items() if k in self.kinds}

  def build(self, input_shape):
    feature_shape = tf.TensorShape(input_shape['feature_tokens'])
    width = int(feature_shape[-1])
    for kind in self.kinds:
      if int(tf.TensorShape(input_shape[f'{kind}_tokens'])[-1]) != width:
        raise ValueError('MDLBlockOfKinds takes tokens of one width d')
    self._resolve_interaction(width, int(feature_shape[1]) + sum(
        int(tf.TensorShape(input_shape[f'{k}_tokens'])[1]) for k in self.mixed))
    tf.keras.layers.Layer.build(self, input_shape)  # MDLBlock.build wants every kind

  def _forward(self, inputs, training=None):
    domain = {k: inputs[f'{k}_tokens'] for k in self.kinds}
    features, interaction = self._feature_interaction(inputs['feature_tokens'], domain,
                                                      training)
    scores = {}
    for kind in self.attended:
      interaction[kind], scores[kind] = self.attention[kind](
          [domain[kind], features], return_attention_scores=True)
    outputs = {'feature_tokens': features, 'scenario_index': inputs['scenario_index']}
    if SCENARIO_KIND in domain:
      scenario_hat = interaction[SCENARIO_KIND] + domain[SCENARIO_KIND]  # eq. 11
      outputs['scenario_tokens'] = (self.scenario_ffn(scenario_hat, training=training) +
                                    scenario_hat)  # eq. 12
    if TASK_KIND in domain:
      task_hat = interaction[TASK_KIND] + domain[TASK_KIND]  # eq. 13
      if SCENARIO_KIND in domain:  # eq. 14 (MDLBlock's case)
        task_hat = self.domain_fused([task_hat, scenario_hat, inputs['scenario_index']])
      outputs['task_tokens'] = self.task_ffn(task_hat, training=training) + task_hat  # 15
    return outputs, scores

  def get_config(self):
    config = super().get_config()
    config['kinds'] = list(self.kinds)
    return config
