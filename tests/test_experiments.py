"""The experiment harness's bookkeeping: which trained variant a configuration reuses, and
how the test report aggregates seeds."""

from core import config as configs
from experiments import harness
from experiments import test_report


def test_a_variant_is_reused_only_for_the_same_training_configuration():
  config = configs.load_config('', ['training.seed=7'])
  same = configs.load_config('', ['training.seed=7', 'output_dir=elsewhere',
                                  'evaluation.bootstrap_resamples=50'])
  directory = harness.variant_directory('/runs', config, 'default')
  assert directory.startswith('/runs/variants/seed7/default-')
  # Scoring and output options do not change what is trained.
  assert harness.variant_directory('/runs', same, 'default') == directory
  # Any training-relevant change does, even under the same name (a changed default).
  for override in ('training.batch_size=4096', 'training.seed=8', 'model.rank=2',
                   'distillation.weight=0.5', 'transform.id_min_frequency=3'):
    changed = configs.load_config('', ['training.seed=7', override])
    assert harness.variant_directory('/runs', changed, 'default') != directory, override


def test_report_cell_is_the_mean_and_sample_std_over_seeds():
  runs = [{'point': 0.1, 'lower': 0.05, 'upper': 0.15},
          {'point': 0.2, 'lower': 0.12, 'upper': 0.28},
          {'point': 0.3, 'lower': 0.22, 'upper': 0.38}]
  # mean 0.2; sample std sqrt(((-0.1)^2 + 0 + 0.1^2) / 2) = 0.1; bounds averaged.
  assert test_report._cell(runs, signed=False) == '0.2000 ± 0.1000 [0.1300, 0.2700]'
  assert test_report._cell(runs[:1], signed=True) == '+0.1000 ± 0.0000 [+0.0500, +0.1500]'


# ---------------------------------------------------------------------------------------
# The reproduction (experiments/reproduce.py): planning, paired comparisons, tables,
# the case study. Synthetic results: the numbers are set here, the expectations by hand.

import json
import os

import numpy as np
import pytest

from experiments import grid
from experiments import inspect as case_study
from experiments import scheduler
from experiments import tables


def _plan(seeds=(1, 2)):
  experiments = grid.experiment_variants()
  return scheduler.plan('/r', ['output_dir=o'], experiments,
                        {'table2': ['paper', 'default'], 'table4': ['paper'],
                         'experts': ['paper'], 'rank': ['paper'], 'teachers': ['paper']},
                        {name: list(seeds) for name in experiments})


def test_plan_trains_each_configuration_once_and_shares_a_teacher_per_seed():
  jobs = _plan()
  by_name = {(j.preset, j.seed, n): j for j in jobs for _, n in j.names}
  # 8 + 8 models of Table 2, 2 ablations and lambda .1 .5 2, K 1 2 4 5, R 1 2 8 16, the
  # 3 ranker teachers (the rest are the same configurations under other names), per seed.
  assert len(jobs) == 2 * (16 + 2 + 1 + 3 + 4 + 4 + 3)
  for seed in (1, 2):
    dsmoe = by_name[('paper', seed, 'DSMOE')]
    for alias in ('lambda 1', 'K=3', 'R=4'):
      assert by_name[('paper', seed, alias)] is dsmoe
    assert by_name[('paper', seed, 'w/o SAP, DSBN, distillation')] is \
        by_name[('paper', seed, 'MMOE')]
    assert dsmoe.teacher_from is None and dsmoe.teacher_key
    for name in ('w/o SAP', 'w/o DSBN', 'lambda 0.5', 'K=1', 'R=16'):
      assert by_name[('paper', seed, name)].teacher_from is dsmoe, name
    for name in ('MMOE', 'ICAN', 'w/o distillation'):
      job = by_name[('paper', seed, name)]
      assert job.teacher_key is None and job.teacher_from is None, name
    # Each ranker teacher is trained by its own student, apart from DCN-v2's.
    ranker_teachers = [by_name[('paper', seed, f'DSMOE, {name} teacher')]
                       for name in ('RankMixer', 'MDL', 'MTmixAtt')]
    assert all(j.teacher_from is None and j.teacher_key for j in ranker_teachers)
    assert len({dsmoe.teacher_key} | {j.teacher_key for j in ranker_teachers}) == 4
    # The default preset's DSMOE trains its own teacher (other item features).
    assert by_name[('default', seed, 'DSMOE')].teacher_from is None
  # Every pupil comes after its teacher; seeds never share a teacher.
  position = {id(j): i for i, j in enumerate(jobs)}
  for job in jobs:
    if job.teacher_from:
      assert position[id(job.teacher_from)] < position[id(job)]
      assert job.teacher_from.seed == job.seed and job.teacher_from.preset == job.preset
  assert len({j.directory for j in jobs}) == len(jobs)
  # A name asked for twice (lambda 0 is "w/o distillation") counts its runs once.
  assert all(len(j.names) == len(set(j.names)) for j in jobs)
  assert ('table4', 'w/o distillation') in by_name[('paper', 1, 'w/o distillation')].names


def _run(name, seed, recall, scenario_of_query, directory='/r/x'):
  """A finished job whose per-query Recall@50 and @100 are `recall` [Q]."""
  recall = np.asarray(recall, np.float32)
  scenarios = np.asarray(scenario_of_query)
  means = lambda values: {s: {'50': float(values[scenarios == s].mean()),
                              '100': float(values[scenarios == s].mean())}
                          for s in sorted(set(scenarios))} | {
                              'all': {'50': float(values.mean()), '100': float(values.mean())}}
  popular = np.full(len(recall), 0.1)
  scores = {'recall': {'model': means(recall), 'popular': means(popular),
                       'popular_per_scenario': means(popular)},
            'queries': {s: int((scenarios == s).sum()) for s in sorted(set(scenarios))}}
  per_query = {'user_id': np.array([f'u{i}' for i in range(len(recall))]),
               'scenario': scenarios, 'model@50': recall, 'model@100': recall}
  job = scheduler.Job(directory, 'paper', seed, (), [('table2', name)], None)
  return tables.Run(job, scores, per_query, {}, {})


def test_paired_difference_averages_seeds_per_query_then_bootstraps_the_difference():
  rng = np.random.default_rng(0)
  scenario = np.array(['1'] * 300 + ['6'] * 100)
  base = rng.random(400)
  better = [_run('a', s, np.clip(base + 0.2 + 0.01 * s, 0, 1), scenario) for s in (1, 2)]
  same = [_run('b', s, base, scenario) for s in (1, 2)]
  intervals = tables.paired_difference(better, same, 50)
  expected = np.mean([r.per_query['model@50'] for r in better], axis=0) - base
  for s, mask in (('1', scenario == '1'), ('6', scenario == '6'), ('all', slice(None))):
    assert intervals[s].point == pytest.approx(expected[mask].mean(), abs=1e-6)
  assert intervals['all'].lower > 0  # a clear gain is significant...
  noise = [_run('c', s, np.clip(base + rng.normal(0, 0.05, 400), 0, 1), scenario)
           for s in (1, 2)]
  tie = tables.paired_difference(noise, same, 50)['all']
  assert tie.lower < 0 < tie.upper  # ...noise around zero is not
  other = [_run('d', 1, base[::-1], scenario[::-1])]
  other[0].per_query['user_id'] = other[0].per_query['user_id'][::-1]
  with pytest.raises(ValueError, match='other test queries'):
    tables.paired_difference(better, other, 50)


def test_table2_bolds_the_best_and_compares_dsmoe_with_the_best_baseline():
  scenario = np.array(['1'] * 200 + ['6'] * 50)
  rng = np.random.default_rng(1)
  base = rng.random(250) * 0.5
  results = {
      ('paper', 'SASS'): [_run('SASS', s, base + 0.1, scenario) for s in (1, 2)],
      ('paper', 'ADIN'): [_run('ADIN', s, base, scenario) for s in (1, 2)],
      ('paper', grid.DSMOE): [_run(grid.DSMOE, s, base + 0.1 + 0.02 * s, scenario)
                              for s in (1, 2)],
  }
  text = tables.table2(results, 'paper', ['1', '6', 'all'])
  lines = {line.split('|')[1].split(' (seeds')[0].strip(): line
           for line in text.splitlines()}
  dsmoe_all = 100 * np.mean([(base + 0.1 + 0.02 * s).mean() for s in (1, 2)])
  dsmoe_std = 100 * np.std([(base + 0.12).mean(), (base + 0.14).mean()], ddof=1)
  assert f'**{dsmoe_all:.2f} ± {dsmoe_std:.2f}**' in lines['DSMOE']
  assert '**' not in lines['SASS'] and '**' not in lines['ADIN']
  assert lines['popular per scenario'].count('10.00') == 6
  # DSMOE - SASS (the best baseline in every column): +3.00 points, significant.
  assert lines['DSMOE − best baseline'].count('+3.00 [+3.00, +3.00]') == 6
  assert lines['DSMOE − best baseline'].count('* vs SASS') == 6


def test_case_study_of_a_model_directory(tmp_path, capsys):
  profile = {'scenarios': ['1', '6'], 'gate_weights': [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]],
             'scenario_coefficients': {'expert_0': [[1.0, 0.0], [1.0, 1.0]],
                                       'forward': [[2.0, 0.0], [-2.0, 0.0]]}}
  (tmp_path / 'training_summary.json').write_text(json.dumps({'scenario_profile': profile}))
  # cos([1, 0], [1, 1]) = 1 / sqrt(2); opposite vectors: -1.
  np.testing.assert_allclose(case_study.cosine_similarities([[1.0, 0.0], [1.0, 1.0]]),
                             [[1, 2 ** -0.5], [2 ** -0.5, 1]])
  np.testing.assert_allclose(case_study.cosine_similarities([[2.0, 0.0], [-2.0, 0.0]]),
                             [[1, -1], [-1, 1]])
  figure = tmp_path / 'case.png'
  assert case_study.main(['--model', str(tmp_path), '--output', str(figure)]) == 0
  out = capsys.readouterr().out
  assert '0.707' in out and '-1.000' in out and '0.800' in out
  assert figure.stat().st_size > 10_000
  (tmp_path / 'training_summary.json').write_text(json.dumps({'student': {}}))
  assert case_study.main(['--model', str(tmp_path)]) == 2
  assert 'no scenario_profile' in capsys.readouterr().err


def test_a_results_directory_keeps_its_data(tmp_path, monkeypatch):
  """Jobs of one results directory train on the artifacts its data.json records, even
  when the pipeline has run again since; another dataset is refused."""
  from core import config as configs
  from experiments import harness
  from experiments import reproduce
  config = configs.load_config('', [f'output_dir={tmp_path}/out',
                                    'data_dir=tests/testdata/kuairand_fixture'])
  reproduce._check_data(str(tmp_path), config)
  artifacts = {name: str(tmp_path / name) for name in (
      'examples', 'item_corpus', 'scenario_mapping', 'transform_graph',
      'transformed_examples', 'schema')}
  for path in artifacts.values():
    os.makedirs(path)
  recorded = json.loads((tmp_path / 'data.json').read_text())
  spec = recorded['dataset_spec']
  recorded['artifacts'] = dict(artifacts, spec=spec)
  (tmp_path / 'data.json').write_text(json.dumps(recorded))
  monkeypatch.setattr(reproduce, '_prepare_data', lambda _: pytest.fail('ran the pipeline'))
  data = reproduce._pinned_data(str(tmp_path), config)
  assert isinstance(data, harness.RunData) and data.transform_graph == artifacts[
      'transform_graph']
  reproduce._check_data(str(tmp_path), config)  # the same data: accepted
  other = configs.load_config('', [f'output_dir={tmp_path}/out'])  # the bundled data
  with pytest.raises(SystemExit, match='other data'):
    reproduce._check_data(str(tmp_path), other)


def test_variants_filter_names_what_it_cannot_find(capsys, tmp_path):
  from experiments import reproduce
  assert reproduce.main(['--experiments', 'teachers', '--variants', 'DSMOE, XYZ teacher',
                         '--results-dir', str(tmp_path)]) == 2
  assert "no variant of teachers is named DSMOE, XYZ teacher" in capsys.readouterr().err
  assert not list(tmp_path.iterdir())  # nothing written


def test_candidate_examples_take_every_item_feature_from_the_candidate():
  import tensorflow as tf
  from experiments import retrieval_weight

  def example(**features):
    out = tf.train.Example()
    for name, values in features.items():
      feature = out.features.feature[name]
      if isinstance(values[0], bytes):
        feature.bytes_list.value.extend(values)
      else:
        feature.float_list.value.extend(values)
    return out

  query = example(user_id=[b'u1'], scenario=[b'4'], history_item_id=[b'a', b'b'],
                  item_id=[b'clicked'], video_duration=[9.0], item_outcomes=[5.0, 2.0],
                  tag=[b't1', b't2'])
  with_tag = example(item_id=[b'x'], video_duration=[1.0], item_outcomes=[0.0, 0.0],
                     tag=[b't3'])
  without_tag = example(item_id=[b'y'], video_duration=[2.0], item_outcomes=[1.0, 1.0])
  first, second = [tf.train.Example.FromString(e) for e in retrieval_weight.candidate_examples(
      query.SerializeToString(), [with_tag, without_tag])]
  for candidate, item in ((first, with_tag), (second, without_tag)):
    features = candidate.features.feature
    assert features['user_id'].bytes_list.value == [b'u1']
    assert features['scenario'].bytes_list.value == [b'4']
    assert list(features['history_item_id'].bytes_list.value) == [b'a', b'b']
    for name, value in item.features.feature.items():
      assert features[name] == value, name
  # The query item's tag is not left on a candidate that has none.
  assert 'tag' not in second.features.feature
  assert list(first.features.feature['tag'].bytes_list.value) == [b't3']


def test_daily_backtest_scores_one_local_day_of_a_split(tmp_path, capsys):
  """A day's events: from its first millisecond in the split's time zone, up to the
  next day's first, in a file of their own."""
  import tensorflow as tf
  from core import dataset_spec as ds
  from experiments import daily_refresh_backtest
  split = ds.SplitSpec(validation_days=1, test_days=2, timezone='Asia/Shanghai')
  start = 1_651_507_200_000  # 2022-05-03T00:00+08:00
  moments = [start - 1, start, start + 86_399_999, start + 86_400_000]
  with tf.io.TFRecordWriter(str(tmp_path / 'split.gz'), 'GZIP') as writer:
    for moment in moments:
      writer.write(tf.train.Example(features=tf.train.Features(feature={
          'timestamp': tf.train.Feature(int64_list=tf.train.Int64List(value=[moment]))
      })).SerializeToString())
  path = daily_refresh_backtest._day_events(str(tmp_path / 'split.gz'), str(tmp_path),
                                            '2022-05-03', split)
  kept = [tf.train.Example.FromString(r.numpy()).features.feature['timestamp']
          .int64_list.value[0] for r in tf.data.TFRecordDataset(path, 'GZIP')]
  assert kept == moments[1:3]
  assert '2 of the 4 events' in capsys.readouterr().out
