"""The rankers' layers (models/rankers/layers) checked against explicit numpy computations."""

import itertools

import numpy as np
import pytest
from scipy import special
import tensorflow as tf

from models.rankers import layers

RNG = np.random.default_rng(12)
TOL = dict(rtol=1e-5, atol=1e-5)


def _random(*shape, scale=1.0):
  return (scale * RNG.normal(size=shape)).astype(np.float32)


def _randomize(layer, scale=0.5):
  """Random values in every weight (biases, LayerNorm gammas and betas too)."""
  layer.set_weights([_random(*w.shape, scale=scale) for w in layer.weights])


def _round_trip(layer, inputs, **kwargs):
  """A layer from the layer's config, given its weights, computes the same outputs."""
  clone = layer.__class__.from_config(layer.get_config())
  assert clone.get_config() == layer.get_config()
  clone(inputs, **kwargs)
  clone.set_weights(layer.get_weights())
  expected, got = layer(inputs, **kwargs), clone(inputs, **kwargs)
  for e, g in zip(tf.nest.flatten(expected), tf.nest.flatten(got)):
    np.testing.assert_allclose(g.numpy(), e.numpy(), **TOL)


# ---- numpy references, written from the papers' equations -------------------------------

def np_gelu(x):
  return 0.5 * x * (1.0 + special.erf(x / np.sqrt(2.0)))


def np_softmax(x, axis=-1):
  e = np.exp(x - x.max(axis=axis, keepdims=True))
  return e / e.sum(axis=axis, keepdims=True)


def np_layer_norm(x, norm):
  gamma, beta = norm.gamma.numpy(), norm.beta.numpy()
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + norm.epsilon) * gamma + beta


def np_per_token_dense(x, dense, activation=None):
  kernel, bias = dense.kernel.numpy(), dense.bias.numpy()
  y = np.stack([x[:, t] @ kernel[t] + bias[t] for t in range(x.shape[1])], axis=1)
  return activation(y) if activation else y


def np_per_token_ffn(x, ffn):
  return np_per_token_dense(np_per_token_dense(x, ffn.hidden, np_gelu), ffn.output_dense)


def np_token_mixing(x):
  batch, num_tokens, width = x.shape
  w = width // num_tokens
  out = np.zeros_like(x)
  for b, h, t, j in itertools.product(range(batch), range(num_tokens), range(num_tokens),
                                      range(w)):
    out[b, h, t * w + j] = x[b, t, h * w + j]
  return out


def np_rankmixer(x, block):
  s = np_layer_norm(np_token_mixing(x) + x, block.mixing_norm)
  return np_layer_norm(np_per_token_ffn(s, block.ffn) + s, block.ffn_norm)


def np_attention(queries, features, daa):
  """(out [B, Q, d], weights [B, H, Q, N_f]) by loops over heads."""
  q = np_per_token_dense(queries, daa.query)
  k = np_per_token_dense(features, daa.key)
  v = np_per_token_dense(features, daa.value)
  heads, width = daa.num_heads, q.shape[-1]
  d_h = width // heads
  outs, weights = [], []
  for h in range(heads):
    cols = slice(h * d_h, (h + 1) * d_h)
    a = np_softmax(q[..., cols] @ k[..., cols].transpose(0, 2, 1) / np.sqrt(d_h))
    weights.append(a)
    outs.append(a @ v[..., cols])
  return np.concatenate(outs, axis=-1), np.stack(weights, axis=1)


def np_fused(task, scenario, index, use_global):
  own = scenario[np.arange(len(index)), index]
  t_avg = (own + scenario[:, -1]) / 2 if use_global else own
  return task + t_avg[:, None, :]


def np_mdl(block, t_f, t_s, t_t, index):
  """MDL eq. 6, 11-15, with the ablation's replacement of the attention."""
  tokens = {'scenario': t_s, 'task': t_t}
  interaction = {}
  if block.resolved_interaction == 'rankmixer':
    joint = np_rankmixer(np.concatenate([t_f] + [tokens[k] for k in block.mixed], 1),
                         block.rankmixer)
    features, start = joint[:, :t_f.shape[1]], t_f.shape[1]
    for kind in block.mixed:
      interaction[kind] = joint[:, start:start + tokens[kind].shape[1]]
      start += tokens[kind].shape[1]
  else:
    features = np_rankmixer(t_f, block.rankmixer)
    for kind in block.mixed:
      interaction[kind] = np.broadcast_to(features.mean(1, keepdims=True),
                                          tokens[kind].shape)
  for kind in block.attended:
    interaction[kind] = np_attention(tokens[kind], features, block.attention[kind])[0]
  s_hat = interaction['scenario'] + t_s
  s_out = np_per_token_ffn(s_hat, block.scenario_ffn) + s_hat
  t_hat = interaction['task'] + t_t
  t_fused = np_fused(t_hat, s_hat, index, block.use_global_token)
  t_out = np_per_token_ffn(t_fused, block.task_ffn) + t_fused
  return features, s_out, t_out


def np_experts(x, experts):
  """[B, T, E, d] by a loop over experts."""
  k1, b1, k2, b2 = (w.numpy() for w in (experts.kernel_1, experts.bias_1, experts.kernel_2,
                                         experts.bias_2))
  return np.stack([np_gelu(x @ k1[e] + b1[e]) @ k2[e] + b2[e]
                   for e in range(experts.num_experts)], axis=2)


def np_mtmixatt(block, x, index):
  """(out, gates) of the MTmixAttBlock, the top-k chosen by sorting each token's logits."""
  m = block.mixing.numpy()
  a = np_softmax(m) if block.softmax_mixing else m
  mixed = np.einsum('tu,bud->btd', a, x)
  h = np_layer_norm(x + mixed, block.mixing_norm)
  dense = np_experts(h, block.dense_experts).mean(axis=2)
  logits = block.router_table.numpy()[index][:, None, :] + h @ block.router_kernel.numpy()
  gates = np.zeros_like(logits)
  for b, t in itertools.product(range(x.shape[0]), range(x.shape[1])):
    top = np.argsort(-logits[b, t])[:block.top_k]
    gates[b, t, top] = np_softmax(logits[b, t])[top]  # p over all, kept on the top-k
  sparse = (gates[..., None] * np_experts(h, block.sparse_experts)).sum(axis=2)
  return np_layer_norm(h + dense + sparse, block.output_norm), gates


def _flops(fn, *specs) -> int:
  concrete = tf.function(fn).get_concrete_function(*specs)
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options['output'] = 'none'
  return tf.compat.v1.profiler.profile(graph=concrete.graph, options=options).total_float_ops


# ---- PerTokenDense, PerTokenFFN -----------------------------------------------------------

def test_per_token_dense_has_a_kernel_per_token():
  layer = layers.PerTokenDense(5, activation='relu')
  x = _random(3, 4, 6)
  layer(x)
  _randomize(layer)
  np.testing.assert_allclose(layer(x).numpy(),
                             np_per_token_dense(x, layer, lambda y: np.maximum(y, 0)), **TOL)
  _round_trip(layer, x)


def test_per_token_dense_draws_each_token_as_one_dense_layer():
  layer = layers.PerTokenDense(32)
  layer(_random(2, 4, 16))
  kernel = layer.kernel.numpy()
  limit = np.sqrt(6 / (16 + 32))  # glorot_uniform of one [16, 32] kernel
  assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit
  for t, u in itertools.combinations(range(4), 2):
    assert not np.allclose(kernel[t], kernel[u])


def test_per_token_dense_flops_are_counted():
  """A batched matmul, not an einsum: the FLOPs profiler (models/model_stats.py) sees it."""
  layer = layers.PerTokenDense(5)
  layer.build((None, 4, 6))
  assert _flops(layer, tf.TensorSpec([1, 4, 6])) >= 2 * 4 * 6 * 5


def test_per_token_dense_rejects_tokens_of_unknown_count():
  with pytest.raises(ValueError, match='T and d_in'):
    layers.PerTokenDense(3).build((None, 5))


@pytest.mark.parametrize('units', [None, 3])
def test_per_token_ffn_is_two_per_token_layers_with_gelu(units):
  layer = layers.PerTokenFFN(expansion=2, units=units, dropout=0.5)
  x = _random(3, 4, 6)
  layer(x)
  assert layer.hidden.kernel.shape == (4, 6, 12)
  assert layer.output_dense.kernel.shape == (4, 12, units or 6)
  _randomize(layer)
  np.testing.assert_allclose(layer(x, training=False).numpy(), np_per_token_ffn(x, layer),
                             **TOL)
  assert not np.allclose(layer(x, training=True).numpy(), np_per_token_ffn(x, layer))
  _round_trip(layer, x, training=False)


# ---- TokenMixing, RankMixerBlock ---------------------------------------------------------

def test_token_mixing_puts_head_h_of_token_t_at_output_token_h_block_t():
  batch, num_tokens, width = 2, 3, 6  # heads of width 2
  x = np.array([[[1000 * b + 100 * t + j for j in range(width)] for t in range(num_tokens)]
                for b in range(batch)], np.float32)  # x[b, t, j] names its own position
  out = layers.TokenMixing()(x).numpy()
  assert out.shape == x.shape
  # output token h = [head h of token 0 | head h of token 1 | head h of token 2]
  np.testing.assert_array_equal(out[1, 0], [1000, 1001, 1100, 1101, 1200, 1201])
  np.testing.assert_array_equal(out[1, 2], [1004, 1005, 1104, 1105, 1204, 1205])
  np.testing.assert_array_equal(out, np_token_mixing(x))
  np.testing.assert_array_equal(layers.TokenMixing()(out).numpy(), x)  # its own inverse


def test_token_mixing_needs_the_width_a_multiple_of_the_token_count():
  with pytest.raises(ValueError, match='D=8 .* T=3'):
    layers.TokenMixing()(_random(2, 3, 8))


def test_token_mixing_config_round_trip():
  layer = layers.TokenMixing(name='mix')
  _round_trip(layer, _random(2, 4, 8))


def test_rankmixer_block_is_post_ln_mixing_then_per_token_ffn():
  layer = layers.RankMixerBlock(expansion=2, layer_norm_epsilon=1e-5)
  x = _random(3, 4, 8)
  layer(x)
  _randomize(layer)
  np.testing.assert_allclose(layer(x).numpy(), np_rankmixer(x, layer), **TOL)
  _round_trip(layer, x)


# ---- FeatureTokenizer --------------------------------------------------------------------

def test_feature_tokenizer_projects_each_group_by_its_own_kernel():
  groups = [_random(3, 5), _random(3, 2), _random(3, 7)]
  layer = layers.FeatureTokenizer(4)
  assert layer(groups).shape == (3, 3, 4)
  _randomize(layer)
  expected = np.stack([e @ w.numpy() + b.numpy()
                       for e, w, b in zip(groups, layer.kernels, layer.biases)], axis=1)
  np.testing.assert_allclose(layer(groups).numpy(), expected, **TOL)
  by_name = dict(zip(['c', 'a', 'b'], [groups[1], groups[2], groups[0]]))  # sorted: a, b, c
  clone = layers.FeatureTokenizer(4)
  assert clone(by_name).shape == (3, 3, 4)
  clone.set_weights([layer.get_weights()[i] for i in (4, 5, 0, 1, 2, 3)])
  np.testing.assert_allclose(clone(by_name).numpy(), expected[:, [2, 0, 1]], **TOL)
  _round_trip(layer, groups)


def test_feature_tokenizer_takes_a_tensor_of_equal_groups():
  stacked = _random(3, 4, 5)
  layer = layers.FeatureTokenizer(6, activation='tanh')
  layer(stacked)
  _randomize(layer)
  expected = np.tanh(np.stack([stacked[:, j] @ layer.kernels[j].numpy() +
                               layer.biases[j].numpy() for j in range(4)], axis=1))
  np.testing.assert_allclose(layer(stacked).numpy(), expected, **TOL)


# ---- DomainAwareAttention, DomainFusedModule ---------------------------------------------

def test_domain_aware_attention_is_per_token_multi_head_cross_attention():
  queries, features = _random(3, 2, 8), _random(3, 5, 8)
  layer = layers.DomainAwareAttention(num_heads=2)
  out, scores = layer([queries, features], return_attention_scores=True)
  assert out.shape == (3, 2, 8) and scores.shape == (3, 2, 2, 5)
  assert layer.query.kernel.shape == (2, 8, 8) and layer.key.kernel.shape == (5, 8, 8)
  _randomize(layer)
  expected, weights = np_attention(queries, features, layer)
  np.testing.assert_allclose(layer([queries, features]).numpy(), expected, **TOL)
  np.testing.assert_allclose(layer.attention_scores([queries, features]).numpy(), weights,
                             **TOL)
  np.testing.assert_allclose(weights.sum(-1), 1.0, **TOL)
  _round_trip(layer, [queries, features])


def test_domain_aware_attention_needs_the_width_a_multiple_of_the_heads():
  with pytest.raises(ValueError, match='d=6 .* num_heads=4'):
    layers.DomainAwareAttention(num_heads=4)([_random(2, 1, 6), _random(2, 3, 6)])


@pytest.mark.parametrize('use_global', [True, False])
def test_domain_fused_module_adds_the_own_scenario_token(use_global):
  task = _random(4, 3, 5)
  scenario = _random(4, 3, 5)  # 2 scenarios + the global token, or 3 scenarios
  index = np.array([0, 1, 2 if not use_global else 1, 0])
  layer = layers.DomainFusedModule(use_global_token=use_global)
  got = layer([task, scenario, index]).numpy()
  np.testing.assert_allclose(got, np_fused(task, scenario, index, use_global), **TOL)
  b = 1  # written out for one example
  own = scenario[b, 1]
  expected = task[b] + ((own + scenario[b, 2]) / 2 if use_global else own)
  np.testing.assert_allclose(got[b], expected, **TOL)
  _round_trip(layer, [task, scenario, index])


# ---- MDLBlock ----------------------------------------------------------------------------

def _mdl_inputs(num_features=4, num_scenarios=2, num_tasks=1, width=8, use_global=True,
                batch=3):
  index = RNG.integers(0, num_scenarios, size=batch)
  index[:2] = [0, num_scenarios - 1]
  return (_random(batch, num_features, width),
          _random(batch, num_scenarios + int(use_global), width),
          _random(batch, num_tasks, width), index.astype(np.int32))


def _built_mdl(inputs, **kwargs):
  block = layers.MDLBlock(num_heads=2, expansion=2, **kwargs)
  block(inputs)
  _randomize(block, scale=0.3)
  return block


def _assert_mdl_matches_numpy(block, inputs):
  got = block(inputs)
  expected = np_mdl(block, *inputs)
  for g, e in zip(got[:3], expected):
    assert g.shape == e.shape
    np.testing.assert_allclose(g.numpy(), e, **TOL)
  np.testing.assert_array_equal(got[3].numpy(), inputs[3])


def test_mdl_block_follows_equations_6_and_11_to_15():
  inputs = _mdl_inputs()
  block = _built_mdl(inputs)
  assert block.resolved_interaction is None
  _assert_mdl_matches_numpy(block, inputs)
  as_dict = dict(zip(('feature_tokens', 'scenario_tokens', 'task_tokens', 'scenario_index'),
                     inputs))
  by_name = block(as_dict)
  np.testing.assert_allclose(by_name['task_tokens'].numpy(), block(inputs)[2].numpy(), **TOL)
  scores = block.attention_scores(inputs)
  assert scores['scenario'].shape == (3, 2, 3, 4) and scores['task'].shape == (3, 2, 1, 4)
  features = np_rankmixer(inputs[0], block.rankmixer)
  np.testing.assert_allclose(
      scores['task'].numpy(), np_attention(inputs[2], features, block.attention['task'])[1],
      **TOL)
  _round_trip(block, inputs)
  _round_trip(block, as_dict)


def test_mdl_blocks_stack():
  inputs = _mdl_inputs()
  first, second = _built_mdl(inputs), _built_mdl(inputs)
  out = second(first(inputs))
  assert [o.shape for o in out[:3]] == [i.shape for i in inputs[:3]]


@pytest.mark.parametrize('use_domain_attention,num_tasks,resolved', [
    (False, 1, 'rankmixer'),  # 4 + 3 + 1 = 8 tokens, d = 8
    (False, 2, 'mean_pool'),  # 9 tokens
    (['scenario'], 4, 'rankmixer'),  # the task tokens only: 4 + 4 = 8
    (['task'], 1, 'mean_pool'),  # the scenario tokens only: 4 + 3 = 7
])
def test_mdl_block_without_domain_attention(use_domain_attention, num_tasks, resolved):
  inputs = _mdl_inputs(num_tasks=num_tasks)
  block = _built_mdl(inputs, use_domain_attention=use_domain_attention)
  assert block.resolved_interaction == resolved
  _assert_mdl_matches_numpy(block, inputs)
  _round_trip(block, inputs)
  # The same weights where they exist, with attention: another computation.
  reference = _built_mdl(inputs)
  shared = ['rankmixer', 'scenario_ffn', 'task_ffn']
  if resolved == 'rankmixer':
    shared.remove('rankmixer')  # its per-token FFN covers more tokens
  for name in shared:
    getattr(reference, name).set_weights(getattr(block, name).get_weights())
  for kind in block.attended:
    reference.attention[kind].set_weights(block.attention[kind].get_weights())
  differs = [not np.allclose(r.numpy(), b.numpy(), atol=1e-4)
             for r, b in zip(reference(inputs)[:3], block(inputs)[:3])]
  assert differs[2]  # the task tokens always see the change
  assert set(block.attention) == set(block.attended)


def test_mdl_block_explicit_rankmixer_ablation_needs_divisible_sizes():
  inputs = _mdl_inputs(num_tasks=2)
  with pytest.raises(ValueError, match='D=8 .* T=9'):
    layers.MDLBlock(use_domain_attention=False, ablation_interaction='rankmixer')(inputs)


def test_mdl_block_without_global_token():
  inputs = _mdl_inputs(use_global=False, num_scenarios=3)
  block = _built_mdl(inputs, use_global_token=False)
  _assert_mdl_matches_numpy(block, inputs)
  with_global = layers.MDLBlock(num_heads=2, expansion=2)
  with_global(inputs)
  with_global.set_weights(block.get_weights())  # same shapes: 3 scenario tokens either way
  assert not np.allclose(with_global(inputs)[2].numpy(), block(inputs)[2].numpy(), atol=1e-4)
  np.testing.assert_allclose(with_global(inputs)[1].numpy(), block(inputs)[1].numpy(), **TOL)


def test_mdl_block_rejects_bad_flags_and_widths():
  with pytest.raises(ValueError, match='use_domain_attention'):
    layers.MDLBlock(use_domain_attention=['feature'])
  with pytest.raises(ValueError, match='ablation_interaction'):
    layers.MDLBlock(ablation_interaction='attention')
  t_f, t_s, t_t, index = _mdl_inputs()
  with pytest.raises(ValueError, match='one width'):
    layers.MDLBlock()((t_f, t_s, _random(3, 1, 4), index))


# ---- AutoToken ---------------------------------------------------------------------------

def test_auto_token_mixes_projected_features_by_a_soft_assignment():
  features = [_random(3, 2), _random(3, 5), _random(3, 3), _random(3, 4), _random(3, 1)]
  layer = layers.AutoToken(num_tokens=3, units=4, temperature=0.5)
  assert layer(features).shape == (3, 3, 4)
  _randomize(layer)
  assignment = layer.assignment().numpy()
  assert assignment.shape == (5, 3)
  np.testing.assert_allclose(assignment.sum(axis=1), 1.0, **TOL)
  logits = layer.assignment_logits.numpy()
  np.testing.assert_allclose(assignment, np_softmax(logits / 0.5), **TOL)
  np.testing.assert_array_equal(layer.hard_assignment().numpy(), logits.argmax(1))
  projection = layer.projection
  projected = [e @ w.numpy() + b.numpy()
               for e, w, b in zip(features, projection.kernels, projection.biases)]
  expected = np.stack([sum(assignment[f, n] * projected[f] for f in range(5))
                       for n in range(3)], axis=1)
  np.testing.assert_allclose(layer(features).numpy(), expected, **TOL)
  _round_trip(layer, features)


def test_auto_token_starts_with_distinct_tokens():
  layer = layers.AutoToken(num_tokens=4, units=3)
  out = layer(_random(2, 6, 5)).numpy()
  for n, m in itertools.combinations(range(4), 2):
    assert not np.allclose(out[:, n], out[:, m])


# ---- FFNExperts, MTmixAttBlock -----------------------------------------------------------

def test_ffn_experts_apply_every_expert_to_every_token():
  layer = layers.FFNExperts(3, expansion=2)
  x = _random(2, 4, 5)
  assert layer(x).shape == (2, 4, 3, 5)
  _randomize(layer)
  np.testing.assert_allclose(layer(x).numpy(), np_experts(x, layer), **TOL)
  _round_trip(layer, x)


def _mtmixatt(softmax_mixing=True, top_k=2):
  block = layers.MTmixAttBlock(num_scenarios=2, num_dense_experts=2, num_sparse_experts=4,
                               top_k=top_k, expansion=2, softmax_mixing=softmax_mixing)
  x, index = _random(4, 3, 6), np.array([0, 1, 1, 0], np.int32)
  block([x, index])
  _randomize(block)
  return block, x, index


@pytest.mark.parametrize('softmax_mixing,top_k', [(True, 2), (False, 1)])
def test_mtmixatt_block_matches_numpy(softmax_mixing, top_k):
  block, x, index = _mtmixatt(softmax_mixing, top_k)
  expected, gates = np_mtmixatt(block, x, index)
  np.testing.assert_allclose(block([x, index]).numpy(), expected, **TOL)
  np.testing.assert_allclose(block.routing_weights([x, index]).numpy(), gates, **TOL)
  _round_trip(block, [x, index])


def test_mtmixatt_block_mixing_starts_as_a_uniform_average():
  for softmax_mixing in (True, False):
    block = layers.MTmixAttBlock(num_scenarios=2, softmax_mixing=softmax_mixing)
    block([_random(2, 4, 8), np.zeros(2, np.int32)])
    np.testing.assert_allclose(block.mixing_matrix().numpy(), np.full((4, 4), 0.25), **TOL)


def test_mtmixatt_block_routes_each_token_to_its_top_k_experts_per_scenario():
  block, x, index = _mtmixatt()
  gates = block.routing_weights([x, index]).numpy()  # [B, T, E_s]
  assert gates.shape == (4, 3, 4)
  np.testing.assert_array_equal((gates > 0).sum(-1), 2)
  assert (gates.sum(-1) < 1.0).all()  # the softmax over all 4 experts, 2 kept
  np.testing.assert_array_equal(block.routing_choices([x, index]).numpy(), gates > 0)
  logits = block.router_logits([x, index]).numpy()
  for b, t in itertools.product(range(4), range(3)):
    assert set(np.flatnonzero(gates[b, t])) == set(np.argsort(-logits[b, t])[:2])
  # A router table far larger than the token term: scenario 0 takes experts 0 and 1,
  # scenario 1 experts 2 and 3; the same tokens route differently in the two scenarios.
  block.router_table.assign([[20., 19., -20., -20.], [-20., -20., 20., 19.]])
  for scenario, chosen, left in ((0, [0, 1], [2, 3]), (1, [2, 3], [0, 1])):
    g = block.routing_weights([x, np.full(4, scenario, np.int32)]).numpy()
    assert (g[..., chosen] > 0).all() and (g[..., left] == 0).all()
  # The experts a scenario does not pick change nothing of its examples' outputs.
  only_0 = [x, np.zeros(4, np.int32)]
  before = block(only_0).numpy()
  kernel = block.sparse_experts.kernel_2.numpy()
  kernel[2:] += 5.0
  block.sparse_experts.kernel_2.assign(kernel)
  np.testing.assert_allclose(block(only_0).numpy(), before, **TOL)
  assert not np.allclose(block([x, np.ones(4, np.int32)]).numpy(), before, atol=1e-3)


def test_mtmixatt_block_rejects_top_k_above_the_experts():
  with pytest.raises(ValueError, match='top_k=5'):
    layers.MTmixAttBlock(num_scenarios=2, num_sparse_experts=4, top_k=5)


def test_layers_in_a_functional_model():
  """Symbolic inputs of unknown batch size: FeatureTokenizer -> MDLBlock, AutoToken ->
  MTmixAttBlock."""
  groups = [tf.keras.Input((3,)), tf.keras.Input((5,))]
  scenario_tokens, task_tokens = tf.keras.Input((3, 4)), tf.keras.Input((1, 4))
  index = tf.keras.Input((), dtype=tf.int32)
  features = layers.FeatureTokenizer(4)(groups)  # [B, 2, 4]
  mdl = layers.MDLBlock(num_heads=2, expansion=2)([features, scenario_tokens, task_tokens,
                                                   index])
  tokens = layers.AutoToken(2, 4)(groups)
  mixed = layers.MTmixAttBlock(num_scenarios=2)([tokens, index])
  model = tf.keras.Model([*groups, scenario_tokens, task_tokens, index], [mdl[2], mixed])
  values = [_random(3, 3), _random(3, 5), _random(3, 3, 4), _random(3, 1, 4),
            np.array([0, 1, 0], np.int32)]
  task_out, mixed_out = model(values)
  assert task_out.shape == (3, 1, 4) and mixed_out.shape == (3, 2, 4)


def test_mtmixatt_router_learns_with_top_1():
  """With one expert per token the router still gets a gradient (the kept expert's
  probability under the softmax over every expert weighs its output)."""
  block, x, index = _mtmixatt(top_k=1)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(block([x, index]) ** 2)
  table, kernel = tape.gradient(loss, [block.router_table, block.router_kernel])
  table = tf.convert_to_tensor(table)  # gathered rows: IndexedSlices
  assert np.abs(table.numpy()).sum() > 0 and np.abs(kernel.numpy()).sum() > 0


def test_target_attention_weights_each_click_by_the_activation_unit():
  rng = np.random.default_rng(3)
  query = rng.normal(size=(2, 4)).astype(np.float32)
  values = rng.normal(size=(2, 3, 4)).astype(np.float32)
  mask = np.array([[True, True, False], [False, False, False]])
  layer = layers.TargetAttention(hidden_units=(5,))
  got = layer([query, values, mask]).numpy()
  (w0, b0), alpha, (w1, b1) = (layer.unit.layers[0].get_weights(),
                               layer.unit.layers[1].get_weights()[0][0],
                               layer.unit.layers[2].get_weights())
  expected = np.zeros((2, 4))
  for b in range(2):
    for l in range(3):
      if not mask[b, l]:
        continue
      v, q = values[b, l], query[b]
      hidden = np.concatenate([v, q, v - q, v * q]) @ w0 + b0
      hidden = np.where(hidden > 0, hidden, alpha * hidden)  # PReLU
      expected[b] += float(hidden @ w1[:, 0] + b1[0]) * v
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  assert not got[1].any()  # no history: h = 0


def test_target_attention_config_round_trip():
  layer = layers.TargetAttention(hidden_units=(7, 3))
  assert layers.TargetAttention.from_config(layer.get_config()).hidden_units == (7, 3)
