"""The ranking evaluation: AUC and GAUC against sklearn, the popularity baseline, the user
bootstrap's intervals and paired differences, the report, and the rankers' examples."""

import collections

import numpy as np
import pytest
from sklearn import metrics as sk_metrics

from ranking import evaluation
from ranking import metrics
from ranking import report


def _random_case(seed, n=400, users=30):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 2, n)
  scores = rng.integers(0, 6, n).astype(float) + 0.3 * labels  # ties, and some signal
  weights = rng.uniform(0.0, 3.0, n)
  return labels, scores, weights, rng.integers(0, users, n)


@pytest.mark.parametrize('seed', range(5))
def test_auc_is_sklearns_with_ties_and_weights(seed):
  labels, scores, weights, _ = _random_case(seed)
  assert metrics.auc(labels, scores) == pytest.approx(
      sk_metrics.roc_auc_score(labels, scores), abs=1e-12)
  assert metrics.auc(labels, scores, weights) == pytest.approx(
      sk_metrics.roc_auc_score(labels, scores, sample_weight=weights), abs=1e-12)


def test_ties_count_one_half():
  assert metrics.auc([1, 0], [0.5, 0.5]) == 0.5
  assert metrics.auc([1, 0, 1, 0], [2.0, 1.0, 1.0, 0.0]) == pytest.approx(
      (1 + 1 + 0.5 + 1) / 4)


def _gauc_by_loop(labels, scores, users, weights):
  """GAUC the plain way: sklearn's AUC per user with both classes, weighted by the
  user's examples (their weights)."""
  total, weighted, counted = 0.0, 0.0, 0
  for user in sorted(set(users.tolist())):
    rows = users == user
    if len(set(labels[rows].tolist())) < 2:
      continue
    user_auc = sk_metrics.roc_auc_score(labels[rows], scores[rows],
                                        sample_weight=weights[rows])
    weighted += weights[rows].sum() * user_auc
    total += weights[rows].sum()
    counted += 1
  return weighted / total, counted


@pytest.mark.parametrize('seed', range(3))
def test_gauc_is_the_impressions_weighted_mean_of_per_user_sklearn_aucs(seed):
  labels, scores, weights, users = _random_case(seed)
  expected, counted = _gauc_by_loop(labels, scores, users, np.ones(len(labels)))
  value, users_counted = metrics.gauc(labels, scores, users)
  assert value == pytest.approx(expected, abs=1e-12) and users_counted == counted
  expected, counted = _gauc_by_loop(labels, scores, users, weights)
  value, users_counted = metrics.gauc(labels, scores, users, weights)
  assert value == pytest.approx(expected, abs=1e-12) and users_counted == counted


def test_users_with_one_class_are_left_out_and_not_counted():
  labels, scores, _, users = _random_case(0, n=200, users=10)
  value, counted = metrics.gauc(labels, scores, users)
  # Ten more users, each with only positives or only negatives.
  more_users = np.repeat(np.arange(100, 110), 5)
  more_labels = np.repeat(np.arange(10) % 2, 5)
  more_scores = np.linspace(0, 1, 50)
  value_more, counted_more = metrics.gauc(np.concatenate([labels, more_labels]),
                                          np.concatenate([scores, more_scores]),
                                          np.concatenate([users, more_users]))
  assert counted == 10 and counted_more == 10
  assert value_more == pytest.approx(value, abs=1e-12)


def test_one_class_gives_nan():
  assert np.isnan(metrics.auc([1, 1, 1], [0.1, 0.2, 0.3]))
  assert np.isnan(metrics.auc([0, 0], [0.1, 0.2]))
  assert np.isnan(metrics.auc([1, 0], [0.1, 0.2], [1.0, 0.0]))  # the negative weighs 0
  value, counted = metrics.gauc([1, 0, 1], [0.1, 0.2, 0.3], ['a', 'b', 'c'])
  assert np.isnan(value) and counted == 0


def test_popularity_scores_by_hand():
  items = ['a', 'a', 'b', 'c', 'c', 'c']
  labels = [[1, 0], [0, 0], [1, 1], [0, 0], [0, 1], [1, 0]]  # overall rates 1/2, 1/3
  scores = evaluation.popularity_scores(items, labels, ['c', 'z', 'a', 'b'],
                                        prior_strength=2)
  np.testing.assert_allclose(scores, [
      [(1 + 2 / 2) / 5, (1 + 2 / 3) / 5],  # c: 3 shown, 1 and 1 positive
      [1 / 2, 1 / 3],  # z: never shown in training, the overall rates
      [(1 + 2 / 2) / 4, (0 + 2 / 3) / 4],  # a: 2 shown
      [(1 + 2 / 2) / 3, (1 + 2 / 3) / 3]])  # b: 1 shown
  np.testing.assert_allclose(
      evaluation.popularity_scores(items, labels, ['a'], prior_strength=0), [[0.5, 0.0]])


TASKS = ('click', 'like')


def _systems(seed=0, n=4000, users=400):
  """Two scenarios, two tasks: 'good' sees the labels through noise, 'popularity' is
  noise, 'copy' is popularity again."""
  rng = np.random.default_rng(seed)
  user = rng.integers(0, users, n)
  scenario = np.where(user % 3 == 0, 'b', 'a')
  labels = (rng.uniform(size=(n, len(TASKS))) < [0.3, 0.1]).astype(np.int64)
  noise = rng.normal(size=(n, len(TASKS)))
  scores = {'popularity': noise, 'good': labels + rng.normal(size=(n, len(TASKS))),
            'copy': noise.copy()}
  return scores, labels, scenario, user


@pytest.fixture(scope='module')
def clear_case():
  scores, labels, scenario, user = _systems()
  result = evaluation.evaluate(scores, labels, scenario, user, TASKS, confidence=0.95,
                               resamples=200, seed=3, reference='popularity')
  return (scores, labels, scenario, user), result


def test_points_are_the_metrics_and_intervals_contain_them(clear_case):
  (scores, labels, scenario, user), result = clear_case
  assert list(result['counts']) == ['a', 'b', 'all']
  for system in scores:
    for name in ('a', 'b', 'all'):
      rows = np.ones(len(user), bool) if name == 'all' else scenario == name
      for j, task in enumerate(TASKS):
        cell = result['metrics'][system][name][task]
        assert cell['auc']['point'] == pytest.approx(
            metrics.auc(labels[rows, j], scores[system][rows, j]), abs=1e-12)
        gauc, counted = metrics.gauc(labels[rows, j], scores[system][rows, j], user[rows])
        assert cell['gauc']['point'] == pytest.approx(gauc, abs=1e-12)
        assert result['counts'][name]['gauc_users'][task] == counted
        for metric in ('auc', 'gauc'):
          assert cell[metric]['lower'] < cell[metric]['point'] < cell[metric]['upper']
  assert result['counts']['all']['examples'] == len(user)
  assert result['counts']['all']['users'] == len(set(user.tolist()))


def test_a_better_system_differs_and_an_identical_one_does_not(clear_case):
  _, result = clear_case
  assert set(result['differences']) == {'good_minus_popularity', 'copy_minus_popularity'}
  for name in ('a', 'b', 'all'):
    for task in TASKS:
      for metric in ('auc', 'gauc'):
        better = result['differences']['good_minus_popularity'][name][task][metric]
        assert better['lower'] > 0
        same = result['differences']['copy_minus_popularity'][name][task][metric]
        assert same['point'] == same['lower'] == same['upper'] == 0.0


def test_resampling_is_by_user_seeded_and_paired():
  scores, labels, scenario, user = _systems(n=600, users=60)
  run = lambda seed: evaluation.evaluate(scores, labels, scenario, user, TASKS,
                                         resamples=50, seed=seed)
  first, again, other = run(1), run(1), run(2)
  assert first == again and first != other
  # Paired: the difference's resampled mean is the difference of the resampled means.
  good = first['metrics']['good']['all']['click']['auc']['mean']
  popular = first['metrics']['popularity']['all']['click']['auc']['mean']
  assert first['differences']['good_minus_popularity']['all']['click']['auc'][
      'mean'] == pytest.approx(good - popular, abs=1e-12)
  # A user's examples move together: duplicating every example of every user (same
  # users) leaves each resample's AUC, hence the interval, as it was.
  twice = evaluation.evaluate({k: np.concatenate([v, v]) for k, v in scores.items()},
                              np.concatenate([labels, labels]),
                              np.concatenate([scenario, scenario]),
                              np.concatenate([user, user]), TASKS, resamples=50, seed=1)
  for metric in ('auc', 'gauc'):
    assert twice['metrics']['good']['all']['click'][metric] == pytest.approx(
        first['metrics']['good']['all']['click'][metric], abs=1e-12)


def test_a_missing_class_is_undefined_not_an_error():
  scores, labels, scenario, user = _systems(n=600, users=60)
  labels[scenario == 'b', 1] = 0  # no like in scenario b
  result = evaluation.evaluate(scores, labels, scenario, user, TASKS, resamples=20)
  assert result['metrics']['good']['b']['like'] == {'auc': None, 'gauc': None}
  assert result['differences']['good_minus_popularity']['b']['like']['auc'] is None
  assert result['counts']['b']['gauc_users']['like'] == 0
  assert result['metrics']['good']['b']['click']['auc'] is not None
  table = report.format_table(result)
  assert 'n/a' in table
  with pytest.raises(ValueError, match='reference'):
    evaluation.evaluate(scores, labels, scenario, user, TASKS, reference='previous')


def test_the_table_has_a_row_per_scenario_and_task(clear_case):
  _, result = clear_case
  table = report.format_table(result)
  rows = [line for line in table.splitlines() if line.startswith('| ')]
  assert len(rows) == 2 + 3 * len(TASKS)  # header, alignment, scenarios (and all) x tasks
  header = [c.strip() for c in rows[0].strip('|').split('|')]
  assert header[:5] == ['scenario', 'task', 'examples', 'positives', 'GAUC users']
  assert 'good AUC' in header and 'good − popularity GAUC' in header
  assert len({len(r.split('|')) for r in rows}) == 1
  all_click = next(r for r in rows if r.startswith('| all | click |'))
  auc = result['metrics']['good']['all']['click']['auc']
  assert f'{auc["point"]:.4f} [{auc["lower"]:.4f}, {auc["upper"]:.4f}]' in all_click
  assert 'Poisson bootstrap over users' in table


# The rankers' examples on the transformed fixture (the Transform passes task_<name>).

@pytest.fixture(scope='module')
def ranking_setup(fixture_transformed, kuairand_spec):
  import tensorflow_transform as tft
  tasks = kuairand_spec.logs.task_names
  tft_output = tft.TFTransformOutput(fixture_transformed.tft_dir)
  missing = [t for t in tasks if f'task_{t}' not in tft_output.transformed_feature_spec()]
  assert not missing, f'the Transform does not pass the task labels {missing} through'
  return fixture_transformed, tft_output, tasks


def _raw_rows(pattern, tasks):
  """(scenario, label, task labels) of every raw example of the files."""
  import tensorflow as tf
  from core import examples as example_files
  spec = {name: tf.io.FixedLenFeature([], tf.int64)
          for name in ('label',) + tuple(f'task_{t}' for t in tasks)}
  spec['scenario'] = tf.io.FixedLenFeature([], tf.string)
  rows = []
  for batch in example_files.record_batches(pattern):
    parsed = {k: v.numpy() for k, v in tf.io.parse_example(batch, spec).items()}
    rows += list(zip(parsed['scenario'].tolist(), parsed['label'].tolist(),
                     *(parsed[f'task_{t}'].tolist() for t in tasks)))
  return rows


def test_ranking_examples_keep_every_exposure_with_its_task_labels(ranking_setup):
  from models import data
  transformed, tft_output, tasks = ranking_setup
  space = transformed.space
  assert tasks == ('click', 'long_view', 'like')
  dataset = data.ranking_examples(transformed.validation, tft_output, space, tasks)
  features, labels = next(iter(dataset))
  assert set(features) == set(space.user_tower_features + space.item_tower_features)
  assert labels.shape == [len(tasks)] and labels.dtype.name == 'float32'
  batches = list(data.ranking_batches(dataset, 256))
  labels = np.concatenate([b[1].numpy() for b in batches])
  scenarios = np.concatenate([b[0]['scenario'].numpy() for b in batches])
  raw = _raw_rows(transformed.raw_validation, tasks)
  assert len(labels) == len(raw)  # every exposure, no negatives added or dropped
  assert labels.shape == (len(raw), len(tasks))
  assert set(np.unique(labels).tolist()) <= {0.0, 1.0} and labels.sum() > 0
  # The same exposures: per scenario, the same multiset of task-label rows as the raw
  # examples (the order differs: ranking_examples sorts the transformed records).
  ours = collections.Counter(zip(scenarios.tolist(), *(labels[:, j].astype(int).tolist()
                                                       for j in range(len(tasks)))))
  assert ours == collections.Counter((s, *t) for s, _, *t in raw)
  # A stable order, and a seeded shuffle that keeps every example.
  again = np.concatenate([b[1].numpy() for b in data.ranking_batches(dataset, 256)])
  np.testing.assert_array_equal(labels, again)
  shuffled = [np.concatenate([b[1].numpy() for b in data.ranking_batches(
      dataset, 256, shuffle_seed=5)]) for _ in range(2)]
  np.testing.assert_array_equal(shuffled[0], shuffled[1])
  np.testing.assert_array_equal(np.sort(shuffled[0], axis=0), np.sort(labels, axis=0))
