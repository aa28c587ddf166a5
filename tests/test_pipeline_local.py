"""The whole pipeline under LocalDagRunner on the KuaiRand fixture, as `make run` runs it."""

import glob
import json
import os
import shutil

import pytest

from components import artifacts
from components import scenario_mapping
from pipeline import local_runner
from pipeline import run_summary
from tests.conftest import FIXTURE_DIR


def _run(capsys, data_dir, output_dir):
  code = local_runner.main(['--set', f'data_dir={data_dir}',
                            '--set', f'output_dir={output_dir}'])
  captured = capsys.readouterr()
  return code, captured.out, captured.err


def _live_uris(output_dir, type_name):
  store = run_summary.open_store(
      os.path.join(output_dir, 'metadata', 'dsmoe-kuairand-pure', 'metadata.db'))
  return sorted(a.uri for a in store.get_artifacts_by_type(type_name))


@pytest.fixture(scope='module')
def first_run(tmp_path_factory):
  output_dir = str(tmp_path_factory.mktemp('pipeline_outputs'))
  code = local_runner.main(['--set', f'data_dir={FIXTURE_DIR}',
                            '--set', f'output_dir={output_dir}'])
  assert code == 0
  return output_dir


def test_run_writes_examples_corpus_mapping_and_report(first_run):
  root = os.path.join(first_run, 'pipeline_root', 'dsmoe-kuairand-pure')
  gen = os.path.join(root, 'InteractionExampleGen')
  for split in ('Split-train', 'Split-eval'):
    assert glob.glob(os.path.join(gen, 'examples', '*', split, '*.gz'))
  assert glob.glob(os.path.join(gen, 'item_corpus', '*', 'Split-corpus', '*.gz'))
  mapping_dir, = glob.glob(os.path.join(gen, 'scenario_mapping', '*'))
  mapping = scenario_mapping.ScenarioMapping.load(mapping_dir)
  assert mapping.values == ('1', '4', '0', '2')
  assert mapping.index_of('0') == 2
  with pytest.raises(KeyError, match="unknown scenario '9'; known scenarios: 1, 4, 0, 2"):
    mapping.index_of('9')
  summary_path, = glob.glob(os.path.join(gen, 'report', '*', 'summary.json'))
  with open(summary_path) as f:
    summary = json.load(f)
  assert summary['rows_read'] == {'logs': 1394, 'users': 150, 'items': 1145}
  assert summary['events']['kept'] + summary['events']['dropped'][
      'scenario_not_selected'] == 1394
  assert (summary['splits']['train']['events'], summary['splits']['eval']['events']) == (
      994, 318)
  for gate in ('events_validation_gate', 'item_corpus_validation_gate'):
    assert os.path.isdir(os.path.join(root, gate))


def test_rerun_without_changes_hits_the_cache(first_run, capsys):
  code, out, _ = _run(capsys, FIXTURE_DIR, first_run)
  assert code == 0
  store = run_summary.open_store(
      os.path.join(first_run, 'metadata', 'dsmoe-kuairand-pure', 'metadata.db'))
  states = {name: state for name, state, _ in run_summary.component_times(store)}
  assert set(states.values()) == {'cached'}, states
  assert 'Ingestion of kuairand_pure' in out and 'item corpus: 1,145 items' in out


def test_bad_input_fails_clearly_and_keeps_earlier_outputs(first_run, capsys, tmp_path):
  before = _live_uris(first_run, 'Examples')
  files_before = sorted(glob.glob(os.path.join(first_run, '**', '*.gz'), recursive=True))
  bad = tmp_path / 'bad'
  shutil.copytree(FIXTURE_DIR, bad)
  log = bad / 'log_standard_fixture.csv'
  lines = log.read_text().splitlines()
  lines[4] = lines[4].replace(',1650819420778,1,', ',1650819420778,yes,')
  log.write_text('\n'.join(lines) + '\n')

  code, _, err = _run(capsys, str(bad), first_run)
  assert code == 1
  assert "log_standard_fixture.csv, line 5, column 'is_click': the label must be 0 or 1" \
      in err
  assert 'Traceback' not in err
  assert _live_uris(first_run, 'Examples') == before  # nothing new was published
  assert all(os.path.exists(f) for f in files_before)  # nothing was lost


def test_schema_anomaly_stops_the_pipeline_naming_the_feature(first_run, capsys, tmp_path):
  bad = tmp_path / 'anomalous'
  shutil.copytree(FIXTURE_DIR, bad)
  users = bad / 'user_features_fixture.csv'
  users.write_text(users.read_text().replace(',full_active,', ',super_active,', 1))
  code, _, err = _run(capsys, str(bad), first_run)
  assert code == 1
  assert "the data does not match its schema" in err
  assert "feature 'user_active_degree'" in err and 'super_active' in err
  assert 'events_schema.pbtxt' in err
