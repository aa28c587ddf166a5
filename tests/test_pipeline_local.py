"""The whole pipeline under LocalDagRunner on the KuaiRand fixture, as `make run` runs it.

The tests share one output directory and run in order: a full run that is released, a
cached rerun, a rerun whose model must not be released, a killed Trainer that resumes,
and bad input that must fail without harming what was written.
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
import tensorflow as tf

from core import layout
from core import release_format
from core import scenario_mapping
from pipeline import local_runner
from pipeline import run_summary
from retrieval import scann_index
from tests.conftest import FIXTURE_DIR
from tests.conftest import QUICK_TRAINING
from tests.conftest import REPO_ROOT

QUICK = list(QUICK_TRAINING)
PIPELINE = 'dsmoe-kuairand-pure'


def _args(output_dir, data_dir=FIXTURE_DIR, extra=()):
  args = ['--set', f'data_dir={data_dir}', '--set', f'output_dir={output_dir}']
  for override in QUICK + list(extra):
    args += ['--set', override]
  return args


def _run(capsys, output_dir, data_dir=FIXTURE_DIR, extra=()):
  code = local_runner.main(_args(output_dir, data_dir, extra))
  captured = capsys.readouterr()
  return code, captured.out, captured.err


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
  for split in ('Split-train', 'Split-eval'):
    assert glob.glob(os.path.join(gen, 'examples', '*', split, '*.gz'))
  assert glob.glob(os.path.join(gen, 'item_corpus', '*', 'Split-corpus', '*.gz'))
  assert glob.glob(os.path.join(gen, 'user_snapshot', '*', 'Split-users', '*.gz'))
  mapping = scenario_mapping.ScenarioMapping.load(_one(os.path.join(gen, 'scenario_mapping',
                                                                    '*')))
  assert mapping.values == ('1', '4', '0', '2')  # index order
  assert [s.index for s in mapping.scenarios] == [0, 1, 2, 3]
  with open(_one(os.path.join(gen, 'report', '*', 'summary.json'))) as f:
    summary = json.load(f)
  assert summary['rows_read'] == {'logs': 1394, 'users': 150, 'items': 1145}
  assert (summary['splits']['train']['events'], summary['splits']['eval']['events']) == (
      994, 318)
  assert summary['user_snapshot'] == {'users': 150}


def test_trainer_outputs_towers_teacher_and_logs(first_run):
  trainer = os.path.join(_root(first_run), 'DistillationTrainer')
  model = _one(os.path.join(trainer, 'model', '*', 'Format-Serving'))
  for tower in (layout.USER_TOWER_DIR, layout.ITEM_TOWER_DIR):
    assert tf.saved_model.contains_saved_model(os.path.join(model, tower))
  with open(os.path.join(model, 'training_summary.json')) as f:
    summary = json.load(f)
  assert summary['anchors'] == 524  # the fixture's training clicks
  assert len(summary['student']['examples_per_second']) == 2
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
  for name in ('model', 'popular', 'popular_per_scenario'):
    for scenario in ('0', '1', '2', '4', 'all'):
      values = metrics['recall'][name][scenario]
      assert set(values) == {'50', '100'}
      assert 0.0 <= values['50'] <= values['100'] <= 1.0
  assert metrics['recall']['previous_blessed'] is None  # the first run
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
  assert manifest['version'] == version and manifest['scenarios'] == ['1', '4', '0', '2']
  assert manifest['index']['model_fingerprint'] == manifest['model_fingerprint']
  assert manifest['model_fingerprint'] == layout.towers_fingerprint(path)
  assert 0.0 <= manifest['index']['recall_vs_exact']['recall'] <= 1.0
  checksums = layout.file_checksums(path)
  del checksums[release_format.MANIFEST]
  assert checksums == manifest['files']  # every file as written, nothing missing
  for part in ('user_tower', 'item_tower', 'retrieval_model', 'index/scann',
               'index/item_ids.txt', 'scenario_mapping.json', 'evaluation/metrics.json',
               'feature_space.json'):
    assert os.path.exists(os.path.join(path, part)), part
  assert not [p for p in os.listdir(releases) if p.startswith('.')]  # no staging left
  # The index answers like exact search on the released embeddings, mostly.
  searcher, item_ids, embeddings = scann_index.load(os.path.join(path, 'index'))
  assert len(item_ids) == len(embeddings) == 1145
  # A snapshot user goes through the released user tower and the retrieval model.
  users = [r.numpy() for r in tf.data.TFRecordDataset(
      glob.glob(os.path.join(path, 'user_snapshot', '*.gz')), compression_type='GZIP')]
  assert len(users) == 150
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


def _not_cached(output_dir):
  """Components of the latest run that executed. Resolvers resolve on every run (in no
  time); they are not components that can be cached."""
  return {name for name, state in _states(output_dir).items()
          if state != 'cached' and not name.endswith('_resolver')}


def test_rerun_without_changes_hits_the_cache(first_run, capsys):
  releases = os.path.join(first_run, 'releases')
  before = sorted(os.listdir(releases))
  code, out, _ = _run(capsys, first_run, extra=['evaluation.bless_margin=-1.0'])
  assert code == 0
  # The first run had no blessed model to compare with; this one has (the same model), so
  # only the Evaluator and the Pusher see new inputs, and the same model is not released
  # twice.
  assert _not_cached(first_run) == {'RecallEvaluator', 'ReleasePusher'}
  assert sorted(os.listdir(releases)) == before
  assert 'Ingestion of kuairand_pure' in out and 'Recall@K over the full corpus' in out
  assert 'release: ' in out
  # From then on, nothing changed means nothing runs.
  code, out, _ = _run(capsys, first_run, extra=['evaluation.bless_margin=-1.0'])
  assert code == 0 and not _not_cached(first_run)
  assert _states(first_run)['DistillationTrainer'] == 'cached'


def test_model_worse_than_popularity_is_not_released(first_run, capsys):
  releases = os.path.join(first_run, 'releases')
  before = sorted(os.listdir(releases))
  latest = os.readlink(os.path.join(releases, 'latest'))
  code, out, _ = _run(capsys, first_run, extra=['evaluation.bless_margin=1.0'])
  assert code == 0  # not blessed is an outcome, not an error
  states = _states(first_run)
  assert states['DistillationTrainer'] == 'cached'
  assert states['RecallEvaluator'] == 'ran' and states['ReleasePusher'] == 'ran'
  assert 'NOT BLESSED' in out and 'does not beat per-scenario popularity' in out
  assert 'no release: the model was not blessed' in out
  assert sorted(os.listdir(releases)) == before
  assert os.readlink(os.path.join(releases, 'latest')) == latest


def test_killed_trainer_resumes_from_its_checkpoints(first_run, capsys):
  extra = ['training.epochs=5', 'training.batch_size=32', 'evaluation.bless_margin=-1.0']
  env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_USE_LEGACY_KERAS='1')
  process = subprocess.Popen(
      [sys.executable, '-m', 'pipeline.local_runner'] + _args(first_run, extra=extra),
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

  code, out, _ = _run(capsys, first_run, extra=extra)
  assert code == 0
  assert 'teacher: already trained before the interruption' in out
  assert re.search(r'student: resuming from the checkpoint', out)
  epochs = [int(n) for n in re.findall(r'student epoch (\d+)/5', out)]
  assert epochs and epochs[0] >= 3 and epochs[-1] == 5  # continued, not restarted
  assert 'teacher epoch' not in out


def test_bad_input_fails_clearly_and_keeps_earlier_outputs(first_run, capsys, tmp_path):
  before = sorted(a.uri for a in _store(first_run).get_artifacts_by_type('Examples'))
  releases = sorted(os.listdir(os.path.join(first_run, 'releases')))
  bad = tmp_path / 'bad'
  shutil.copytree(FIXTURE_DIR, bad)
  log = bad / 'log_standard_fixture.csv'
  lines = log.read_text().splitlines()
  lines[4] = lines[4].replace(',1650819420778,1,', ',1650819420778,yes,')
  log.write_text('\n'.join(lines) + '\n')

  code, _, err = _run(capsys, first_run, data_dir=str(bad))
  assert code == 1
  assert "log_standard_fixture.csv, line 5, column 'is_click': the label must be 0 or 1" \
      in err
  assert 'Traceback' not in err
  assert sorted(a.uri for a in _store(first_run).get_artifacts_by_type('Examples')) == before
  assert sorted(os.listdir(os.path.join(first_run, 'releases'))) == releases


def test_schema_anomaly_stops_the_pipeline_naming_the_feature(first_run, capsys, tmp_path):
  bad = tmp_path / 'anomalous'
  shutil.copytree(FIXTURE_DIR, bad)
  users = bad / 'user_features_fixture.csv'
  users.write_text(users.read_text().replace(',full_active,', ',super_active,', 1))
  code, _, err = _run(capsys, first_run, data_dir=str(bad))
  assert code == 1
  assert 'the data does not match its schema' in err
  assert "feature 'user_active_degree'" in err and 'super_active' in err
  assert 'events_schema.pbtxt' in err
  assert _states(first_run).get('Transform') != 'ran'  # nothing trained on it
