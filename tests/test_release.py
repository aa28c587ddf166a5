"""Release directories: complete, checksummed, versioned, `latest` moved atomically."""

import json
import os

import pytest

from core import layout
from core import release_format as release


def _parts(tmp_path):
  source = tmp_path / 'src'
  (source / 'tower' / 'variables').mkdir(parents=True, exist_ok=True)
  (source / 'tower' / 'saved_model.pb').write_bytes(b'graph')
  (source / 'tower' / 'variables' / 'v').write_bytes(b'weights')
  (source / 'mapping.json').write_text('{}')
  return {'user_tower': str(source / 'tower'), 'scenario_mapping.json':
          str(source / 'mapping.json')}


def test_publish_writes_everything_and_points_latest(tmp_path):
  releases = tmp_path / 'releases'
  path = release.publish(str(releases), 'v1', _parts(tmp_path), {'model_fingerprint': 'f'})
  assert path == str(releases / 'v1')
  manifest = json.loads((releases / 'v1' / release.MANIFEST).read_text())
  assert manifest['version'] == 'v1' and manifest['format'] == release.FORMAT_VERSION
  assert set(manifest['files']) == {'user_tower/saved_model.pb',
                                    'user_tower/variables/v', 'scenario_mapping.json'}
  assert manifest['files'] == {k: v for k, v in layout.file_checksums(path).items()
                               if k != release.MANIFEST}
  assert os.readlink(releases / 'latest') == 'v1'
  assert (releases / 'LATEST').read_text() == 'v1\n'

  release.publish(str(releases), 'v2', _parts(tmp_path), {})
  assert os.readlink(releases / 'latest') == 'v2'
  assert sorted(os.listdir(releases)) == ['LATEST', 'latest', 'v1', 'v2']


def test_a_failed_publish_leaves_no_release_and_keeps_latest(tmp_path):
  releases = tmp_path / 'releases'
  release.publish(str(releases), 'v1', _parts(tmp_path), {})
  parts = _parts(tmp_path)
  parts['missing'] = str(tmp_path / 'does-not-exist')
  with pytest.raises(Exception):
    release.publish(str(releases), 'v2', parts, {})
  assert not (releases / 'v2').exists()  # only the hidden staging directory is left
  assert os.readlink(releases / 'latest') == 'v1'


def test_an_existing_version_is_never_overwritten(tmp_path):
  releases = tmp_path / 'releases'
  release.publish(str(releases), 'v1', _parts(tmp_path), {})
  with pytest.raises(release.ReleaseError, match='already exists'):
    release.publish(str(releases), 'v1', _parts(tmp_path), {})


def test_version_names_sort_by_time():
  import datetime
  early = release.new_version('abcdef0123', datetime.datetime(2026, 1, 2, 3, 4, 5))
  late = release.new_version('0000000000', datetime.datetime(2026, 1, 2, 3, 4, 6))
  assert early == '20260102T030405Z-abcdef01' and early < late


def test_the_manifest_names_the_daily_log_files_it_saw():
  from components.release_pusher import executor
  ingestion = {'last_event': '2022-05-04T23:59:59+08:00', 'validation_start': 'v',
               'test_start': 't', 'log_days': [
                   {'day': '2022-05-03', 'file': '/d/log_20220503.csv', 'rows': 7,
                    'other_day_events': 0},
                   {'day': '2022-05-04', 'file': '/d/log_20220504.csv', 'rows': 5,
                    'other_day_events': 0}]}
  summary = {'student': {'epoch_kept': 2}, 'anchors': 10}
  account = executor.data_account(ingestion, summary, summary)
  assert account['log_days'] == [
      {'day': '2022-05-03', 'file': '/d/log_20220503.csv', 'rows': 7},
      {'day': '2022-05-04', 'file': '/d/log_20220504.csv', 'rows': 5}]
  assert 'log_days' not in executor.data_account(
      dict(ingestion, log_days=[]), summary, summary)  # one log file: no days to name
