"""Students, baselines and the teacher on the transformed KuaiRand fixture."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from core import config as configs
from models import build
from models import data
from models import features
from models import layers
from models import losses
from models import model_stats
from models.rankers.teacher import RankerTeacher
from tests.conftest import MODEL_TRAINING

TRAINING = configs.TrainingConfig(**MODEL_TRAINING)


@pytest.fixture(scope='module')
def inputs(fixture_batches):
  return fixture_batches  # the same batches, in the same order, for every model


def _dataset(batches):
  """The batches' rows re-cut (USER_ROW dropped: it holds for the original batches)."""
  return tf.data.Dataset.from_tensor_slices(
      ({k: tf.concat([b[0][k] for b in batches], 0) for k in batches[0][0]
        if k != features.USER_ROW},
       tf.concat([b[1] for b in batches], 0))).batch(TRAINING.batch_size)


def test_batches_hold_anchors_and_random_negatives(inputs):
  _, batches = inputs
  labels = np.concatenate([b[1].numpy() for b in batches])
  assert labels.mean() == pytest.approx(1 / (1 + TRAINING.negative_ratio))
  features_, first = batches[0][0], batches[0][1].numpy()
  anchors = int((first == 1).sum())
  # Each negative repeats its anchor's user and scenario, with a corpus item.
  np.testing.assert_array_equal(features_['user_id'][anchors:].numpy(),
                                np.repeat(features_['user_id'][:anchors].numpy(), 4))
  np.testing.assert_array_equal(features_['scenario'][anchors:].numpy(),
                                np.repeat(features_['scenario'][:anchors].numpy(), 4))


def test_scenario_balance_weights_small_scenarios_up(inputs, fixture_transformed):
  space, _ = inputs
  tft_output = tft.TFTransformOutput(fixture_transformed.tft_dir)
  _, corpus = data.corpus_item_features(fixture_transformed.corpus, tft_output, space)
  config = configs.TrainingConfig(batch_size=2000, negative_ratio=1,
                                  scenario_balance_power=0.5, remove_accidental_hits=False)
  (features_, labels, weights), = data.training_batches(
      data.anchors(fixture_transformed.train, tft_output, space, config), space, corpus,
      config, shuffle=False, num_epochs=1)
  scenarios = features_['scenario'].numpy().astype(str)
  anchors = labels.numpy() == 1
  counts = {s: int((scenarios[anchors] == s).sum()) for s in space.scenarios}
  assert counts == {'1': 308, '4': 78, '2': 21, '0': 17}  # the fixture's training clicks
  raw = {s: (308 / n) ** 0.5 for s, n in counts.items()}
  scale = sum(counts.values()) / sum(raw[s] * n for s, n in counts.items())
  for s in space.scenarios:  # anchors and their negatives share the scenario's weight
    np.testing.assert_allclose(weights.numpy()[scenarios == s], raw[s] * scale, rtol=1e-5)
  assert weights.numpy()[anchors].mean() == pytest.approx(1.0)


def test_user_tower_once_per_anchor_equals_the_tower_on_every_row(inputs):
  """With a training batch's USER_ROW the student runs its user tower on the anchors
  only; the logits, the gradients and DSBN's moving statistics are those of the tower run
  on every row (where each negative repeats its anchor's user features)."""
  space, batches = inputs
  batch, labels, weights = batches[0]
  anchors = int(labels.numpy().sum())
  np.testing.assert_array_equal(batch[features.USER_ROW].numpy(),
                                np.r_[np.arange(anchors), np.repeat(np.arange(anchors), 4)])
  per_row = {k: v for k, v in batch.items() if k != features.USER_ROW}
  results = []
  for rows in (batch, per_row):
    tf.keras.utils.set_random_seed(3)
    student = build.build_student(configs.ModelConfig(), space)
    with tf.GradientTape() as tape:
      logits = student(rows, training=True)
      loss = losses.binary_cross_entropy(labels, logits, weights)
    gradients = tape.gradient(loss, student.trainable_variables)
    results.append((logits.numpy(), [tf.convert_to_tensor(g).numpy() for g in gradients],
                    _moving_means(student.user_tower)))
  (logits_a, grads_a, means_a), (logits_b, grads_b, means_b) = results
  # float32 sums over [anchors] and [rows] batches differ in the last bits (1e-6 seen).
  np.testing.assert_allclose(logits_a, logits_b, rtol=1e-5, atol=1e-5)
  assert len(grads_a) == len(grads_b) and len(means_a) == 3
  for a, b in zip(grads_a + means_a, grads_b + means_b):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  # A batch re-cut without dropping USER_ROW is refused, not silently mis-scored.
  shifted = {k: v[1:] for k, v in batch.items()}
  with pytest.raises(tf.errors.InvalidArgumentError, match='USER_ROW|__user_row'):
    student(shifted, training=False)


def test_dsmoe_scenario_profile_is_each_scenarios_gates_and_sap_coefficients(inputs):
  """The case study's numbers (the Trainer writes them into training_summary.json),
  recomputed with numpy from the raw weights: alpha = softmax(e_s W_gate + b_gate) and
  b_s = e_s W_b + c_b of every SAP layer, for each served scenario."""
  space, batches = inputs
  tower = build.build_user_tower(configs.ModelConfig(), space)
  tower(batches[0][0], training=False)
  rng = np.random.default_rng(0)
  for variable in tower.variables:  # biases start at zero: make them count
    if variable.name.endswith(('gate/bias:0', 'scenario_bias:0')):
      variable.assign(rng.normal(size=variable.shape).astype(np.float32))
  weights = {v.name.split('user_tower/')[-1]: v.numpy() for v in tower.variables}
  scenarios = len(space.scenarios)
  e_s = weights['user_encoder/scenario/scenario_embedding/embeddings:0'][:scenarios]
  logits = e_s @ weights['sap_mmoe/gate/kernel:0'] + weights['sap_mmoe/gate/bias:0']
  alpha = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
  profile = tower.scenario_profile()
  assert profile['scenarios'] == list(space.scenarios)
  np.testing.assert_allclose(profile['gate_weights'], alpha, rtol=1e-5, atol=1e-7)
  prefixes = {f'expert_{k}': f'sap_mmoe/expert_{k}/sap/' for k in range(3)}
  prefixes['forward'] = 'sap_mmoe/sap_forward/'
  assert set(profile['scenario_coefficients']) == set(prefixes)
  for name, prefix in prefixes.items():
    b_s = e_s @ weights[prefix + 'scenario_kernel:0'] + weights[prefix + 'scenario_bias:0']
    np.testing.assert_allclose(profile['scenario_coefficients'][name], b_s, rtol=1e-5,
                               atol=1e-6)
  without_sap = build.build_user_tower(configs.ModelConfig(use_sap=False), space)
  without_sap(batches[0][0], training=False)
  assert without_sap.scenario_profile()['scenario_coefficients'] == {}
  dnn = build.build_user_tower(configs.ModelConfig(model='two_tower_dnn'), space)
  assert dnn.scenario_profile() is None


def _teacher(space, name='dcn_v2'):
  teacher = build.build_teacher(configs.DistillationConfig(teacher=name),
                                configs.ModelConfig(), configs.RankerConfig(), space)
  teacher.compile(tf.keras.optimizers.Adam(TRAINING.learning_rate),
                  loss=losses.per_example_binary_cross_entropy)
  return teacher


def test_every_ranker_builds_as_a_teacher_with_its_click_head(inputs):
  space, _ = inputs
  for name in configs.RANKERS:
    teacher = _teacher(space, name)
    assert isinstance(teacher, RankerTeacher) and teacher.ranker.tasks == ('click',)


# Every ranker teaches through the same RankerTeacher: MDL stands for them here.
@pytest.mark.parametrize('name', ['dcn_v2', 'mdl'])
def test_teacher_training_lowers_the_loss(inputs, name):
  """DCN-v2, and a ranker as teacher (its click head) on the same batches."""
  space, batches = inputs
  teacher = _teacher(space, name)
  before = teacher.evaluate(_dataset(batches), verbose=0)
  teacher.fit(_dataset(batches), epochs=3, verbose=0)
  after = teacher.evaluate(_dataset(batches), verbose=0)
  assert after < 0.9 * before


# Training and the SavedModel round trip of every student: DSMOE (DSBN), ADIN (batch norm)
# and the DNN (no statistics) in `make test`; the other baselines in `make test-extended`.
STUDENTS = [pytest.param(model, marks=() if model in ('dsmoe', 'adin', 'two_tower_dnn')
                         else pytest.mark.extended) for model in build.STUDENTS]


@pytest.mark.parametrize('model', STUDENTS)
def test_student_training_lowers_the_loss(inputs, model):
  space, batches = inputs
  teacher = None
  if model == 'dsmoe':  # DSMOE distils from a trained, then frozen, teacher
    teacher = _teacher(space)
    teacher.fit(_dataset(batches), epochs=2, verbose=0)
  student = build.build_student(configs.ModelConfig(model=model), space, teacher)
  student.compile(tf.keras.optimizers.Adam(TRAINING.learning_rate))
  before = student.evaluate(_dataset(batches), verbose=0, return_dict=True)
  teacher_weights = [w.numpy() for w in teacher.weights] if teacher else []
  student.fit(_dataset(batches), epochs=3, verbose=0)
  after = student.evaluate(_dataset(batches), verbose=0, return_dict=True)
  assert after['loss'] < 0.9 * before['loss']
  assert after['task_loss'] < before['task_loss']
  if teacher:  # the loss is BCE + 1.0 * KL, and the student moved towards the teacher
    np.testing.assert_allclose(after['loss'], after['task_loss'] + after['distillation_loss'],
                               rtol=1e-4)
    assert after['distillation_loss'] < before['distillation_loss']
    for old, new in zip(teacher_weights, teacher.weights):  # frozen
      np.testing.assert_array_equal(old, new.numpy())
  else:
    assert 'distillation_loss' not in after
    np.testing.assert_allclose(after['loss'], after['task_loss'], rtol=1e-6)


def test_sampled_softmax_trains_the_towers(inputs):
  """training.loss=sampled_softmax: the task loss is the softmax over each anchor and its
  negatives (tests/test_losses.py checks the number by hand) and it falls with training."""
  space, batches = inputs
  student = build.build_student(configs.ModelConfig(model='two_tower_dnn'), space,
                                loss='sampled_softmax')
  student.compile(tf.keras.optimizers.Adam(TRAINING.learning_rate))
  signature = tf.nest.map_structure(
      lambda t: tf.TensorSpec([None] + t.shape[1:], t.dtype), batches[0])
  grouped = tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=signature)
  before = student.evaluate(grouped, verbose=0, return_dict=True)
  student.fit(grouped, epochs=3, verbose=0)
  after = student.evaluate(grouped, verbose=0, return_dict=True)
  with pytest.raises(ValueError, match='group each anchor'):
    student.evaluate(_dataset(batches[:1]), verbose=0)
  assert after['task_loss'] < 0.9 * before['task_loss']


def _round_trip(tower, names, space, batch, tmp_path):
  signature = tf.function(lambda inputs: {'embedding': tower(inputs, training=False)})
  concrete = signature.get_concrete_function(space.tensor_specs(names))
  tf.saved_model.save(tower, str(tmp_path), signatures={'serving_default': concrete})
  restored = tf.saved_model.load(str(tmp_path)).signatures['serving_default']
  inputs = {name: batch[name] for name in names}
  np.testing.assert_allclose(restored(**inputs)['embedding'].numpy(),
                             tower(inputs, training=False).numpy(), rtol=1e-6, atol=1e-6)


def _moving_means(model) -> list:
  return [v.numpy() for v in model.variables if 'moving_mean' in v.name]


@pytest.mark.parametrize('model', STUDENTS)
def test_saved_towers_give_identical_embeddings(inputs, model, tmp_path):
  space, batches = inputs
  student = build.build_student(configs.ModelConfig(model=model), space)
  student.compile(tf.keras.optimizers.Adam(TRAINING.learning_rate))
  student(batches[0][0])
  initial = _moving_means(student.user_tower)
  student.fit(_dataset(batches[:2]), epochs=1, verbose=0)  # non-trivial BN statistics
  trained = _moving_means(student.user_tower)
  assert len(trained) == {'dsmoe': 3, 'mmoe': 3, 'adin': 2}.get(model, 0)
  for before, after in zip(initial, trained):
    assert np.abs(after - before).max() > 1e-3  # the round trip carries moved statistics
  batch = batches[0][0]
  _round_trip(student.user_tower, space.user_tower_features, space, batch, tmp_path / 'u')
  _round_trip(student.item_tower, space.item_tower_features, space, batch, tmp_path / 'i')


def test_saved_teacher_gives_identical_logits(inputs, tmp_path):
  space, batches = inputs
  teacher = _teacher(space)
  teacher.fit(_dataset(batches[:2]), epochs=1, verbose=0)
  signature = tf.function(lambda inputs: {'logit': teacher(inputs, training=False)})
  concrete = signature.get_concrete_function(space.tensor_specs(teacher.feature_names))
  tf.saved_model.save(teacher, str(tmp_path), signatures={'serving_default': concrete})
  restored = tf.saved_model.load(str(tmp_path)).signatures['serving_default']
  batch = {name: batches[0][0][name] for name in teacher.feature_names}
  np.testing.assert_allclose(restored(**batch)['logit'].numpy(),
                             teacher(batch, training=False).numpy(), rtol=1e-6, atol=1e-6)


def _layers_of(model, kind):
  return [m for m in model.submodules if isinstance(m, kind)]


@pytest.mark.parametrize('overrides,saps,dsbns', [
    ({}, 3 + 1, 3),  # 3 experts + the forward SAP; a DSBN per expert
    ({'use_sap': False}, 0, 3),
    ({'use_dsbn': False}, 4, 0),
    ({'model': 'mmoe'}, 0, 0),
    ({'num_experts': 5, 'rank': 2}, 6, 5),
])
def test_ablation_flags_and_mmoe_preset(inputs, overrides, saps, dsbns):
  space, batches = inputs
  tower = build.build_user_tower(configs.ModelConfig(**overrides), space)
  tower(batches[0][0], training=False)
  found = _layers_of(tower, layers.ScenarioAdaptiveProjection)
  assert len(found) == saps
  assert len(_layers_of(tower, layers.DomainSpecificBatchNormalization)) == dsbns
  if found and 'rank' in overrides:
    assert found[0].low_rank_a.shape[1] == 2


def test_parameters_and_flops_are_reported(inputs):
  space, batches = inputs
  report = {}
  for model in ('dsmoe', 'mmoe', 'two_tower_dnn'):
    student = build.build_student(configs.ModelConfig(model=model), space)
    student(batches[0][0])
    report[model] = (model_stats.parameter_count(student),
                     model_stats.flops_per_example(student.user_tower,
                                                   space.user_tower_features, space))
  assert all(params > 0 and flops > 0 for params, flops in report.values())
  # SAP adds low-rank terms only: DSMOE costs within 10% of the plain MMOE tower.
  assert report['mmoe'][1] < report['dsmoe'][1] < 1.1 * report['mmoe'][1]


def test_feature_space_json_round_trip(inputs):
  space, _ = inputs
  assert features.FeatureSpace.from_json(space.to_json()) == space


@pytest.mark.parametrize('model', build.STUDENTS)
def test_towers_and_teacher_rebuild_from_their_config(inputs, model):
  space, batches = inputs
  config = configs.ModelConfig(model=model)
  towers = [build.build_user_tower(config, space), build.build_item_tower(config, space),
            build.build_teacher(configs.DistillationConfig(), config,
                               configs.RankerConfig(), space)]
  for tower in towers:
    tower(batches[0][0])
    clone = type(tower).from_config(tower.get_config())
    clone(batches[0][0])
    assert clone.get_config() == tower.get_config()
    assert model_stats.parameter_count(clone) == model_stats.parameter_count(tower)


def test_scenario_popularity_prior_adds_w_s_times_scenario_clicks(inputs):
  """<[u; w_s], [v; c(i)]> = <u, v> + sum_j w_s[j] log(1 + clicks_j(i)), by hand."""
  space, batches = inputs
  batch = batches[0][0]
  config = configs.ModelConfig(model='two_tower_dnn', output_dim=8)
  user = build.build_user_tower(config, space)
  item = build.build_item_tower(config, space)
  u_full, v_full = user(batch).numpy(), item(batch).numpy()
  num_scenarios = len(space.scenarios)
  assert u_full.shape[1] == v_full.shape[1] == 8 + num_scenarios
  # The item side carries the item's log(1 + clicks) per scenario, unchanged.
  np.testing.assert_allclose(v_full[:, 8:], batch['scenario_clicks'].numpy())
  # The user side carries its scenario's row of the prior's weights: at the start the
  # one-hot of its scenario (its own popularity is the prior).
  index = np.array([list(space.scenarios).index(s) for s in
                    batch['scenario'].numpy().astype(str)])
  np.testing.assert_array_equal(u_full[:, 8:], np.eye(num_scenarios)[index])
  weights = np.arange((num_scenarios + 1) * num_scenarios, dtype=np.float32).reshape(
      num_scenarios + 1, num_scenarios) / 10
  user.prior.set_weights([weights / user.prior.learning_rate_multiplier,
                          np.zeros(num_scenarios + 1)])
  u_full = user(batch).numpy()
  np.testing.assert_allclose(u_full[:, 8:], weights[index])
  score = (u_full * v_full).sum(axis=1)
  by_hand = (u_full[:, :8] * v_full[:, :8]).sum(axis=1) + (
      weights[index] * batch['scenario_clicks'].numpy()).sum(axis=1)
  np.testing.assert_allclose(score, by_hand, rtol=1e-5, atol=1e-5)
  # The fitted tau_s adds tau_s * log(1 + clicks in s) when serving, not in training.
  tau = np.arange(1, num_scenarios + 1, dtype=np.float32) / 4
  user.set_popularity_weights(tau)
  assert user.popularity_weights() == pytest.approx(tau.tolist())
  clicks = batch['scenario_clicks'].numpy()
  served = (user(batch).numpy() * v_full).sum(axis=1)
  np.testing.assert_allclose(
      served, by_hand + tau[index] * clicks[np.arange(len(index)), index], rtol=1e-5,
      atol=1e-5)
  np.testing.assert_allclose(user(batch, training=True).numpy()[:, 8:], weights[index])
  assert user.own_scenario_popularity_columns() == [8 + i for i in range(num_scenarios)]
  # Without the flag the towers are the paper's: output_dim entries.
  plain = dataclasses.replace(config, scenario_popularity_prior=False)
  assert build.build_user_tower(plain, space)(batch).shape[1] == 8


def test_popularity_prior_needs_the_scenario_click_feature():
  with pytest.raises(configs.ConfigError, match='ingestion.scenario_click_features'):
    configs.load_config('', ['ingestion.scenario_click_features=false'])
  configs.load_config('', ['ingestion.scenario_click_features=false',
                           'model.popularity_features=[]',
                           'model.scenario_popularity_prior=false'])


def _only_scenarios(batches, keep):
  """The anchors and negatives of `keep` scenarios, as one (features, labels) dataset."""
  features_ = {k: tf.concat([b[0][k] for b in batches], 0) for k in batches[0][0]
               if k != features.USER_ROW}  # rows re-cut: see _dataset
  labels = tf.concat([b[1] for b in batches], 0)
  mask = np.isin(features_['scenario'].numpy().astype(str), keep)
  return tf.data.Dataset.from_tensor_slices(
      ({k: tf.boolean_mask(v, mask) for k, v in features_.items()},
       tf.boolean_mask(labels, mask))).batch(TRAINING.batch_size)


def test_fit_moves_the_dsbn_statistics_of_the_scenarios_it_sees_only(inputs):
  """Keras' fit reaches every expert's DSBN with training=True: the moving statistics of
  the scenarios in the batches move, those of an absent scenario stay at their start."""
  space, batches = inputs
  student = build.build_student(configs.ModelConfig(), space)
  student.compile(tf.keras.optimizers.Adam(TRAINING.learning_rate))
  student(batches[0][0])
  dsbns = [m for m in student.user_tower.submodules
           if isinstance(m, layers.DomainSpecificBatchNormalization)]
  assert len(dsbns) == 3
  start = [(d.moving_mean.numpy(), d.moving_variance.numpy()) for d in dsbns]
  absent = space.scenarios[-1]  # the fixture's smallest scenario
  student.fit(_only_scenarios(batches, space.scenarios[:-1]), epochs=1, verbose=0)
  for dsbn, (mean, variance) in zip(dsbns, start):
    moved_mean = np.abs(dsbn.moving_mean.numpy() - mean).max(axis=1)  # per scenario index
    moved_variance = np.abs(dsbn.moving_variance.numpy() - variance).max(axis=1)
    assert (moved_mean[:-1] > 1e-4).all() and (moved_variance[:-1] > 1e-4).all()
    assert moved_mean[-1] == 0 and moved_variance[-1] == 0, absent  # never came


def _with_items_of_other_examples(batch, space):
  """The same users and scenarios, each with another example's item fields."""
  swapped = dict(batch)
  for name in space.item_tower_features:
    swapped[name] = tf.roll(batch[name], shift=1, axis=0)
  return swapped


def test_teacher_crosses_user_and_item_but_the_user_tower_sees_no_item(inputs):
  space, batches = inputs
  batch = batches[0][0]
  changed = _with_items_of_other_examples(batch, space)
  assert not np.array_equal(batch['item_id'].numpy(), changed['item_id'].numpy())
  teacher = build.build_teacher(configs.DistillationConfig(), configs.ModelConfig(),
                                configs.RankerConfig(), space)
  logits = teacher(batch, training=False).numpy()
  assert np.abs(teacher(changed, training=False).numpy() - logits).max() > 1e-3
  for model in build.STUDENTS:
    user = build.build_user_tower(configs.ModelConfig(model=model), space)
    np.testing.assert_array_equal(user(batch, training=False).numpy(),
                                  user(changed, training=False).numpy())
