"""The ICAN, M5 and PERSCEN baselines: their layers against numpy, their towers on the fixture.

Each layer's expected output is computed here with numpy from the layer's raw weights
(set to known random values) and the equation of its docstring.
"""

import numpy as np
import pytest
import tensorflow as tf

from core import config as configs
from models import build
from models import layers
from models.towers.encoders import UserEncoder

RNG = np.random.default_rng(11)
BASELINES = ('ican', 'm5', 'perscen')
TOLERANCE = dict(rtol=1e-5, atol=1e-5)


def _random(*shape, scale=1.0):
  return (scale * RNG.normal(size=shape)).astype(np.float32)


def _randomize(layer, scale=0.5):
  """Known random values in every weight of a built layer (biases included)."""
  layer.set_weights([_random(*w.shape, scale=scale) for w in layer.weights])


def _softmax(x, axis=-1):
  e = np.exp(x - x.max(axis=axis, keepdims=True))
  return e / e.sum(axis=axis, keepdims=True)


def _prelu(x, alpha):
  return np.maximum(x, 0) + alpha * np.minimum(x, 0)


# ICAN: contextual attention and internal (field self-) attention.

def test_contextual_field_attention_weights_fields_by_the_context():
  layer = layers.ContextualFieldAttention(units=(6, 5))
  fields, context = _random(3, 5, 4), _random(3, 4)
  layer([fields, context])
  _randomize(layer)
  (w1, w2), (b1, b2) = ([v.numpy() for v in layer.hidden_kernels],
                        [v.numpy() for v in layer.hidden_biases])
  w, b = layer.score_kernel.numpy(), layer.score_bias.numpy()
  expected, alphas = [], []
  for e, c in zip(fields, context):
    scores = []
    for e_i in e:
      x = np.concatenate([c, e_i, e_i - c, e_i * c])
      h = np.tanh(np.tanh(x @ w1 + b1) @ w2 + b2)
      scores.append(np.tanh(h @ w + b)[0])
    alpha = _softmax(np.array(scores))
    alphas.append(alpha)
    expected.append(alpha[:, None] * e)
  np.testing.assert_allclose(layer.field_weights([fields, context]).numpy(), alphas,
                             **TOLERANCE)
  np.testing.assert_allclose(layer([fields, context]).numpy(), expected, **TOLERANCE)


def test_field_self_attention_is_multi_head_attention_among_fields():
  layer = layers.FieldSelfAttention(units=6, num_heads=2)
  fields = _random(3, 5, 4)
  layer(fields)
  _randomize(layer)
  w_qkv, b_qkv = layer.qkv_kernel.numpy(), layer.qkv_bias.numpy()
  w_o, b_o = layer.output_kernel.numpy(), layer.output_bias.numpy()
  expected = []
  for e in fields:
    qkv = e @ w_qkv + b_qkv
    q, k, v = qkv[:, :6], qkv[:, 6:12], qkv[:, 12:]
    heads = []
    for h in range(2):
      cols = slice(3 * h, 3 * h + 3)
      a = _softmax(q[:, cols] @ k[:, cols].T / np.sqrt(3.0), axis=1)
      heads.append(a @ v[:, cols])
    expected.append(np.concatenate(heads, axis=1) @ w_o + b_o)
  np.testing.assert_allclose(layer(fields).numpy(), expected, **TOLERANCE)
  np.testing.assert_allclose(layer.attention(fields).numpy().sum(axis=-1), 1.0, **TOLERANCE)


# M5: multi-interest extraction and the split mixture of experts.

def test_multi_interest_extraction_pools_clicks_per_interest_and_mixes_by_scenario():
  layer = layers.MultiInterestExtraction(num_interests=3, units=7)
  sequence, scenario = _random(3, 6, 4), _random(3, 5)
  mask = np.array([[1, 1, 0, 1, 0, 0], [1, 1, 1, 1, 1, 1], [0] * 6], bool)
  layer([sequence, mask, scenario])
  _randomize(layer)
  w1, b1, w2, w_q, b_q = [v.numpy() for v in (
      layer.attention_kernel, layer.attention_bias, layer.interest_kernel,
      layer.query_kernel, layer.query_bias)]
  expected = []
  for v, m, e_s in zip(sequence, mask, scenario):
    clicks = v[m]  # [L', dim]
    if not len(clicks):
      expected.append(np.zeros(4))
      continue
    a = _softmax((np.tanh(clicks @ w1 + b1) @ w2).T, axis=1)  # [K, L']
    interests = a @ clicks  # [K, dim]
    beta = _softmax(interests @ (e_s @ w_q + b_q) / np.sqrt(4.0))
    expected.append(beta @ interests)
  got = layer([sequence, mask, scenario]).numpy()
  np.testing.assert_allclose(got, expected, **TOLERANCE)
  np.testing.assert_array_equal(got[2], 0.0)  # no clicks, no interest


def test_split_mixture_of_experts_mixes_shared_and_own_scenario_experts():
  layer = layers.SplitMixtureOfExperts(units=3, num_scenarios=3, num_experts=2)
  x, scenario = _random(5, 4), np.array([0, 2, 1, 2, 0])
  layer([x, scenario])
  _randomize(layer)  # the PReLU slopes too
  shared = [(d.kernel.numpy(), d.bias.numpy(), a.alpha.numpy())
            for d, a in zip(layer._shared, layer._shared_act)]
  w_s, b_s = layer._specific.kernel.numpy(), layer._specific.bias.numpy()
  a_s = layer._specific_act.alpha.numpy()
  w_g, b_g = layer._gate.kernel.numpy(), layer._gate.bias.numpy()
  expected, gates = [], []
  for x_i, s in zip(x, scenario):
    experts = [_prelu(x_i @ w + b, a) for w, b, a in shared]
    experts.append(_prelu(x_i @ w_s[s] + b_s[s], a_s))
    g = _softmax(x_i @ w_g[s] + b_g[s])
    gates.append(g)
    expected.append(sum(g_k * e_k for g_k, e_k in zip(g, experts)))
  np.testing.assert_allclose(layer.gate_weights([x, scenario]).numpy(), gates, **TOLERANCE)
  np.testing.assert_allclose(layer([x, scenario]).numpy(), expected, **TOLERANCE)


# PERSCEN: the user-specific feature graph, vector quantization, the scenario-aware GLU.

def _feature_graph_by_hand(layer, fields):
  w1, codes, b1, w2, b2 = [v.numpy() for v in (
      layer.generator_kernel, layer.field_codes, layer.generator_bias, layer.row_kernel,
      layer.row_bias)]
  kernels = [k.numpy() for k in layer.layer_kernels]
  graphs, outputs = [], []
  for e in fields:  # e [F, dim]
    x = e.reshape(-1)
    rows = np.stack([np.maximum(x @ w1 + codes[i] + b1, 0) @ w2 + b2
                     for i in range(len(e))])  # G [F, F]
    p = _softmax(rows, axis=1)
    s = (p + p.T) / 2
    degree = s.sum(axis=1)
    first = s / np.sqrt(np.outer(degree, degree))
    adjacency = [first]
    for _ in kernels[1:]:
      adjacency.append(adjacency[-1] @ first)
    h, total = e, e.copy()
    for l, (a_l, w_l) in enumerate(zip(adjacency, kernels)):
      a = a_l @ (e @ w_l)
      if l < len(kernels) - 1:
        a = np.where(a > 0, a, 0.01 * a)
      h = a * h
      total = total + h
    graphs.append(adjacency)
    outputs.append(total)
  return graphs, np.stack(outputs)


def test_user_feature_graph_generates_a_graph_per_user_and_propagates_over_it():
  layer = layers.UserFeatureGraph(num_layers=3, hidden=6)
  fields = _random(3, 4, 5)
  layer(fields)
  _randomize(layer)
  graphs, expected = _feature_graph_by_hand(layer, fields)
  got = [a.numpy() for a in layer.adjacency(fields)]
  for l in range(3):
    np.testing.assert_allclose(got[l], [g[l] for g in graphs], **TOLERANCE)
    np.testing.assert_allclose(got[l], np.transpose(got[l], [0, 2, 1]), **TOLERANCE)
  assert np.abs(got[0][0] - got[0][1]).max() > 1e-3  # a different graph per user
  np.testing.assert_allclose(layer(fields).numpy(), expected, **TOLERANCE)


def test_vector_quantizer_picks_the_nearest_code_and_passes_gradients_straight():
  layer = layers.VectorQuantizer(num_codes=5, commitment=0.25)
  z = _random(6, 4)
  layer(z)
  _randomize(layer, scale=1.0)
  codebook = layer.codebook.numpy()
  nearest = np.argmin(((z[:, None, :] - codebook[None]) ** 2).sum(axis=2), axis=1)
  z_var = tf.Variable(z)
  upstream = _random(6, 4)
  with tf.GradientTape(persistent=True) as tape:
    q = layer(z_var, training=True)
    (vq_loss,) = layer.losses
    task = tf.reduce_sum(q * upstream)
  np.testing.assert_array_equal(layer.code_index(z).numpy(), nearest)
  np.testing.assert_allclose(q.numpy(), codebook[nearest], **TOLERANCE)
  code = codebook[nearest]
  np.testing.assert_allclose(float(vq_loss), 1.25 * np.mean((z - code) ** 2), **TOLERANCE)
  # Straight-through: the task gradient reaches z unchanged and not the codebook.
  np.testing.assert_allclose(tape.gradient(task, z_var).numpy(), upstream, **TOLERANCE)
  assert tape.gradient(task, layer.codebook) is None
  # The loss moves the chosen codes towards z (codebook term) and z towards them (0.25).
  grad_codebook = tf.convert_to_tensor(tape.gradient(vq_loss, layer.codebook)).numpy()
  by_hand = np.zeros_like(codebook)
  np.add.at(by_hand, nearest, 2 * (code - z) / z.size)
  np.testing.assert_allclose(grad_codebook, by_hand, **TOLERANCE)
  np.testing.assert_allclose(tape.gradient(vq_loss, z_var).numpy(),
                             0.25 * 2 * (z - code) / z.size, **TOLERANCE)
  layer(z, training=False)
  assert not layer.losses  # the VQ loss is a training loss only


def test_scenario_aware_glu_gates_the_shared_path_with_the_preference():
  layer = layers.ScenarioAwareGLU(units=6)
  x, p = _random(4, 5), _random(4, 3)
  layer([x, p])
  _randomize(layer)
  w, b, a, v, c = [t.numpy() for t in (layer.kernel, layer.bias, layer.alpha,
                                         layer.gate_kernel, layer.gate_bias)]
  expected = _prelu(x @ w + b, a) / (1 + np.exp(-(p @ v + c)))
  np.testing.assert_allclose(layer([x, p]).numpy(), expected, **TOLERANCE)


@pytest.mark.parametrize('layer', [
    layers.ContextualFieldAttention((8, 4)), layers.FieldSelfAttention(8, 4),
    layers.MultiInterestExtraction(5, 9), layers.SplitMixtureOfExperts(7, 3, 2),
    layers.UserFeatureGraph(3, 5), layers.VectorQuantizer(9, 0.5),
    layers.ScenarioAwareGLU(6)])
def test_new_layers_rebuild_from_their_config(layer):
  clone = type(layer).from_config(layer.get_config())
  assert clone.get_config() == layer.get_config()


# The towers on the transformed KuaiRand fixture.

@pytest.fixture(scope='module')
def inputs(fixture_batches):
  space, batches = fixture_batches
  # One batch is enough here: the one with the most history clicks (the batches come in
  # the records' sorted order, so the first may hold users without any).
  return space, max(batches, key=lambda b: int((b[0]['history_item_id'] >= 0).numpy().sum()))


def _small_batch(space, batch, size=12):
  """The `size` examples of the batch with the longest click histories (the towers that
  read the sequence need clicks; a batch's first rows may have none), their scenarios
  cycling through every scenario."""
  clicks = (batch[0]['history_item_id'].numpy() >= 0).sum(axis=1)
  rows = np.sort(np.argsort(-clicks, kind='stable')[:size])
  small = {name: tf.gather(value, rows) for name, value in batch[0].items()}
  small['scenario'] = tf.constant([space.scenarios[i % len(space.scenarios)]
                                   for i in range(size)])
  return small


def _tower(space, model):
  config = configs.ModelConfig(model=model, output_dim=8, hidden_units=(16, 8),
                               expert_units=16, scenario_popularity_prior=False)
  return build.build_user_tower(config, space)


def test_user_encoder_sequence_option_keeps_the_default_outputs(inputs):
  space, batch = inputs
  features_ = _small_batch(space, batch)
  encoder = UserEncoder(space.to_json(), 4, 'mean')
  fields, e_s, index = encoder(features_)
  names = sorted(v.name for v in encoder.weights)
  fields_2, e_s_2, index_2, (values, mask, history_scenario) = encoder(
      features_, return_sequence=True)
  assert sorted(v.name for v in encoder.weights) == names  # no new weights
  for a, b in ((fields, fields_2), (e_s, e_s_2), (index, index_2)):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  ids = features_['history_item_id'].numpy()
  np.testing.assert_array_equal(mask.numpy(), ids >= 0)
  raw = features_['history_scenario'].numpy().astype(str)
  lookup = {s: i for i, s in enumerate(space.scenarios)}
  np.testing.assert_array_equal(history_scenario.numpy(),
                                [[lookup.get(s, len(space.scenarios)) for s in row]
                                 for row in raw])
  # The pooled history field is the masked mean of the returned sequence.
  m = mask.numpy()[:, :, None]
  pooled = (values.numpy() * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1)
  np.testing.assert_allclose(fields.numpy()[:, -2], pooled, **TOLERANCE)


@pytest.mark.parametrize('model', BASELINES)
def test_baseline_tower_gives_one_embedding_per_example(inputs, model):
  space, batch = inputs
  features_ = _small_batch(space, batch)
  tower = _tower(space, model)
  assert tower(features_, training=False).shape == (12, 8)


@pytest.mark.parametrize('model', BASELINES)
def test_baseline_tower_embeds_the_same_user_differently_per_scenario(inputs, model):
  space, batch = inputs
  features_ = _small_batch(space, batch)
  tower = _tower(space, model)
  tower(features_, training=False)
  # Scenario embeddings of unit scale (initialised within +-0.05, their effect on an
  # untrained tower can be below float32 noise for some examples).
  rng = np.random.default_rng(0)
  for variable in tower.variables:
    if 'scenario_embedding' in variable.name:
      variable.assign(rng.normal(size=variable.shape).astype(np.float32))
  embeddings = []
  for scenario in space.scenarios:
    features_['scenario'] = tf.fill([12], scenario)
    embeddings.append(tower(features_, training=False).numpy())
  scale = np.abs(np.array(embeddings)).max()
  for i in range(len(embeddings)):
    for j in range(i):
      assert (np.abs(embeddings[i] - embeddings[j]).max(axis=1) > 1e-4 * scale).all(), (i, j)


# Scenario-specific parameters of each tower (substrings of variable names); every one
# must get a gradient from a batch of mixed scenarios.
SCENARIO_PARAMETERS = {
    'ican': ('contextual_attention/',),
    'm5': ('split_moe/scenario_expert/', 'split_moe/scenario_gate/',
           'multi_interest/query_'),
    'perscen': ('scenario_encoder/', 'scenario_glu_0/gate_', 'scenario_glu_1/gate_',
                'vector_quantizer/codebook', 'sequence_encoder/'),
}


@pytest.mark.parametrize('model', BASELINES)
def test_gradients_reach_the_scenario_specific_parameters(inputs, model):
  space, batch = inputs
  features_ = _small_batch(space, batch)
  tower = _tower(space, model)
  tower(features_, training=True)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(tf.square(tower(features_, training=True)))
    loss += tf.add_n(tower.losses) if tower.losses else 0.0
  scenario_table = tower.encoder._scenario._embedding.embeddings
  chosen = [v for v in tower.trainable_variables
            if any(key in v.name for key in SCENARIO_PARAMETERS[model])]
  assert len(chosen) >= len(SCENARIO_PARAMETERS[model])
  grads = tape.gradient(loss, [scenario_table] + chosen)
  rows = np.abs(tf.convert_to_tensor(grads[0]).numpy()).max(axis=1)
  assert (rows[:len(space.scenarios)] > 0).all()  # every scenario's e_s row
  for variable, grad in zip(chosen, grads[1:]):
    assert grad is not None, variable.name
    grad = tf.convert_to_tensor(grad).numpy()
    if variable.shape.rank == 3 and variable.shape[0] == len(space.scenarios):
      # ScenarioSpecificDense: each scenario's own kernel learns from its examples.
      assert (np.abs(grad).reshape(len(space.scenarios), -1).max(axis=1) > 0).all()
    else:
      assert np.abs(grad).max() > 0, variable.name


def test_perscen_scenario_preference_reads_only_the_clicks_in_the_scenario(inputs):
  space, batch = inputs
  features_ = _small_batch(space, batch)
  tower = _tower(space, 'perscen')
  tower(features_, training=False)

  def preference(features__):
    _, e_s, d, (sequence, mask, history_scenario) = tower.encoder(features__,
                                                                  return_sequence=True)
    return tower.scenario_preference(e_s, d, sequence, mask, history_scenario,
                                     training=False).numpy()

  before = preference(features_)
  ids = features_['history_item_id'].numpy()
  raw = features_['history_scenario'].numpy().astype(str)
  own = raw == features_['scenario'].numpy().astype(str)[:, None]
  other = (ids >= 0) & ~own
  assert other.any() and (own & (ids >= 0)).any()
  changed = dict(features_)
  changed['history_item_id'] = tf.constant(np.where(other, (ids + 1) % space.item_vocab_size,
                                                    ids))
  np.testing.assert_allclose(preference(changed), before, **TOLERANCE)
  changed['history_item_id'] = tf.constant(np.where(own & (ids >= 0),
                                                    (ids + 1) % space.item_vocab_size, ids))
  rows = (own & (ids >= 0)).any(axis=1)
  assert (np.abs(preference(changed) - before).max(axis=1)[rows] > 1e-6).all()
