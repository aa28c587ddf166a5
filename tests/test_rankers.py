"""The multi-scenario, multi-task rankers (models/rankers) on a tiny hand-made feature
space with random dense inputs."""

import dataclasses
import types

import numpy as np
import pytest
import tensorflow as tf

from core import config as configs
from models import build
from models import features
from models.rankers import base
from models.rankers.mdl import MDLRanker
from models.rankers.teacher import RankerTeacher

B = 8
TASKS = ('click', 'long_view')
TOL = dict(rtol=1e-5, atol=1e-5)
# Small sizes: N_f = 6 feature tokens of width 12 (token mixing: 6 | 12), 2 heads.
CONFIG = configs.RankerConfig(embedding_dim=4, token_dim=12, num_layers=2, num_heads=2,
                              hidden_units=(16,), tower_units=(8,), num_experts=4,
                              top_k=1, num_tokens=4)
SPACE = features.FeatureSpace(
    user=features.TowerInputs(
        (features.Categorical('user_id', 10), features.Categorical('user_active_degree', 4),
         features.Categorical('onehot_feat0', 3, max_values=2)), ('follow_user_num',)),
    item=features.TowerInputs(
        (features.Categorical('item_id', 20), features.Categorical('tag', 5, max_values=3)),
        ('video_duration',), (features.NumericList('scenario_clicks', 3),)),
    item_vocab_size=20, history_length=5, scenarios=('0', '1', '2'))
# The user id and item id only: no 'other fields' groups.
ID_ONLY_SPACE = dataclasses.replace(
    SPACE, user=features.TowerInputs((features.Categorical('user_id', 10),), ()),
    item=features.TowerInputs((features.Categorical('item_id', 20),), ()))
SCENARIOS = np.array(['0', '1', '2', '0', '1', '2', '0', '1'])


def random_inputs(space=SPACE, seed=0, scenarios=SCENARIOS) -> dict:
  """A batch of B examples: random ids (lists partly padding), values and history
  scenarios ('9' is a scenario the model does not serve, '' padding)."""
  rng = np.random.default_rng(seed)
  vocab = {c.name: c.vocab_size for c in space.user.categorical + space.item.categorical}
  batch = {}
  for name, spec in space.tensor_specs(space.user_tower_features +
                                       space.item_tower_features, B).items():
    if name == 'scenario':
      value = scenarios
    elif name == 'history_scenario':
      value = rng.choice(['0', '1', '2', '9', ''], size=spec.shape)
    elif spec.dtype == tf.float32:
      value = rng.normal(size=spec.shape).astype(np.float32)
    else:
      value = rng.integers(0, vocab.get(name, space.item_vocab_size), size=spec.shape)
      if len(spec.shape) == 2:
        value = np.where(rng.random(spec.shape) < 0.7, value, features.PADDING_ID)
    batch[name] = tf.constant(value)
  return batch


def labels_of(batch) -> tf.Tensor:
  """A learnable pattern [B, T]: click = even item id, long_view = scenario '1'."""
  click = batch['item_id'].numpy() % 2 == 0
  long_view = batch['scenario'].numpy().astype(str) == '1'
  return tf.constant(np.stack([click, long_view], axis=1).astype(np.float32))


def ranker(model: str, space=SPACE, seed=0, **overrides) -> base.MultiTaskRanker:
  tf.keras.utils.set_random_seed(seed)
  return build.build_ranker(dataclasses.replace(CONFIG, model=model, **overrides), space,
                            TASKS)


def test_registry_names_the_config_rankers():
  assert tuple(build.RANKERS) == configs.RANKERS
  with pytest.raises(configs.ConfigError, match='ranker.model'):
    build.build_ranker(types.SimpleNamespace(model='dcn_v2'), SPACE, TASKS)


def test_loss_is_the_mean_over_tasks_of_bce():
  logits = tf.constant([[0.3, -2.0], [1.5, 0.1]])
  labels = tf.constant([[1.0, 0.0], [0.0, 1.0]])
  p = 1 / (1 + np.exp(-logits.numpy()))
  bce = -(labels.numpy() * np.log(p) + (1 - labels.numpy()) * np.log(1 - p))
  np.testing.assert_allclose(base.multi_task_binary_cross_entropy(labels, logits).numpy(),
                             bce.mean(axis=1), rtol=1e-6)


@pytest.mark.parametrize('model', configs.RANKERS)
def test_ranker_logits_and_training(model):
  """Logits [B, T], finite; a few steps on a fixed batch fit a learnable pattern; the
  compiled metrics are the per-task AUCs."""
  batch = random_inputs()
  labels = labels_of(batch)
  net = ranker(model)
  logits = net(batch)
  assert logits.shape == (B, len(TASKS)) and np.isfinite(logits.numpy()).all()
  assert net.feature_names == SPACE.user_tower_features + SPACE.item_tower_features
  assert net.task_index('long_view') == 1
  net.compile()  # the default loss and metrics
  before = net.evaluate(batch, labels, verbose=0, return_dict=True)
  assert set(before) == {'loss', 'auc_click', 'auc_long_view'}
  np.testing.assert_allclose(
      before['loss'], base.multi_task_binary_cross_entropy(labels, logits).numpy().mean(),
      rtol=1e-5)
  optimizer = tf.keras.optimizers.Adam(2e-2)
  for _ in range(12):  # eager steps: cheaper here than tracing a train function
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(base.multi_task_binary_cross_entropy(
          labels, net(batch, training=True)))
    gradients = tape.gradient(loss, net.trainable_variables)
    optimizer.apply_gradients(zip(gradients, net.trainable_variables))
  after = net.evaluate(batch, labels, verbose=0, return_dict=True)
  assert after['loss'] < 0.6 * before['loss']
  assert after['auc_click'] > 0.9 and after['auc_long_view'] > 0.9


@pytest.mark.parametrize('model', configs.RANKERS)
def test_ranker_config_and_saved_model_round_trips(model, tmp_path):
  batch = random_inputs()
  net = ranker(model)
  expected = net(batch, training=False).numpy()
  clone = type(net).from_config(net.get_config())
  assert clone.get_config() == net.get_config()
  clone(batch)
  clone.set_weights(net.get_weights())
  np.testing.assert_allclose(clone(batch, training=False).numpy(), expected, **TOL)

  signature = tf.function(lambda inputs: {'logits': net(inputs, training=False)})
  concrete = signature.get_concrete_function(SPACE.tensor_specs(net.feature_names))
  tf.saved_model.save(net, str(tmp_path), signatures={'serving_default': concrete})
  restored = tf.saved_model.load(str(tmp_path)).signatures['serving_default']
  np.testing.assert_allclose(restored(**batch)['logits'].numpy(), expected, **TOL)


@pytest.mark.parametrize('model', ['shared_bottom', 'rankmixer', 'mdl', 'mtmixatt'])
def test_a_space_of_ids_only_drops_the_empty_groups(model):
  net = ranker(model, space=ID_ONLY_SPACE)
  assert net.group_names() == ('user_id', 'history', 'item_id', 'scenario')
  logits = net(random_inputs(ID_ONLY_SPACE))
  assert logits.shape == (B, len(TASKS)) and np.isfinite(logits.numpy()).all()
  if model in ('rankmixer', 'mdl'):
    assert net.tokenizer(net.feature_groups(net.encode(random_inputs(ID_ONLY_SPACE)))
                         ).shape == (B, 4, CONFIG.token_dim)
  # 12 is not a multiple of the 5 tokens of a space with only one side's other fields.
  one_sided = dataclasses.replace(SPACE, item=ID_ONLY_SPACE.item)
  if model in ('rankmixer', 'mdl'):
    with pytest.raises(ValueError, match='multiple of the number of feature tokens'):
      ranker(model, space=one_sided)


def test_semantic_groups_are_the_fields_embeddings():
  net = ranker('rankmixer')
  batch = random_inputs()
  encoded = net.encode(batch)
  groups = dict(zip(net.group_names(), net.feature_groups(encoded)))
  assert tuple(groups) == base.FEATURE_GROUPS
  e = CONFIG.embedding_dim
  # The history group: the pooled sequence and the candidate's attention over it
  # (ranker.history_attention, on in CONFIG).
  assert {k: int(v.shape[1]) for k, v in groups.items()} == {
      'user_id': e, 'user_fields': 3 * e, 'history': 2 * e, 'item_id': e,
      'item_fields': 3 * e, 'scenario': e}
  user_id = net.user_encoder._user._embeddings['user_id'](batch['user_id'])  # pylint: disable=protected-access
  np.testing.assert_array_equal(groups['user_id'].numpy(), user_id.numpy())
  np.testing.assert_array_equal(groups['item_fields'].numpy(),
                                tf.reshape(encoded['item_fields'][:, 1:], [B, -1]).numpy())
  _, values, mask = net.user_encoder._history(  # pylint: disable=protected-access
      [batch['history_item_id'], net.user_encoder.scenario_index(
          {'scenario': batch['history_scenario']})], return_sequence=True)
  attended = net.target_attention([groups['item_id'], values, mask])
  np.testing.assert_allclose(groups['history'].numpy(),
                             tf.concat([encoded['history'], attended], axis=1).numpy(),
                             rtol=1e-6)
  paper = ranker('rankmixer', history_attention=False)
  groups = paper.feature_groups(paper.encode(batch))
  assert int(groups[paper.group_names().index('history')].shape[1]) == e


def _perturb_scenario_token(net: MDLRanker, s: int):
  """New random weights in scenario token s's own tokenizer FFN (its slice only)."""
  rng = np.random.default_rng(5)
  for dense in (net.scenario_tokenizer.hidden, net.scenario_tokenizer.output_dense):
    for weight in (dense.kernel, dense.bias):
      value = weight.numpy()
      value[s] = rng.normal(size=value[s].shape)
      weight.assign(value)


def test_mdl_example_sees_only_its_own_and_the_global_scenario_token():
  """Changing scenario token s' (its tokenizer's weights) changes the logits of the
  examples of s' only; changing the global token changes every example's."""
  batch = random_inputs()
  scenarios = batch['scenario'].numpy().astype(str)
  for s, name in enumerate(SPACE.scenarios):
    net = ranker('mdl')
    before = net(batch).numpy()
    _perturb_scenario_token(net, s)
    after = net(batch).numpy()
    own = scenarios == name
    np.testing.assert_allclose(after[~own], before[~own], rtol=1e-6, atol=1e-6)
    assert (np.abs(after[own] - before[own]).max(axis=1) > 1e-4).all()
  net = ranker('mdl')
  before = net(batch).numpy()
  _perturb_scenario_token(net, len(SPACE.scenarios))  # the global token, last
  assert (np.abs(net(batch).numpy() - before).max(axis=1) > 1e-4).all()
  # The check can fail: in the RankMixer-interaction ablation (d = 12 = N_f + N_s + 1 +
  # N_t tokens, mixed jointly) every scenario token reaches the feature tokens, hence
  # every example.
  net = ranker('mdl', use_domain_attention=False)
  assert net.blocks[0].ablation_interaction == 'auto'
  before = net(batch).numpy()
  assert net.blocks[0].resolved_interaction == 'rankmixer'
  _perturb_scenario_token(net, 0)
  assert (np.abs(net(batch).numpy() - before).max(axis=1) > 1e-4).all()


def test_mdl_scenario_specific_history_pools_each_scenarios_clicks():
  net = ranker('mdl')
  batch = random_inputs()
  sequence = net.encode(batch, return_sequence=True)['sequence']
  spec = net.scenario_specific_history(sequence).numpy()  # [B, N_s + 1, e]
  values, mask, click_scenario = (t.numpy() for t in sequence)
  assert spec.shape == (B, len(SPACE.scenarios) + 1, CONFIG.embedding_dim)
  for b in range(B):
    for s in range(len(SPACE.scenarios) + 1):
      chosen = mask[b] & ((click_scenario[b] == s) if s < len(SPACE.scenarios) else True)
      want = values[b][chosen].mean(axis=0) if chosen.any() else np.zeros(values.shape[2])
      np.testing.assert_allclose(spec[b, s], want, **TOL)


@pytest.mark.parametrize('flag', ['use_task_tokens', 'use_scenario_tokens',
                                  'use_global_token', 'use_domain_attention', 'both_towers'])
def test_mdl_ablations(flag):
  batch = random_inputs()
  full = ranker('mdl')
  overrides = ({'use_task_tokens': False, 'use_scenario_tokens': False}
               if flag == 'both_towers' else {flag: False})
  net = ranker('mdl', **overrides)
  logits = net(batch).numpy()
  assert logits.shape == (B, len(TASKS)) and np.isfinite(logits).all()
  assert np.abs(logits - full(batch).numpy()).max() > 1e-4
  scores = net.attention_scores(batch)
  assert len(scores) == CONFIG.num_layers
  kinds = {'use_task_tokens': {'scenario'}, 'use_scenario_tokens': {'task'},
           'use_global_token': {'scenario', 'task'}, 'use_domain_attention': set(),
           'both_towers': set()}[flag]
  assert all(set(layer) == kinds for layer in scores)
  if flag == 'use_global_token':
    assert scores[0]['scenario'].shape[2] == len(SPACE.scenarios)
  names = ' '.join(v.name for v in net.variables)
  assert ('task_tokenizer/' in names) == net.use_task_tokens
  assert ('scenario_tokenizer/' in names) == net.use_scenario_tokens
  assert ('scenario_towers/' in names) == (not net.use_scenario_tokens)
  assert hasattr(net, 'task_towers') == (not net.use_task_tokens)
  if not net.use_scenario_tokens:  # scenario towers: the scenario picks the logit layer
    other = dict(batch, scenario=tf.constant(np.roll(SCENARIOS, 1)))
    assert (np.abs(net(other).numpy() - logits).max(axis=1) > 1e-5).all()
  clone = MDLRanker.from_config(net.get_config())
  clone(batch)
  clone.set_weights(net.get_weights())
  np.testing.assert_allclose(clone(batch).numpy(), logits, **TOL)


def test_mdl_attention_scores():
  net = ranker('mdl')
  scores = net.attention_scores(random_inputs())
  assert len(scores) == CONFIG.num_layers
  for layer in scores:
    assert layer['scenario'].shape == (B, CONFIG.num_heads, len(SPACE.scenarios) + 1, 6)
    assert layer['task'].shape == (B, CONFIG.num_heads, len(TASKS), 6)
    for a in layer.values():
      np.testing.assert_allclose(a.numpy().sum(axis=-1), 1.0, rtol=1e-5)


def test_mtmixatt_routing_is_top_k_and_depends_on_the_scenario():
  net = ranker('mtmixatt', top_k=2)
  batch = random_inputs(scenarios=np.array(['0'] * B))
  routing = net.routing_weights(batch)
  assert len(routing) == CONFIG.num_layers
  for g in routing:
    g = g.numpy()
    assert g.shape == (B, CONFIG.num_tokens, CONFIG.num_experts)
    assert ((g > 0).sum(axis=-1) <= 2).all()
    assert ((g.sum(axis=-1) > 0) & (g.sum(axis=-1) < 1)).all()  # 2 of the 4 experts' p
  other = net.routing_weights(dict(batch, scenario=tf.constant(['2'] * B)))
  assert np.abs(other[0].numpy() - routing[0].numpy()).max() > 1e-3


def test_ranker_teacher_is_the_click_head(tmp_path):
  batch = random_inputs()
  net = ranker('mdl')
  teacher = RankerTeacher(SPACE, net, name='teacher')
  logits = net(batch, training=False).numpy()
  assert teacher.task == 'click' and teacher.feature_names == net.feature_names
  np.testing.assert_array_equal(teacher(batch, training=False).numpy(), logits[:, 0])
  clone = RankerTeacher.from_config(teacher.get_config())
  clone(batch)
  clone.set_weights(teacher.get_weights())
  np.testing.assert_allclose(clone(batch).numpy(), logits[:, 0], **TOL)
  # Without a click task: the first task.
  tf.keras.utils.set_random_seed(0)
  other = build.build_ranker(dataclasses.replace(CONFIG, model='shared_bottom'), SPACE,
                             ('like', 'long_view'))
  assert RankerTeacher(SPACE, other).task == 'like'
  np.testing.assert_array_equal(RankerTeacher(SPACE, other, 'long_view')(batch).numpy(),
                                other(batch).numpy()[:, 1])


@pytest.mark.parametrize('model,overrides', [
    ('mdl', {}), ('mdl', {'use_task_tokens': False}), ('mdl', {'use_scenario_tokens': False}),
    ('mdl', {'use_domain_attention': False}), ('mtmixatt', {}), ('rankmixer', {}),
    ('mmoe', {}), ('shared_bottom', {})])
def test_every_trainable_variable_gets_a_gradient(model, overrides):
  """No parameter that the loss cannot reach (e.g. a last block's scenario FFN whose
  output no logit reads)."""
  net = ranker(model, **overrides)
  batch = random_inputs()
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels_of(batch),
                                                                  net(batch, training=True)))
  grads = tape.gradient(loss, net.trainable_variables)
  assert [v.name for v, g in zip(net.trainable_variables, grads) if g is None] == []
