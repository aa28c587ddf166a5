"""The whole pipeline under LocalDagRunner on the KuaiRand fixture, as `make run` runs it
(with the small spec of conftest.py).

The tests share one output directory and run in order: a full run that is released, a
cached rerun, a rerun whose model must not be released, a killed Trainer that resumes,
bad input that must fail without harming what was written, and the paper preset.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from sklearn import metrics as sk_metrics
import tensorflow as tf

from core import config as configs
from core import examples as example_files
from core import layout
from core import release_format
from core import scenario_mapping
from experiments import inspect as case_study
from pipeline import local_runner
from pipeline import run_summary
from ranking import candidates
from retrieval import scann_index
from tests.conftest import BLESS_ANY
from tests.conftest import FIXTURE_DIR
from tests.conftest import pipeline_args
from tests.conftest import REPO_ROOT

PIPELINE = 'dsmoe-kuairand-pure'
NOT_BLESSED = ['evaluation.overall_min_gain=1.0']  # no model gains 100 points of recall


@pytest.fixture(scope='module')
def run(small_setup):
  """run(capsys, output_dir, data_dir=FIXTURE_DIR, extra=(), preset='') -> (code, out,
  err) of one local_runner.main call."""
  def call(capsys, output_dir, data_dir=FIXTURE_DIR, extra=(), preset=''):
    args = pipeline_args(small_setup, output_dir, data_dir, extra)
    code = local_runner.main(args + (['--preset', preset] if preset else []))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
  return call


def _store(output_dir):
  return run_summary.open_store(os.path.join(output_dir, 'metadata', PIPELINE,
                                             'metadata.db'))


def _states(output_dir):
  return {name: state for name, state, _ in run_summary.component_times(_store(output_dir))}


def _one(pattern):
  found = glob.glob(pattern)
  assert len(found) == 1, (pattern, found)
  return found[0]


@pytest.fixture(scope='module')
def first_run(fixture_pipeline_run):
  return fixture_pipeline_run.output_dir


def _root(output_dir):
  return os.path.join(output_dir, 'pipeline_root', PIPELINE)


def test_ingestion_outputs(first_run):
  gen = os.path.join(_root(first_run), 'InteractionExampleGen')
  for split in ('train', 'validation', 'test', 'all'):
    assert glob.glob(os.path.join(gen, 'examples', '*', f'Split-{split}', '*.gz'))
  for split in ('train', 'test', 'all'):
    assert glob.glob(os.path.join(gen, 'item_corpus', '*', f'Split-{split}', '*.gz'))
  assert glob.glob(os.path.join(gen, 'user_snapshot', '*', 'Split-users', '*.gz'))
  mapping = scenario_mapping.ScenarioMapping.load(_one(os.path.join(gen, 'scenario_mapping',
                                                                    '*')))
  assert mapping.values == ('1', '4', '2', '0')  # index order
  assert [s.index for s in mapping.scenarios] == [0, 1, 2, 3]
  with open(_one(os.path.join(gen, 'report', '*', 'summary.json'))) as f:
    summary = json.load(f)
  assert summary['rows_read'] == {'logs': 1394, 'users': 150, 'items': 1145}
  assert [summary['splits'][s]['events'] for s in ('train', 'validation', 'test')] == [
      802, 192, 318]
  assert (summary['validation_start'], summary['test_start']) == (
      '2022-05-02T00:00:00+08:00', '2022-05-03T00:00:00+08:00')
  assert summary['user_snapshot'] == {'users': 150}


def test_trainer_outputs_towers_teacher_and_logs(first_run):
  trainer = os.path.join(_root(first_run), 'DistillationTrainer')
  model = _one(os.path.join(trainer, 'model', '*', 'Format-Serving'))
  for tower in (layout.USER_TOWER_DIR, layout.ITEM_TOWER_DIR):
    assert tf.saved_model.contains_saved_model(os.path.join(model, tower))
  with open(os.path.join(model, 'training_summary.json')) as f:
    summary = json.load(f)
  assert summary['anchors'] == 424  # the fixture's clicks of the train window
  assert summary['refit'] is False
  for phase, metric in (('teacher', 'val_auc'), ('student', 'val_recall@50')):
    part = summary[phase]
    assert part['epochs_max'] == 2 and 1 <= part['epoch_kept'] <= part['epochs_run'] <= 2
    assert part['monitor']['metric'] == metric
    # The epoch kept is the one with the best validation value.
    history = part['history'][metric]
    assert part['monitor']['best'] == pytest.approx(max(history))
    assert part['epoch_kept'] == 1 + history.index(max(history))
  assert set(summary['student']['validation_recall']['1']) == {'1', '2', '4', '0', 'all'}
  # The refit trains every day with exactly the epochs kept here, no validation.
  refit = os.path.join(_root(first_run), 'refit_trainer')
  with open(_one(os.path.join(refit, 'model', '*', 'Format-Serving',
                              'training_summary.json'))) as f:
    refit_summary = json.load(f)
  assert refit_summary['refit'] is True and refit_summary['anchors'] == 692  # all days
  for phase in ('teacher', 'student'):
    assert refit_summary[phase]['epochs_run'] == summary[phase]['epoch_kept']
    assert 'monitor' not in refit_summary[phase]
  teacher = _one(os.path.join(trainer, 'teacher_model', '*'))
  assert os.path.exists(os.path.join(teacher, 'teacher_config.json'))
  assert glob.glob(os.path.join(trainer, 'model_run', '*', 'student', 'train', 'events*'))
  assert not os.path.exists(os.path.join(trainer, 'backup')) or not os.listdir(
      os.path.join(trainer, 'backup'))  # finished: nothing left to resume


def test_evaluation_metrics_chart_and_blessing(first_run):
  evaluation = _one(os.path.join(_root(first_run), 'RecallEvaluator', 'evaluation', '*'))
  with open(os.path.join(evaluation, 'metrics.json')) as f:
    metrics = json.load(f)
  assert metrics['ks'] == [50, 100] and metrics['corpus_size'] == 1145
  assert set(metrics['queries']) == {'0', '1', '2', '4'}
  assert sum(metrics['queries'].values()) == 97  # (user, scenario) pairs with a test click
  for name in ('model', 'popular', 'popular_per_scenario'):
    for scenario in ('0', '1', '2', '4', 'all'):
      values = metrics['recall'][name][scenario]
      assert set(values) == {'50', '100'}
      assert 0.0 <= values['50'] <= values['100'] <= 1.0
      for k in ('50', '100'):
        interval = metrics['intervals'][name][scenario][k]
        assert interval['point'] == pytest.approx(values[k])
        assert interval['lower'] <= interval['mean'] <= interval['upper']
  difference = metrics['intervals']['model_minus_popular_per_scenario']['all']['50']
  assert difference['point'] == pytest.approx(
      metrics['recall']['model']['all']['50'] -
      metrics['recall']['popular_per_scenario']['all']['50'])
  assert metrics['bootstrap']['resamples'] == 200
  comparison = _one(os.path.join(_root(first_run), 'BlessedModelComparison', 'comparison',
                                 '*', 'comparison.json'))
  with open(comparison) as f:
    assert json.load(f) == {'regressions': []}  # the first run: nothing to compare with
  assert set(metrics['auc']) == {'student', 'teacher'}
  assert metrics['blessing']['blessed'] is True
  with open(os.path.join(evaluation, 'recall.png'), 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  blessing = _one(os.path.join(_root(first_run), 'RecallEvaluator', 'blessing', '*'))
  assert os.path.exists(os.path.join(blessing, 'BLESSED'))


def test_release_is_complete_consistent_and_servable(first_run):
  releases = os.path.join(first_run, 'releases')
  version = os.readlink(os.path.join(releases, 'latest'))
  with open(os.path.join(releases, 'LATEST')) as f:
    assert f.read().strip() == version
  path = os.path.join(releases, version)
  with open(os.path.join(path, release_format.MANIFEST)) as f:
    manifest = json.load(f)
  assert manifest['version'] == version and manifest['scenarios'] == ['1', '4', '2', '0']
  # The release serves the refit on every day; its figures are the evaluated model's.
  refit = _one(os.path.join(_root(first_run), 'refit_trainer', 'model', '*',
                            'Format-Serving'))
  evaluated = _one(os.path.join(_root(first_run), 'DistillationTrainer', 'model', '*',
                                'Format-Serving'))
  assert manifest['model_fingerprint'] == layout.towers_fingerprint(refit)
  assert manifest['evaluated_model_fingerprint'] == layout.towers_fingerprint(evaluated)
  data = manifest['data']
  assert data['features_as_of'] == '2022-05-04T23:45:51+08:00'  # the fixture's last event
  assert 'every event up to 2022-05-04T23:45:51+08:00' in data['served_model']['trained_on']
  assert data['served_model']['anchors'] == 692
  assert data['evaluated_model']['anchors'] == 424
  assert manifest['index']['model_fingerprint'] == manifest['model_fingerprint']
  assert manifest['model_fingerprint'] == layout.towers_fingerprint(path)
  assert 0.0 <= manifest['index']['recall_vs_exact']['recall'] <= 1.0
  checksums = layout.file_checksums(path)
  del checksums[release_format.MANIFEST]
  assert checksums == manifest['files']  # every file as written, nothing missing
  for part in ('user_tower', 'item_tower', 'retrieval_model', 'index/scann',
               'index/item_ids.txt', 'scenario_mapping.json', 'evaluation/metrics.json',
               'feature_space.json', 'user_snapshot_arrays/user_ids.npy',
               'warm_start/user_tower/weights.npz', 'warm_start/item_tower/weights.json'):
    assert os.path.exists(os.path.join(path, part)), part
  assert not [p for p in os.listdir(releases) if p.startswith('.')]  # no staging left
  # The index answers like exact search on the released embeddings, mostly.
  searcher, item_ids, embeddings = scann_index.load(os.path.join(path, 'index'))
  assert len(item_ids) == len(embeddings) == 1145
  # A snapshot user goes through the released user tower and the retrieval model.
  users = [r.numpy() for r in tf.data.TFRecordDataset(
      glob.glob(os.path.join(path, 'user_snapshot', '*.gz')), compression_type='GZIP')]
  assert len(users) == 150
  # The end state the next day is ingested from: every corpus item's counts, the snapshot.
  from ingestion import ingest
  from ingestion import records
  previous = ingest.PreviousDays.of_release(path, day_start_ms=1_651_680_000_000)  # 05-05
  assert previous.scenarios == tuple(manifest['scenarios'])
  states = dict(records.parse_item_state(r.numpy()) for r in tf.data.TFRecordDataset(
      glob.glob(previous.item_state), compression_type='GZIP'))
  assert len(states) == len(item_ids)
  assert {s.as_of_ms for s in states.values()} == {1_651_679_151_190 + 1}  # last event + 1
  assert sum(s.outcomes[0] for s in states.values()) == 1394  # every exposure of the log
  with pytest.raises(ingest.IngestionError, match='already holds events up to'):
    ingest.PreviousDays.of_release(path, day_start_ms=1_651_593_600_000)  # 05-04
  tower = tf.saved_model.load(os.path.join(path, 'user_tower'))
  signature = tower.signatures[layout.USER_SIGNATURE]
  spec = signature.structured_input_signature[1]
  parsed = tf.io.parse_single_example(users[0], {
      name: tf.io.FixedLenFeature([], s.dtype) if s.shape.rank == 1 else
      tf.io.VarLenFeature(s.dtype) for name, s in spec.items() if name != 'scenario'})
  inputs = {name: (tf.sparse.to_dense(v, default_value='')[None]
                   if isinstance(v, tf.SparseTensor) else v[None])
            for name, v in parsed.items()}
  inputs['scenario'] = tf.constant(['1'])
  embedding = signature(**inputs)['embedding'].numpy()
  assert embedding.shape == (1, manifest['index']['dimension'])
  import scann  # noqa: F401  (registers the Scann op the retrieval model uses)
  retrieval = tf.saved_model.load(os.path.join(path, 'retrieval_model'))
  top = retrieval.signatures['retrieve'](**inputs)
  assert top['item_ids'].shape == (1, 100)
  exact = item_ids[np.argsort(-(embeddings @ embedding[0]))[:10]]
  assert len(set(exact) & set(top['item_ids'].numpy()[0].astype(str))) >= 5
  # The served DSMOE's case study (gates and SAP b_s per scenario) comes with it.
  with open(os.path.join(path, layout.TRAINING_SUMMARY_FILE)) as f:
    profile = json.load(f)['scenario_profile']
  assert profile['scenarios'] == ['1', '4', '2', '0']
  np.testing.assert_allclose(np.sum(profile['gate_weights'], axis=1), 1.0, rtol=1e-5)
  assert set(profile['scenario_coefficients']) == {'expert_0', 'expert_1', 'expert_2',
                                                   'forward'}
  figure = os.path.join(first_run, 'case_study.png')
  assert case_study.main(['--release', path, '--output', figure]) == 0
  assert os.path.getsize(figure) > 10_000


def test_a_student_warm_started_from_the_release_keeps_every_known_id(
    first_run, small_setup, tmp_path):
  """The release's tower weights start a student on other vocabularies (the train
  window's, a subset of the refit's every day): each id the two share keeps its row; the
  teacher starts from the teacher artifact's weights."""
  import tensorflow_transform as tft
  from experiments import harness
  config = configs.load_config('', pipeline_args(small_setup, first_run)[1::2])
  data = harness.RunData.latest(config)
  teacher = _one(os.path.join(_root(first_run), 'DistillationTrainer', 'teacher_model', '*'))
  model = harness.train(data, config, str(tmp_path), teacher=teacher,
                        warm_start_of=os.path.join(first_run, 'releases', 'latest'))
  summary = harness.training_summary(model)
  assert summary['student']['epochs_run'] == 1 and summary['refit'] is False
  assert summary['warm_start']['from'].endswith('latest')
  now = tft.TFTransformOutput(data.transform_graph)
  before = tft.TFTransformOutput(_one(os.path.join(_root(first_run), 'refit_transform',
                                                   'transform_graph', '*')))
  for tower, name in (('user_tower', 'user_id'), ('item_tower', 'item_id')):
    new, old = set(now.vocabulary_by_name(name)), set(before.vocabulary_by_name(name))
    expected = {'kept': len(new & old), 'new': len(new - old)}
    assert summary['warm_start']['ids'][tower][name] == expected
    assert len(new - old) == 0 < len(old - new)  # later days' ids are not in the train window
  # The teacher (the evaluated run's, on the train window's vocabularies) keeps them all.
  teacher_ids = summary['warm_start_teacher']['ids']['teacher']
  assert teacher_ids['user_id'] == {'kept': len(now.vocabulary_by_name('user_id')),
                                    'new': 0}


def test_ranker_is_trained_evaluated_blessed_and_released(first_run):
  ranker_trainer = os.path.join(_root(first_run), 'RankerTrainer')
  model = _one(os.path.join(ranker_trainer, 'model', '*', 'Format-Serving'))
  with open(os.path.join(model, layout.TRAINING_SUMMARY_FILE)) as f:
    summary = json.load(f)
  assert summary['model'] == configs.RankerConfig().model and summary['tasks'] == ['click', 'long_view', 'like']
  history = summary['history']['val_mean_gauc']
  assert summary['epochs_max'] == 2 and len(history) == summary['epochs_run']
  assert summary['epoch_kept'] == 1 + history.index(max(history))
  assert not os.path.exists(os.path.join(ranker_trainer, 'backup')) or not os.listdir(
      os.path.join(ranker_trainer, 'backup'))  # finished: nothing left to resume
  evaluation = _one(os.path.join(_root(first_run), 'RankingEvaluator', 'evaluation', '*'))
  with open(os.path.join(evaluation, layout.RANKING_METRICS_FILE)) as f:
    metrics = json.load(f)
  assert metrics['systems'] == ['ranker', 'popularity'] and metrics['blessing']['blessed']
  assert set(metrics['counts']) == {'0', '1', '2', '4', 'all'}
  # The release serves the ranker's refit on every day for the epochs the evaluated one
  # kept; the manifest names the evaluated ranker its blessing is of.
  release = os.path.join(first_run, 'releases', 'latest')
  with open(os.path.join(release, release_format.MANIFEST)) as f:
    manifest = json.load(f)
  assert manifest['ranker']['included']
  assert manifest['ranker']['model'] == configs.RankerConfig().model
  refit = _one(os.path.join(_root(first_run), 'refit_ranker_trainer', 'model', '*',
                            'Format-Serving'))
  assert manifest['ranker']['fingerprint'] == layout.directory_fingerprint(
      os.path.join(release, 'ranker')) == layout.directory_fingerprint(refit)
  assert manifest['ranker']['evaluated_fingerprint'] == layout.directory_fingerprint(model)
  assert manifest['ranker']['trained_on'].startswith('every day')
  with open(os.path.join(refit, layout.TRAINING_SUMMARY_FILE)) as f:
    refit_summary = json.load(f)
  assert refit_summary['epochs_run'] == refit_summary['epoch_kept'] == summary['epoch_kept']
  assert refit_summary['monitor'] is None
  assert refit_summary['train_examples'] > summary['train_examples']  # train + the rest
  # Two-stage scoring takes the item's outcomes (as of the corpus's moment) from the item
  # side, never from the user's request.
  corpus = os.path.join(_root(first_run), 'InteractionExampleGen', 'item_corpus', '*',
                        'Split-all', '*.gz')
  candidate_ranker = candidates.CandidateRanker(model, example_files.records(corpus))
  assert 'item_outcomes' in candidate_ranker.item_specs
  assert 'item_outcomes' not in candidate_ranker.user_specs
  # The evaluated ranker's scores of the raw test exposures give the AUC the evaluator
  # reported (sklearn's here).
  assert os.path.exists(os.path.join(release, 'ranker_evaluation',
                                     layout.RANKING_METRICS_FILE))
  examples = _one(os.path.join(_root(first_run), 'InteractionExampleGen', 'examples', '*'))
  records = [r.numpy() for r in tf.data.TFRecordDataset(
      glob.glob(os.path.join(examples, 'Split-test', '*.gz')), compression_type='GZIP')]
  assert metrics['counts']['all']['examples'] == len(records)
  ranker = tf.saved_model.load(model)
  scores = ranker.signatures[layout.RANKER_EXAMPLES_SIGNATURE](
      examples=tf.constant(records))
  for task, label in (('click', 'task_click'), ('long_view', 'task_long_view')):
    labels = np.array([tf.train.Example.FromString(r).features.feature[label]
                       .int64_list.value[0] for r in records])
    assert metrics['counts']['all']['positives'][task] == labels.sum()
    assert metrics['metrics']['ranker']['all'][task]['auc']['point'] == pytest.approx(
        sk_metrics.roc_auc_score(labels, scores[task].numpy()), abs=1e-6)


def test_system_evaluation_reports_what_each_stage_adds(first_run):
  """The SystemEvaluator's retrieval stage is the RecallEvaluator's model on the same
  queries (the fixture has fewer than max_queries_per_scenario per scenario); the ranked
  top k comes from the N candidates, so its recall stays under theirs; the release
  carries the two-stage parts."""
  path = _one(os.path.join(_root(first_run), 'SystemEvaluator', 'evaluation', '*'))
  with open(os.path.join(path, layout.SYSTEM_METRICS_FILE)) as f:
    result = json.load(f)
  recall = _one(os.path.join(_root(first_run), 'RecallEvaluator', 'evaluation', '*'))
  with open(os.path.join(recall, layout.METRICS_FILE)) as f:
    retrieval = json.load(f)
  assert result['stages'] == ['retrieval', 'retrieval_ranker', 'ranker_full_corpus']
  assert result['queries'] == retrieval['queries'] == result['queries_available']
  for scenario, by_k in retrieval['recall']['model'].items():
    assert result['metrics']['retrieval']['recall'][scenario]['50']['point'] == (
        pytest.approx(by_k['50']))
    for stage in ('retrieval_ranker', 'retrieval'):
      assert result['metrics'][stage]['recall'][scenario]['50']['point'] <= (
          result['candidate_recall'][scenario] + 1e-9)
  difference = result['metrics']['retrieval_ranker_minus_retrieval']['ndcg']['all']['10']
  assert difference['point'] == pytest.approx(
      result['metrics']['retrieval_ranker']['ndcg']['all']['10']['point']
      - result['metrics']['retrieval']['ndcg']['all']['10']['point'])
  with open(os.path.join(path, layout.SYSTEM_SUMMARY_FILE)) as f:
    assert '| all (' in f.read()
  release = os.path.join(first_run, 'releases', 'latest')
  with open(os.path.join(release, layout.RECOMMEND_FILE)) as f:
    assert json.load(f)['tasks'] == ['click', 'long_view', 'like']
  assert glob.glob(os.path.join(release, release_format.ITEM_CORPUS_DIR, '*.gz'))


def test_release_recommend_settings_check_the_scenarios(first_run, tmp_path):
  from tfx.types import standard_artifacts
  from components import artifacts
  from components.release_pusher import executor as pusher
  from core import config as configs
  mapping = artifacts.ScenarioMapping()
  mapping.uri = _one(os.path.join(_root(first_run), 'InteractionExampleGen',
                                  'scenario_mapping', '*'))
  corpus = standard_artifacts.Examples()
  corpus.uri = _one(os.path.join(_root(first_run), 'InteractionExampleGen', 'item_corpus',
                                 '*'))
  corpus.split_names = '["train", "test", "all"]'
  inputs = {'scenario_mapping': [mapping], 'item_corpus': [corpus]}
  entry = {'tasks': ['click', 'long_view', 'like']}
  config = lambda weights: {'recommend_config': configs.section_to_json(
      configs.RecommendConfig(scenario_weights=weights))}
  with pytest.raises(configs.ConfigError, match=r'recommend.scenario_weights.9: not a '
                     r'scenario of the data \(scenarios: 1, 4, 2, 0\)'):
    pusher._recommend_parts(inputs, config({'9': {'like': 1.0}}), entry, str(tmp_path))
  parts = pusher._recommend_parts(inputs, config({'4': {'like': 1.0}}), entry,
                                  str(tmp_path))
  with open(parts[layout.RECOMMEND_FILE]) as f:
    settings = json.load(f)
  assert settings['blend'] == {
      'default': {'click': 1.0, 'long_view': 0.0, 'like': 0.0, 'retrieval': 1.0},
      '4': {'click': 0.0, 'long_view': 0.0, 'like': 1.0, 'retrieval': 1.0}}
  assert parts[release_format.ITEM_CORPUS_DIR].endswith('Split-all')


def test_ranker_refused_keeps_the_served_ranker_and_a_changed_previous_is_not_compared(
    first_run, tmp_path):
  from tfx.types import standard_artifacts
  from components import artifacts
  from components.release_pusher import executor as pusher
  from core import config as configs
  from ranking import evaluation as ranking_evaluation
  ranker = artifacts.RankerModel()
  ranker.uri = _one(os.path.join(_root(first_run), 'RankerTrainer', 'model', '*'))
  evaluated = standard_artifacts.ModelEvaluation()
  evaluated.uri = _one(os.path.join(_root(first_run), 'RankingEvaluator', 'evaluation', '*'))
  refused = artifacts.RankerBlessing()
  refused.set_int_custom_property('blessed', 0)
  inputs = {'ranker': [ranker], 'ranker_evaluation': [evaluated],
            'ranker_blessing': [refused]}
  # Nothing served yet: the ranker stays out and the manifest entry says why.
  parts, entry = pusher._ranker(inputs, str(tmp_path / 'no_releases'))
  assert parts == {} and entry['included'] is False
  assert entry['reason'].startswith('not blessed')
  # A release serving a ranker: that ranker is carried over, the refusal recorded.
  releases = os.path.join(first_run, 'releases')
  latest = release_format.latest_release(releases)
  parts, entry = pusher._ranker(inputs, releases)
  assert parts == {name: os.path.join(latest, name) for name in ('ranker',
                                                                 'ranker_evaluation')}
  assert entry['included'] and entry['carried_from'] == os.path.basename(latest)
  assert entry['refused']['fingerprint'] == layout.directory_fingerprint(
      os.path.join(ranker.uri, 'Format-Serving'))
  # The previous blessed ranker: compared when it predicts the same tasks, left out with
  # a note when it predicts others.
  examples = _one(os.path.join(_root(first_run), 'InteractionExampleGen', 'examples', '*'))
  history = [layout.split_pattern(examples, s) for s in ('train', 'validation')]
  config = configs.RankingEvaluationConfig(bootstrap_resamples=20)
  model_dir = os.path.join(latest, 'ranker')
  same = ranking_evaluation.evaluate_exported(
      model_dir, history, layout.split_pattern(examples, 'test'), config, model_dir)
  assert same['systems'] == ['ranker', 'popularity', 'previous_blessed']
  assert same['metrics']['previous_blessed'] == same['metrics']['ranker']
  other = str(tmp_path / 'other_tasks')
  shutil.copytree(model_dir, other)
  with open(os.path.join(other, layout.RANKER_TASKS_FILE), 'w') as f:
    json.dump(['click'], f)
  changed = ranking_evaluation.evaluate_exported(
      model_dir, history, layout.split_pattern(examples, 'test'), config, other)
  assert changed['systems'] == ['ranker', 'popularity']
  assert 'predicts the tasks' in changed['previous_blessed_note']


def test_compare_releases_scores_two_models_on_the_same_test_queries(first_run, capsys):
  """experiments.compare_releases: the evaluated model's recall is the RecallEvaluator's
  on the same split, the release (its refit) beside it, the paired differences."""
  from experiments import compare_releases
  gen = os.path.join(_root(first_run), 'InteractionExampleGen')
  evaluated = _one(os.path.join(_root(first_run), 'DistillationTrainer', 'model', '*',
                                'Format-Serving'))
  release = release_format.latest_release(os.path.join(first_run, 'releases'))
  assert compare_releases.main([
      evaluated, release, '--examples', _one(os.path.join(gen, 'examples', '*')),
      '--corpus', _one(os.path.join(gen, 'item_corpus', '*'))]) == 0
  out = capsys.readouterr().out
  assert out.startswith(f'{evaluated}\nagainst {release}\n')
  with open(os.path.join(_one(os.path.join(_root(first_run), 'RecallEvaluator',
                                           'evaluation', '*')), 'metrics.json')) as f:
    evaluator = json.load(f)['recall']['model']['all']
  overall = re.search(r'^ +all +(\S+) +(\S+) +', out, re.M)
  assert float(overall.group(1)) == pytest.approx(evaluator['50'], abs=5e-5)


def _not_cached(output_dir):
  """Components of the latest run that executed. Resolvers resolve on every run (in no
  time); they are not components that can be cached."""
  return {name for name, state in _states(output_dir).items()
          if state != 'cached' and not name.endswith('_resolver')}


@pytest.mark.extended
def test_rerun_without_changes_hits_the_cache(first_run, capsys, run):
  releases = os.path.join(first_run, 'releases')
  before = sorted(os.listdir(releases))
  code, out, _ = run(capsys, first_run, extra=BLESS_ANY)
  assert code == 0
  # The first run had no blessed model to compare with; this one has (the same model), so
  # only the comparison and the Pusher see new inputs; the blessing and so the refit are
  # cached, and the same model is not released twice.
  # The ranker's evaluator, too: it now has a previous blessed ranker (the same model).
  assert _not_cached(first_run) == {'BlessedModelComparison', 'RankingEvaluator',
                                    'ReleasePusher'}
  assert _states(first_run)['refit_trainer'] == 'cached'
  assert sorted(os.listdir(releases)) == before
  assert 'Ingestion of kuairand_pure' in out and 'Recall@K on the test split' in out
  assert re.search(r'student: kept epoch \d of \d run', out)
  assert 'refit on every day for the release' in out and 'release: ' in out
  assert re.search(r'ranker refit on every day for the release: \d epochs', out)
  assert _states(first_run)['refit_ranker_trainer'] == 'cached'
  # From then on, nothing changed means nothing runs.
  code, out, _ = run(capsys, first_run, extra=BLESS_ANY)
  assert code == 0 and not _not_cached(first_run)
  assert _states(first_run)['DistillationTrainer'] == 'cached'


@pytest.mark.extended
def test_model_that_does_not_beat_popularity_is_not_refit_nor_released(first_run, capsys,
                                                                      run):
  releases = os.path.join(first_run, 'releases')
  before = sorted(os.listdir(releases))
  latest = os.readlink(os.path.join(releases, 'latest'))
  code, out, _ = run(capsys, first_run, extra=NOT_BLESSED)
  assert code == 0  # not blessed is an outcome, not an error
  states = _states(first_run)
  assert states['DistillationTrainer'] == 'cached' and states['RecallEvaluator'] == 'ran'
  for skipped in ('refit_transform', 'refit_trainer', 'IndexBuilder', 'ReleasePusher'):
    assert states.get(skipped, 'skipped') not in ('ran', 'cached'), skipped
  assert 'NOT BLESSED' in out and 'not significantly above per-scenario popularity' in out
  assert 'no release: the model was not blessed' in out
  assert sorted(os.listdir(releases)) == before
  assert os.readlink(os.path.join(releases, 'latest')) == latest


@pytest.mark.extended
def test_killed_trainer_resumes_from_its_checkpoints(first_run, capsys, run, small_setup):
  extra = ['training.epochs=5', 'training.batch_size=32', *NOT_BLESSED]
  env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_USE_LEGACY_KERAS='1')
  process = subprocess.Popen(
      [sys.executable, '-m', 'pipeline.local_runner'] +
      pipeline_args(small_setup, first_run, extra=extra),
      cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  deadline = time.time() + 600
  seen = []
  for line in process.stdout:
    seen.append(line)
    if 'student epoch 2/5' in line or time.time() > deadline:
      break
  process.kill()  # SIGKILL: no clean-up, like a lost machine
  process.wait()
  assert any('student epoch 2/5' in line for line in seen), ''.join(seen[-20:])

  code, out, _ = run(capsys, first_run, extra=extra)
  assert code == 0
  assert 'teacher: already trained before the interruption' in out
  assert re.search(r'student: resuming from the checkpoint', out)
  epochs = [int(n) for n in re.findall(r'student epoch (\d+)/5', out)]
  assert epochs and epochs[0] >= 3  # continued, not restarted
  assert 'teacher epoch' not in out


@pytest.mark.extended
def test_bad_input_fails_clearly_and_keeps_earlier_outputs(first_run, capsys, tmp_path,
                                                           run):
  before = sorted(a.uri for a in _store(first_run).get_artifacts_by_type('Examples'))
  releases = sorted(os.listdir(os.path.join(first_run, 'releases')))
  bad = tmp_path / 'bad'
  shutil.copytree(FIXTURE_DIR, bad)
  log = bad / 'log_standard_fixture.csv'
  lines = log.read_text().splitlines()
  lines[4] = lines[4].replace(',1650819420778,1,', ',1650819420778,yes,')
  log.write_text('\n'.join(lines) + '\n')

  code, _, err = run(capsys, first_run, data_dir=str(bad))
  assert code == 1
  assert "log_standard_fixture.csv, line 5, column 'is_click': the label must be 0 or 1" \
      in err
  assert 'Traceback' not in err
  assert sorted(a.uri for a in _store(first_run).get_artifacts_by_type('Examples')) == before
  assert sorted(os.listdir(os.path.join(first_run, 'releases'))) == releases


@pytest.mark.extended
def test_schema_anomaly_stops_the_pipeline_naming_the_feature(first_run, capsys, tmp_path,
                                                              run):
  bad = tmp_path / 'anomalous'
  shutil.copytree(FIXTURE_DIR, bad)
  users = bad / 'user_features_fixture.csv'
  users.write_text(users.read_text().replace(',full_active,', ',super_active,', 1))
  code, _, err = run(capsys, first_run, data_dir=str(bad))
  assert code == 1
  assert 'the data does not match its schema' in err
  assert "feature 'user_active_degree'" in err and 'super_active' in err
  assert 'events_schema.pbtxt' in err
  assert _states(first_run).get('Transform') != 'ran'  # nothing trained on it


@pytest.mark.extended
def test_paper_preset_runs_end_to_end_without_what_is_beyond_the_paper(first_run, capsys,
                                                                       run):
  """presets/paper.yaml: same data (its ingestion and Transform come from the cache), a
  model without popularity features or prior, refit and released."""
  code, out, _ = run(capsys, first_run, preset='paper',
                     extra=[f'output_dir={first_run}', f'pipeline_name={PIPELINE}',
                            *BLESS_ANY])
  assert code == 0, out
  states = _states(first_run)
  assert states['InteractionExampleGen'] == 'cached' and states['Transform'] == 'cached'
  assert states['DistillationTrainer'] == 'ran' and states['refit_trainer'] == 'ran'
  release = re.search(r'^release: (\S+)', out, re.M).group(1)
  with open(os.path.join(release, 'feature_space.json')) as f:
    space = json.load(f)
  assert space['item']['numeric_lists'] == []  # the item tower reads no popularity
  with open(os.path.join(release, 'manifest.json')) as f:
    manifest = json.load(f)
  assert manifest['index']['dimension'] == 64  # model.output_dim: no prior entries
  assert manifest['ranker'] == {'included': False, 'reason': 'the pipeline trained no '
                                'ranker (ranker.enabled is false)'}
  assert not os.path.exists(os.path.join(release, 'ranker'))
  tower = tf.saved_model.load(os.path.join(release, 'item_tower'))
  inputs = tower.signatures[layout.ITEM_SIGNATURE].structured_input_signature[1]
  assert 'scenario_clicks' not in inputs and 'item_id' in inputs


def _with_next_day(tmp_path) -> str:
  """The fixture's data with a new day: its last day's events again, a day later, in a
  file of their own (a day's log arriving)."""
  data = tmp_path / 'with_next_day'
  shutil.copytree(FIXTURE_DIR, data)
  header, *rows = (data / 'log_standard_fixture.csv').read_text().splitlines()
  columns = header.split(',')
  time_ms, date = columns.index('time_ms'), columns.index('date')
  last_day = max(row.split(',')[date] for row in rows)
  shifted = []
  for row in rows:
    values = row.split(',')
    if values[date] == last_day:
      values[time_ms] = str(int(values[time_ms]) + 86_400_000)
      values[date] = str(int(last_day) + 1)
      shifted.append(','.join(values))
  (data / 'log_standard_fixture_next.csv').write_text('\n'.join([header, *shifted]) + '\n')
  return str(data)


@pytest.mark.extended
def test_refresh_warm_starts_the_release_gates_it_on_the_new_day_and_publishes(
    fixture_pipeline_run, capsys, tmp_path, small_setup):
  """make refresh: a release trained on the logs' newest day, gated against the release on
  that day and published with the release's ranker; logs without a day after the release
  are refused and publish nothing. The release is the first run's (the latest one of the
  shared outputs may be the paper preset's, which a default refresh refuses: test_configs)."""
  outputs = str(tmp_path / 'outputs')
  shutil.copytree(fixture_pipeline_run.output_dir, outputs, symlinks=True)
  releases = os.path.join(outputs, 'releases')
  served = fixture_pipeline_run.release
  with open(os.path.join(served, 'manifest.json')) as f:
    served_manifest = json.load(f)
  assert os.path.exists(os.path.join(served, 'teacher', 'warm_start', 'weights.npz'))

  before = sorted(os.listdir(releases))
  def refresh(data_dir, extra=()):
    code = local_runner.main(pipeline_args(small_setup, outputs, data_dir, extra) +
                             ['--refresh', served])
    captured = capsys.readouterr()
    return code, captured.out, captured.err

  code, _, err = refresh(FIXTURE_DIR)  # no day after the release in the fixture
  assert code == 1 and 'a refresh needs a day after the release' in err, err
  assert 'Traceback' not in err
  assert sorted(os.listdir(releases)) == before

  code, out, err = refresh(_with_next_day(tmp_path), BLESS_ANY)
  assert code == 0, out + err
  assert f'a refresh of {os.path.realpath(served)}' in out
  states = _states(outputs)
  assert 'RankerTrainer' not in states and 'SystemEvaluator' not in states
  gen = os.path.join(_root(outputs), 'InteractionExampleGen')
  with open(sorted(glob.glob(os.path.join(gen, 'report', '*', 'summary.json')),
                   key=os.path.getmtime)[-1]) as f:
    summary = json.load(f)
  assert (summary['validation_start'], summary['test_start']) == (
      '2022-05-04T00:00:00+08:00', '2022-05-05T00:00:00+08:00')  # the new day is the gate
  # Only the window's days are training examples; the days before it, split history.
  assert summary['history']['before'] == '2022-04-28T00:00:00+08:00'
  assert summary['history']['events'] > 0 and os.listdir(sorted(
      glob.glob(os.path.join(gen, 'examples', '*', 'Split-history')), key=os.path.getmtime)[-1])
  release = re.search(r'^release: (\S+)', out, re.M).group(1)
  with open(os.path.join(release, 'manifest.json')) as f:
    manifest = json.load(f)
  assert manifest['refresh_of'] == os.path.basename(os.path.realpath(served))
  assert manifest['scenarios'] == served_manifest['scenarios']
  assert manifest['ranker']['carried_from'] == os.path.basename(os.path.realpath(served))
  assert os.path.exists(os.path.join(release, 'ranker', 'saved_model.pb'))
  assert os.path.exists(os.path.join(release, 'teacher', 'warm_start', 'weights.npz'))
  with open(os.path.join(release, 'training_summary.json')) as f:
    trained = json.load(f)
  # One epoch from the release's weights on the window's days up to the new one.
  assert trained['student']['epochs_run'] == 1 and trained['refit'] is False
  assert trained['warm_start']['from'] == os.path.realpath(served)
  assert trained['warm_start_teacher']['from'] == os.path.join(os.path.realpath(served),
                                                               'teacher')
  assert trained['window']['last_day'] == '2022-05-05' and trained['window']['days'] == 7
  with open(os.path.join(served, 'training_summary.json')) as f:
    assert trained.get('popularity_weights') == json.load(f).get('popularity_weights')
  assert manifest['data']['served_model']['trained_on'].startswith('a warm start from')
  # The gated model: the same warm start on every day before the new one.
  with open(sorted(glob.glob(os.path.join(
      _root(outputs), 'DistillationTrainer', 'model', '*', 'Format-Serving',
      'training_summary.json')), key=os.path.getmtime)[-1]) as f:
    gated = json.load(f)
  assert gated['window']['last_day'] == '2022-05-04' and gated['refit'] is False
  assert gated['warm_start']['from'] == os.path.realpath(served)
  # The gate: the model trained before the new day against the served release, on it.
  comparison = sorted(glob.glob(os.path.join(_root(outputs), 'BlessedModelComparison',
                                             'comparison', '*', 'comparison.json')),
                      key=os.path.getmtime)[-1]
  with open(comparison) as f:
    compared = json.load(f)
  assert compared['baseline']['uri'] == os.path.realpath(served)
  assert set(compared['queries']) <= set(served_manifest['scenarios'])
