"""Layer maths checked against explicit numpy computations."""

import numpy as np
import pytest
import tensorflow as tf

from models import layers
from models import model_stats

RNG = np.random.default_rng(7)


def _random(*shape):
  return RNG.normal(size=shape).astype(np.float32)


def _sap(units=4, rank=2, d_in=7, d_s=3):
  layer = layers.ScenarioAdaptiveProjection(units, rank)
  layer.build(((None, d_in), (None, d_s)))
  layer.set_weights([_random(*w.shape) for w in layer.weights])  # nonzero biases too
  return layer


def test_sap_equals_the_explicit_per_example_matrix():
  layer = _sap()
  x, e = _random(5, 7), _random(5, 3)
  w, a, b, w_b, c_b, bias = [v.numpy() for v in (
      layer.shared_kernel, layer.low_rank_a, layer.low_rank_b, layer.scenario_kernel,
      layer.scenario_bias, layer.bias)]
  expected = []
  for i in range(5):
    b_s = e[i] @ w_b + c_b  # [R]
    delta = sum(b_s[r] * np.outer(a[:, r], b[r, :]) for r in range(2))  # [d_in, units]
    expected.append(x[i] @ (w + delta) + bias)
  np.testing.assert_allclose(layer([x, e]).numpy(), np.stack(expected), rtol=1e-5,
                             atol=1e-5)


@pytest.mark.parametrize('zeroed', ['low_rank_a', 'low_rank_b'])
def test_sap_with_a_or_b_zero_is_a_dense_layer(zeroed):
  layer = _sap()
  getattr(layer, zeroed).assign(tf.zeros_like(getattr(layer, zeroed)))
  x, e = _random(5, 7), _random(5, 3)
  dense = x @ layer.shared_kernel.numpy() + layer.bias.numpy()
  np.testing.assert_allclose(layer([x, e]).numpy(), dense, rtol=1e-5, atol=1e-5)


def test_sap_gradients_reach_a_b_and_the_scenario_projection():
  layer = _sap()
  x, e = _random(5, 7), _random(5, 3)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(tf.square(layer([x, e])))
  grads = tape.gradient(loss, [layer.low_rank_a, layer.low_rank_b, layer.scenario_kernel,
                               layer.scenario_bias])
  for grad in grads:
    assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0


def test_sap_costs_about_a_dense_layer():
  """No per-example d_in x d_out matrix: the extra work is O(R (d_in + d_out + d_s))."""
  x = tf.keras.Input((512,), name='x')
  e = tf.keras.Input((16,), name='e')
  sap = tf.keras.Model([x, e], layers.ScenarioAdaptiveProjection(128, rank=4)([x, e]))
  dense = tf.keras.Model([x, e], tf.keras.layers.Dense(128)(x))
  flops = {}
  for name, model in (('sap', sap), ('dense', dense)):
    concrete = tf.function(model).get_concrete_function(
        [tf.TensorSpec([1, 512]), tf.TensorSpec([1, 16])])
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options['output'] = 'none'
    flops[name] = tf.compat.v1.profiler.profile(graph=concrete.graph,
                                                options=options).total_float_ops
  assert flops['dense'] >= 2 * 512 * 128
  assert flops['sap'] < 1.05 * flops['dense']


def test_sap_config_round_trip():
  layer = layers.ScenarioAdaptiveProjection(8, rank=3, use_bias=False, name='p')
  clone = layers.ScenarioAdaptiveProjection.from_config(layer.get_config())
  assert clone.get_config() == layer.get_config()


def _dsbn(momentum=0.9, epsilon=1e-3):
  layer = layers.DomainSpecificBatchNormalization(3, momentum=momentum, epsilon=epsilon)
  layer.build(((None, 2), (None,)))
  return layer


def test_dsbn_training_on_scenario_0_moves_only_scenario_0_statistics():
  layer = _dsbn()
  layer.gamma.assign([[2.0, 3.0], [1.0, 1.0], [1.0, 1.0]])
  layer.beta.assign([[0.5, -0.5], [0.0, 0.0], [0.0, 0.0]])
  x = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 1.0], [7.0, 3.0]], np.float32)
  y = layer([x, np.zeros(4, np.int64)], training=True).numpy()
  mean, var = x.mean(0), x.var(0)  # biased variance, as batch normalization uses
  np.testing.assert_allclose(
      y, (x - mean) / np.sqrt(var + 1e-3) * [2.0, 3.0] + [0.5, -0.5], rtol=1e-5)
  moving_mean, moving_var = layer.moving_mean.numpy(), layer.moving_variance.numpy()
  np.testing.assert_allclose(moving_mean[0], 0.1 * mean, rtol=1e-5)
  np.testing.assert_allclose(moving_var[0], 0.9 + 0.1 * var, rtol=1e-5)
  np.testing.assert_array_equal(moving_mean[1:], 0.0)
  np.testing.assert_array_equal(moving_var[1:], 1.0)


@pytest.mark.parametrize('training', [True, False])
def test_dsbn_mixed_batch_normalises_each_example_with_its_own_scenario(training):
  """Each example gets its own scenario's statistics (the batch's in training, the moving
  ones in inference) and its own scenario's gamma and beta, all non-trivial."""
  layer = _dsbn()
  layer.gamma.assign(_random(3, 2))
  layer.beta.assign(_random(3, 2))
  layer.moving_mean.assign(_random(3, 2))
  layer.moving_variance.assign(RNG.uniform(0.5, 2.0, (3, 2)).astype(np.float32))
  gamma, beta = layer.gamma.numpy(), layer.beta.numpy()
  moving_mean, moving_var = layer.moving_mean.numpy(), layer.moving_variance.numpy()
  x = np.array([[1.0, 2.0], [10.0, 20.0], [3.0, 4.0], [30.0, 60.0], [2.0, 9.0]], np.float32)
  scenario = np.array([0, 2, 0, 2, 0])
  y = layer([x, scenario], training=training).numpy()
  for s in (0, 2):
    rows = x[scenario == s]
    mean, var = ((rows.mean(0), rows.var(0)) if training else
                 (moving_mean[s], moving_var[s]))
    np.testing.assert_allclose(y[scenario == s],
                               (rows - mean) / np.sqrt(var + 1e-3) * gamma[s] + beta[s],
                               rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(layer.moving_mean.numpy()[1], moving_mean[1])  # 1 absent


def test_dsbn_inference_uses_each_scenarios_moving_statistics():
  layer = _dsbn(epsilon=0.0)
  layer.moving_mean.assign([[0.0, 0.0], [10.0, 10.0], [-1.0, 1.0]])
  layer.moving_variance.assign([[1.0, 1.0], [4.0, 4.0], [0.25, 0.25]])
  layer.gamma.assign(np.ones((3, 2), np.float32))
  x = np.array([[2.0, 2.0], [2.0, 2.0], [2.0, 2.0]], np.float32)
  y = layer([x, np.array([0, 1, 2])], training=False).numpy()
  np.testing.assert_allclose(y, [[2.0, 2.0], [-4.0, -4.0], [6.0, 2.0]], rtol=1e-6)
  np.testing.assert_array_equal(layer.moving_mean.numpy()[1], 10.0)  # unchanged


def _block(use_sap=True, use_dsbn=True):
  block = layers.SAPMixtureOfExperts(5, num_scenarios=3, num_experts=3, expert_units=6,
                                     rank=2, use_sap=use_sap, use_dsbn=use_dsbn)
  return block


def test_gate_weights_sum_to_one_and_depend_only_on_the_scenario():
  block = _block()
  e_table = _random(3, 4)  # one embedding per scenario
  scenario = np.array([0, 0, 1, 2, 1])
  x = _random(5, 8)
  block([x, e_table[scenario], scenario], training=False)
  alpha = block.gate_weights(e_table[scenario]).numpy()
  np.testing.assert_allclose(alpha.sum(axis=1), 1.0, rtol=1e-6)
  np.testing.assert_allclose(alpha[0], alpha[1])  # same scenario, other features
  np.testing.assert_allclose(alpha[2], alpha[4])
  assert not np.allclose(alpha[0], alpha[3])


def _randomize(layer) -> dict:
  """Random values in every weight of a built layer; {name below the layer: array}.

  Variances are positive, everything else (PReLU slopes, gamma, beta, biases) is
  non-trivial, so a wrongly wired weight shows in the output."""
  weights = {}
  for variable in layer.weights:
    name = variable.name.split('/', 1)[1].rsplit(':', 1)[0]  # e.g. expert_0/sap/bias
    value = (RNG.uniform(0.5, 2.0, variable.shape) if name.endswith('moving_variance')
             else RNG.normal(size=variable.shape)).astype(np.float32)
    variable.assign(value)
    weights[name] = value
  return weights


def _np_sap(w, prefix, x, e):
  b_s = e @ w[f'{prefix}/scenario_kernel'] + w[f'{prefix}/scenario_bias']  # [B, R]
  low_rank = ((x @ w[f'{prefix}/low_rank_a']) * b_s) @ w[f'{prefix}/low_rank_b']
  return x @ w[f'{prefix}/shared_kernel'] + low_rank + w[f'{prefix}/bias']


def _np_mixture(w, x, e, scenario, num_experts, training, epsilon=1e-3):
  """SAP-MMoE from its weights alone: DSBN(PReLU(SAP_k(x | e))) mixed by softmax(W e + b),
  then the forward SAP (section 3.3 of the paper)."""
  experts = []
  for k in range(num_experts):
    h = _np_sap(w, f'expert_{k}/sap', x, e)
    alpha = w[f'expert_{k}/prelu/alpha']
    h = np.maximum(h, 0) + alpha * np.minimum(h, 0)
    if training:  # each example with the batch statistics of its own scenario
      mean = np.stack([h[scenario == s].mean(0) for s in scenario])
      var = np.stack([h[scenario == s].var(0) for s in scenario])
    else:
      mean = w[f'expert_{k}/dsbn/moving_mean'][scenario]
      var = w[f'expert_{k}/dsbn/moving_variance'][scenario]
    experts.append(w[f'expert_{k}/dsbn/gamma'][scenario] * (h - mean) /
                   np.sqrt(var + epsilon) + w[f'expert_{k}/dsbn/beta'][scenario])
  logits = e @ w['gate/kernel'] + w['gate/bias']
  gates = np.exp(logits - logits.max(1, keepdims=True))
  gates /= gates.sum(1, keepdims=True)  # [B, K]
  mixed = sum(gates[:, k:k + 1] * experts[k] for k in range(num_experts))
  return _np_sap(w, 'sap_forward', mixed, e)


@pytest.mark.parametrize('training', [False, True])
def test_mixture_matches_numpy_from_the_raw_weights_on_a_mixed_batch(training):
  block = _block()
  scenario = np.array([0, 2, 1, 2, 0, 1, 1])  # every scenario, interleaved
  x, e = _random(7, 8), _random(7, 4)
  block([x, e, scenario], training=False)  # build
  weights = _randomize(block)
  out = block([x, e, scenario], training=training).numpy()
  expected = _np_mixture(weights, x, e, scenario, num_experts=3, training=training)
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('use_sap,use_dsbn', [(False, True), (True, False), (False, False)])
def test_ablated_expert_is_dense_or_shared_batch_norm_in_numpy(use_sap, use_dsbn):
  """w/o SAP the expert ignores e_s (a Dense layer); w/o DSBN it ignores the scenario index
  (one BatchNormalization); checked against numpy, inference mode."""
  expert = layers.ScenarioAdaptiveExpert(6, num_scenarios=3, rank=2, use_sap=use_sap,
                                         use_dsbn=use_dsbn)
  x, e, scenario = _random(5, 8), _random(5, 4), np.array([0, 1, 2, 1, 0])
  expert([x, e, scenario], training=False)
  w = _randomize(expert)
  h = (_np_sap(w, 'sap', x, e) if use_sap else x @ w['dense/kernel'] + w['dense/bias'])
  h = np.maximum(h, 0) + w['prelu/alpha'] * np.minimum(h, 0)
  if use_dsbn:
    norm = {n: w[f'dsbn/{n}'][scenario] for n in ('gamma', 'beta', 'moving_mean',
                                                   'moving_variance')}
    epsilon = 1e-3
  else:
    norm = {n: w[f'bn/{n}'] for n in ('gamma', 'beta', 'moving_mean', 'moving_variance')}
    epsilon = tf.keras.layers.BatchNormalization().epsilon
  expected = (norm['gamma'] * (h - norm['moving_mean']) /
              np.sqrt(norm['moving_variance'] + epsilon) + norm['beta'])
  np.testing.assert_allclose(expert([x, e, scenario], training=False).numpy(), expected,
                             rtol=1e-4, atol=1e-4)
  other_e = expert([x, _random(5, 4), scenario], training=False).numpy()
  other_scenario = expert([x, e, (scenario + 1) % 3], training=False).numpy()
  assert np.allclose(other_e, expected, atol=1e-5) == (not use_sap)
  assert np.allclose(other_scenario, expected, atol=1e-5) == (not use_dsbn)


@pytest.mark.parametrize('use_sap,use_dsbn,projection,normalization', [
    (True, True, layers.ScenarioAdaptiveProjection, layers.DomainSpecificBatchNormalization),
    (False, True, tf.keras.layers.Dense, layers.DomainSpecificBatchNormalization),
    (True, False, layers.ScenarioAdaptiveProjection, tf.keras.layers.BatchNormalization),
])
def test_ablation_flags_swap_the_sublayers(use_sap, use_dsbn, projection, normalization):
  block = _block(use_sap, use_dsbn)
  block([_random(2, 8), _random(2, 4), np.array([0, 1])], training=True)
  for expert in block._experts:  # pylint: disable=protected-access
    assert type(expert._projection) is projection  # pylint: disable=protected-access
    assert type(expert._normalization) is normalization  # pylint: disable=protected-access


def test_masked_pooling_numbers():
  values = np.array([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
                     [[7.0, 8.0], [9.0, 9.0], [0.0, 0.0]]], np.float32)
  mask = np.array([[True, False, True], [False, False, False]])
  mean = layers.MaskedPooling('mean')([values, mask]).numpy()
  maximum = layers.MaskedPooling('max')([values, mask]).numpy()
  np.testing.assert_allclose(mean, [[3.0, 4.0], [0.0, 0.0]])
  np.testing.assert_allclose(maximum, [[5.0, 6.0], [0.0, 0.0]])


def test_feature_embedding_fields():
  layer = layers.FeatureEmbedding([('c', 5, 0), ('tags', 4, 3)], ['age'], dim=2,
                                  numeric_lists=[('clicks', 3)])
  inputs = {'c': np.array([3, 0]), 'tags': np.array([[1, 2, -1], [-1, -1, -1]]),
            'age': np.array([2.0, -1.0], np.float32),
            'clicks': np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 0.0]], np.float32)}
  fields = layer(inputs).numpy()  # [B, 4, 2]
  tables = {v.name.split('/')[-2]: v.numpy() for v in layer.weights if 'embeddings' in v.name}
  c_rows, tag_rows = tables['c_embedding'], tables['tags_embedding']
  w_age = layer.numeric_kernel.numpy()[0]
  np.testing.assert_allclose(fields[0, 0], c_rows[3])
  np.testing.assert_allclose(fields[0, 1], (tag_rows[1] + tag_rows[2]) / 2, rtol=1e-6)
  np.testing.assert_allclose(fields[1, 1], 0.0)  # no tag: zeros
  np.testing.assert_allclose(fields[:, 2], [2.0 * w_age, -1.0 * w_age], rtol=1e-6)
  w_clicks = layer.numeric_list_kernels[0].numpy()  # [3, 2]
  np.testing.assert_allclose(fields[0, 3], w_clicks[0] + 2.0 * w_clicks[2], rtol=1e-6)
  np.testing.assert_allclose(fields[1, 3], 0.0)


def test_scenario_embedding_maps_raw_values_and_unknowns():
  layer = layers.ScenarioEmbedding(['1', '4', '0'], dim=3)
  index, e_s = layer(tf.constant(['4', '0', '9', '']))
  np.testing.assert_array_equal(index.numpy(), [1, 2, 3, 3])
  assert e_s.shape == (4, 3)


def test_scenario_specific_dense_uses_each_scenarios_kernel():
  layer = layers.ScenarioSpecificDense(3, num_scenarios=2, activation='relu')
  x, scenario = _random(4, 5), np.array([1, 0, 1, 1])
  y = layer([x, scenario]).numpy()
  kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
  expected = np.stack([np.maximum(x[i] @ kernel[s] + bias[s], 0) for i, s in
                       enumerate(scenario)])
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('layer', [
    layers.DomainSpecificBatchNormalization(4, momentum=0.5),
    layers.MaskedPooling('max'),
    layers.FeatureEmbedding([('a', 3, 0)], ['n'], 4, numeric_lists=[('l', 2)]),
    layers.ScenarioEmbedding(['x', 'y'], 4),
    layers.BehaviorSequenceEmbedding(10, 3, 4, 'max'),
    layers.ScenarioSpecificDense(4, 3, 'relu'),
    layers.ScenarioAdaptiveExpert(4, 3, 2, use_sap=False),
    layers.SAPMixtureOfExperts(4, 3, 2, 8, 2, use_dsbn=False),
])
def test_every_layer_has_a_config_that_rebuilds_it(layer):
  assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()


def test_parameter_count_counts_shared_variables_once():
  a = tf.keras.Sequential([tf.keras.layers.Dense(3, input_shape=(2,))])
  assert model_stats.parameter_count(a, a) == 2 * 3 + 3
