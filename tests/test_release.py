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
