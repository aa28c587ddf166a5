"""Serving a release: loading checks, the query library, the CLI, batch files, HTTP.

All tests serve the release the fixture pipeline run published (tests/conftest.py).
"""

import dataclasses
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

import tensorflow as tf

from core import config as configs
from core import examples as example_files
from core import layout
from core import release_format
from serving import cli
from serving import recommender as recommender_lib
from serving.release import load_release
from serving.release import ReleaseLoadError
from serving.retriever import RequestError
from serving.retriever import RetrievalRequest
from serving.retriever import Retriever
from tests.conftest import REPO_ROOT


@pytest.fixture(scope='module')
def release_dir(fixture_pipeline_run):
  return fixture_pipeline_run.release


@pytest.fixture(scope='module')
def retriever(release_dir):
  return Retriever(load_release(release_dir))


def _copy(release_dir, destination, version):
  """A copy of the release under another version name (a 'newer' release)."""
  shutil.copytree(release_dir, destination)
  path = os.path.join(destination, release_format.MANIFEST)
  with open(path) as f:
    manifest = json.load(f)
  manifest['version'] = version
  with open(path, 'w') as f:
    json.dump(manifest, f)
  return str(destination)


def _known_user(retriever):
  return sorted(retriever.release.snapshot)[0]


@pytest.fixture(scope='module')
def recommender(retriever):
  return recommender_lib.Recommender(retriever.release)


def _without_ranker(release_dir, releases, version):
  """The release published again without its ranker (as when none was ever blessed)."""
  with open(os.path.join(release_dir, release_format.MANIFEST)) as f:
    manifest = json.load(f)
  dropped = (release_format.RANKER_DIR, release_format.RANKER_EVALUATION_DIR,
             release_format.ITEM_CORPUS_DIR, layout.RECOMMEND_FILE, release_format.MANIFEST)
  parts = {name: os.path.join(release_dir, name) for name in os.listdir(release_dir)
           if name not in dropped}
  for key in ('files', 'format', 'version'):
    manifest.pop(key)
  manifest['ranker'] = {'included': False, 'reason': 'the pipeline trained no ranker'}
  return release_format.publish(str(releases), version, parts, manifest)


def _perturbed(release_dir, releases, version, work):
  """The release with another index (its item ids shuffled over the embeddings) and
  another ranker (every weight scaled by a random factor): both stages differ."""
  with open(os.path.join(release_dir, release_format.MANIFEST)) as f:
    manifest = json.load(f)
  parts = {name: os.path.join(release_dir, name) for name in os.listdir(release_dir)
           if name != release_format.MANIFEST}
  rng = np.random.default_rng(7)
  source = os.path.join(release_dir, release_format.RANKER_DIR)
  target = os.path.join(work, release_format.RANKER_DIR)
  module = tf.saved_model.load(source)
  for variable in module.model.variables:
    if variable.dtype.is_floating:
      variable.assign(variable * np.exp(rng.normal(0, 0.5, variable.shape)).astype(
          variable.dtype.as_numpy_dtype))
  tf.saved_model.save(module, target, signatures=dict(module.signatures))
  for file in os.listdir(source):  # tasks.json, feature_space.json, ...
    if os.path.isfile(os.path.join(source, file)) and not os.path.exists(
        os.path.join(target, file)):
      shutil.copy(os.path.join(source, file), target)
  parts[release_format.RANKER_DIR] = target
  manifest['ranker']['fingerprint'] = layout.directory_fingerprint(target)
  ids = os.path.join(release_format.INDEX_DIR, 'item_ids.txt')
  with open(os.path.join(release_dir, ids)) as f:
    items = f.read().splitlines()
  with open(os.path.join(work, 'item_ids.txt'), 'w') as f:
    f.write(''.join(f'{item}\n' for item in rng.permutation(items)))
  parts[ids] = os.path.join(work, 'item_ids.txt')  # copied after index/: replaces it
  for key in ('files', 'format', 'version'):
    manifest.pop(key)
  return release_format.publish(str(releases), version, parts, manifest)


# Loading.

def test_load_release_reads_every_part(retriever, release_dir):
  release = retriever.release
  with open(os.path.join(release_dir, release_format.MANIFEST)) as f:
    manifest = json.load(f)
  assert release.version == manifest['version']
  assert release.corpus_size == manifest['index']['corpus_size'] == len(
      release.item_embeddings)
  assert list(release.scenarios) == manifest['scenarios']
  assert release.snapshot and all('history_item_id' in v or 'user_id' in v
                                  for v in release.snapshot.values())
  # The snapshot is opened from the release's arrays and gives every user's tf.Example
  # values (the published tf.Examples, parsed independently here).
  from retrieval import user_snapshot
  assert isinstance(release.snapshot, user_snapshot.UserSnapshot)
  parsed = {}
  for record in example_files.records(os.path.join(
      release_dir, release_format.USER_SNAPSHOT_DIR, '*')):
    example = tf.train.Example.FromString(record).features.feature
    parsed[example['user_id'].bytes_list.value[0].decode()] = {
        name: [v.decode() for v in f.bytes_list.value] if f.HasField('bytes_list') else
        list(f.float_list.value) if f.HasField('float_list') else list(f.int64_list.value)
        for name, f in example.items()}
  assert sorted(parsed) == list(release.snapshot)
  for user, values in parsed.items():
    assert release.snapshot[user] == values, user


def test_releases_dir_and_latest_link_resolve_to_the_newest(release_dir, tmp_path):
  releases = tmp_path / 'releases'
  releases.mkdir()
  _copy(release_dir, releases / 'v2', 'v2')
  (releases / release_format.LATEST_FILE).write_text('v2\n')
  os.symlink('v2', releases / 'latest')
  assert load_release(str(releases), verify_checksums=False).version == 'v2'
  assert load_release(str(releases / 'latest'), verify_checksums=False).version == 'v2'


def test_half_written_release_is_refused(release_dir, tmp_path):
  half = tmp_path / 'half'
  shutil.copytree(release_dir, half)
  os.remove(half / release_format.MANIFEST)
  with pytest.raises(ReleaseLoadError, match='still being written'):
    load_release(str(half))


def test_damaged_release_is_refused_naming_the_file(release_dir, tmp_path):
  damaged = tmp_path / 'damaged'
  shutil.copytree(release_dir, damaged)
  with open(damaged / 'index' / 'item_ids.txt', 'a') as f:
    f.write('extra\n')
  os.remove(damaged / 'scenario_mapping.json')
  with pytest.raises(ReleaseLoadError, match=r'missing: scenario_mapping.json; '
                     r'checksum differs: index/item_ids.txt'):
    load_release(str(damaged))


def test_index_of_another_model_is_refused(release_dir, tmp_path):
  mismatched = _copy(release_dir, tmp_path / 'mismatched', 'v-mismatch')
  path = os.path.join(mismatched, release_format.MANIFEST)
  with open(path) as f:
    manifest = json.load(f)
  manifest['index']['model_fingerprint'] = 'f' * 64
  with open(path, 'w') as f:
    json.dump(manifest, f)
  with pytest.raises(ReleaseLoadError, match='the index was built by model ffffffffffff'):
    load_release(mismatched)


# The query library.

def test_known_user_gets_the_exact_top_k_by_dot_product(retriever):
  user = _known_user(retriever)
  scenario = retriever.release.scenarios[0]
  request = RetrievalRequest(user, scenario)
  [result] = retriever.retrieve([request], k=20, exact=True)
  assert result.known_user and len(result.items) == 20
  u = retriever.embed([retriever.check(request)])[0]
  scores = retriever.release.item_embeddings @ u
  best = np.argsort(-scores)[:20]
  np.testing.assert_allclose(result.scores, scores[best], rtol=1e-4, atol=1e-4)
  assert result.items == retriever.release.item_ids[best].tolist()
  assert result.scores == sorted(result.scores, reverse=True)


def test_scann_agrees_with_exact_search(retriever):
  requests = [RetrievalRequest(u, s) for u in sorted(retriever.release.snapshot)[:50]
              for s in retriever.release.scenarios[:2]]
  scann = retriever.retrieve(requests, k=20)
  exact = retriever.retrieve(requests, k=20, exact=True)
  overlap = np.mean([len(set(a.items) & set(e.items)) / 20 for a, e in zip(scann, exact)])
  assert overlap >= 0.9
  # More items than the index was built to return: still k, still best first.
  [many] = retriever.retrieve(requests[:1], k=min(300, retriever.release.corpus_size))
  assert len(many.items) == len(set(many.items)) == min(300, retriever.release.corpus_size)


def test_the_scenario_changes_the_user_embedding(retriever):
  user = _known_user(retriever)
  a, b = retriever.release.scenarios[:2]
  embeddings = retriever.embed([retriever.check(RetrievalRequest(user, a)),
                                retriever.check(RetrievalRequest(user, b))])
  assert not np.allclose(embeddings[0], embeddings[1])


def test_unknown_user_is_served_from_oov_and_the_request_features(retriever):
  scenario = retriever.release.scenarios[0]
  first, second = retriever.retrieve(
      [RetrievalRequest('never-seen-1', scenario), RetrievalRequest('never-seen-2',
                                                                     scenario)], k=10)
  assert not first.known_user and len(first.items) == 10
  assert first.items == second.items  # both are the OOV user with default features
  known = retriever.release.snapshot[_known_user(retriever)]
  history = known['history_item_id'][:3]
  with_history = retriever.retrieve([RetrievalRequest(
      'never-seen-1', scenario, {'history_item_id': history,
                                 'history_scenario': [scenario] * len(history)})], k=10)
  assert with_history[0].scores != first.scores


def test_excluded_items_are_skipped_and_k_remain(retriever):
  user, scenario = _known_user(retriever), retriever.release.scenarios[0]
  [full] = retriever.retrieve([RetrievalRequest(user, scenario)], k=13, exact=True)
  excluded = [full.items[0], full.items[1], full.items[4], 'no-such-item']
  for exact in (True, False):
    [result] = retriever.retrieve(
        [RetrievalRequest(user, scenario, exclude=tuple(excluded))], k=10, exact=exact)
    assert len(result.items) == 10 and not set(excluded) & set(result.items)
    if exact:  # the best 10 of the rest, in order
      assert result.items == [i for i in full.items if i not in excluded][:10]
  from serving.retriever import parse_request
  request = parse_request({'user_id': user, 'scenario': scenario, 'exclude': 'a|b'})
  assert request.exclude == ('a', 'b') and not request.features  # CSV cell: ids with |
  for exclude in ('', None):
    assert parse_request({'user_id': 'u', 'scenario': 's', 'exclude': exclude}).exclude == ()
  for bad in ({'a': 1}, [True], ['x'] * 1001):
    with pytest.raises(RequestError) as raised:
      parse_request({'user_id': 'u', 'scenario': 's', 'exclude': bad})
    assert raised.value.field == 'exclude'


@pytest.mark.parametrize('request_fields,k,field', [
    ({'user_id': '1', 'scenario': 'no-such-tab'}, 10, 'scenario'),
    ({'user_id': '1', 'scenario': '1'}, 0, 'k'),
    ({'user_id': '1', 'scenario': '1'}, 10 ** 7, 'k'),
    ({'user_id': '1'}, 10, 'scenario'),
    ({'user_id': '', 'scenario': '1'}, 10, 'user_id'),
    ({'user_id': '1', 'scenario': '1', 'features': {'height': 3}}, 10, 'features.height'),
    ({'user_id': '1', 'scenario': '1', 'features': {'history_item_id': 5}}, 10,
     'features.history_item_id'),
])
def test_bad_requests_name_the_field(retriever, request_fields, k, field):
  from serving.retriever import parse_request
  if 'scenario' in request_fields and request_fields['scenario'] == '1':
    request_fields = dict(request_fields, scenario=retriever.release.scenarios[0])
  with pytest.raises(RequestError) as raised:
    retriever.check_k(k)
    retriever.check(parse_request(request_fields))
  assert raised.value.field == field


def test_numeric_feature_must_be_a_number(retriever):
  numeric = [n for n, s in retriever.release.input_specs.items() if s.dtype.is_floating]
  assert numeric, 'the KuaiRand user features include numeric columns'
  with pytest.raises(RequestError, match=f'features.{numeric[0]}: must be a finite number'):
    retriever.check(RetrievalRequest('1', retriever.release.scenarios[0],
                                     {numeric[0]: 'lots'}))


# The command line.

def _cli(capsys, *argv):
  code = cli.main(list(argv))
  captured = capsys.readouterr()
  return code, captured.out, captured.err


def test_cli_single_query_prints_json(retriever, release_dir):
  user, scenario = _known_user(retriever), retriever.release.scenarios[1]
  out = subprocess.run(
      [sys.executable, '-m', 'serving', 'query', '--release', release_dir, '--user-id',
       user, '--scenario', scenario, '-k', '7'], cwd=REPO_ROOT, capture_output=True,
      text=True, timeout=300, env=dict(os.environ, PYTHONPATH=REPO_ROOT))
  assert out.returncode == 0, out.stderr
  answer = json.loads(out.stdout)
  assert answer['release'] == retriever.version and answer['known_user'] is True
  assert answer['user_id'] == user and answer['scenario'] == scenario
  assert len(answer['items']) == len(answer['scores']) == 7
  [expected] = retriever.retrieve([RetrievalRequest(user, scenario)], k=7)
  assert answer['items'] == expected.items


def test_cli_query_excludes_items(capsys, retriever, release_dir):
  user, scenario = _known_user(retriever), retriever.release.scenarios[0]
  [top] = retriever.retrieve([RetrievalRequest(user, scenario)], k=3)
  code, out, err = _cli(capsys, 'query', '--release', release_dir, '--user-id', user,
                        '--scenario', scenario, '-k', '3', '--exclude', top.items[0],
                        '--exclude', top.items[2], '--no-verify')
  assert code == 0, err
  items = json.loads(out)['items']
  assert len(items) == 3 and items[0] == top.items[1]
  assert not {top.items[0], top.items[2]} & set(items)


@pytest.mark.parametrize('extra,message', [
    (['--scenario', 'no-such-tab'], 'scenario: unknown scenario'),
    (['--scenario', 'S', '-k', '0'], 'k: must be an integer from 1 to'),
    (['--scenario', 'S', '--feature', 'nonsense'], "--feature: 'nonsense' must look like"),
])
def test_cli_bad_request_exits_2_naming_the_field(capsys, retriever, release_dir, extra,
                                                   message):
  extra = [retriever.release.scenarios[0] if a == 'S' else a for a in extra]
  code, out, err = _cli(capsys, 'query', '--release', release_dir, '--user-id', 'u',
                        *extra)
  assert code == 2 and not out and message in err


def test_cli_broken_release_exits_1(capsys, tmp_path):
  code, _, err = _cli(capsys, 'query', '--release', str(tmp_path), '--user-id', 'u',
                      '--scenario', '1')
  assert code == 1 and 'still being written' in err


def test_batch_answers_every_line_in_order_and_reports_bad_ones(capsys, retriever,
                                                                 release_dir, tmp_path):
  users = sorted(retriever.release.snapshot)[:3]
  s0, s1 = retriever.release.scenarios[:2]
  requests = tmp_path / 'requests.csv'
  requests.write_text('user_id,scenario\n'
                      f'{users[0]},{s0}\n'
                      f'{users[1]},no-such-tab\n'
                      f'new-user,{s1}\n'
                      f',{s0}\n'
                      f'{users[2]},{s1},extra\n'
                      f'{users[2]},{s1}\n')
  output = tmp_path / 'out.jsonl'
  code, _, err = _cli(capsys, 'query', '--release', release_dir, '--requests',
                      str(requests), '--output', str(output), '--k', '5')
  assert code == 2
  lines = [json.loads(line) for line in output.read_text().splitlines()]
  assert len(lines) == 6
  assert [line.get('user_id') for line in lines] == [users[0], users[1], 'new-user', '',
                                                     users[2], users[2]]
  assert [len(line['items']) for line in lines if 'items' in line] == [5, 5, 5]
  assert [line['line'] for line in lines if 'error' in line] == [3, 5, 6]
  assert 'scenario: unknown scenario' in lines[1]['error']
  assert 'user_id: must not be empty' in lines[3]['error']
  assert lines[2]['known_user'] is False and lines[0]['known_user'] is True
  for number in (3, 5, 6):
    assert f'line {number}: ' in err
  assert '6 requests' in err and '3 answered (1 unknown users), 3 bad lines' in err
  [direct] = retriever.retrieve([RetrievalRequest(users[0], s0)], k=5)
  assert lines[0]['items'] == direct.items and not os.path.exists(f'{output}.partial')


def test_batch_without_a_scenario_column_fails_and_keeps_the_old_output(
    capsys, release_dir, tmp_path):
  requests = tmp_path / 'requests.csv'
  requests.write_text('user_id,tab\n1,1\n')
  output = tmp_path / 'out.jsonl'
  output.write_text('earlier results\n')
  code, _, err = _cli(capsys, 'query', '--release', release_dir, '--requests',
                      str(requests), '--output', str(output))
  assert code == 2 and "scenario: " in err and "has no 'scenario' column" in err
  assert output.read_text() == 'earlier results\n'
  assert not os.path.exists(f'{output}.partial')


def test_batch_jsonl_with_features_and_invalid_json(capsys, retriever, release_dir,
                                                    tmp_path):
  s0 = retriever.release.scenarios[0]
  user = _known_user(retriever)
  requests = tmp_path / 'requests.jsonl'
  requests.write_text(json.dumps({'user_id': user, 'scenario': s0}) + '\n'
                      + '{not json\n\n'
                      + json.dumps({'user_id': 'x', 'scenario': s0,
                                    'features': {'history_item_id': ['1', '2']}}) + '\n')
  output = tmp_path / 'out.jsonl'
  code, _, err = _cli(capsys, 'query', '--release', release_dir, '--requests',
                      str(requests), '--output', str(output), '-k', '3', '--exact')
  lines = [json.loads(line) for line in output.read_text().splitlines()]
  assert code == 2 and len(lines) == 3
  assert lines[1] == {'line': 2, 'error': lines[1]['error']}
  assert 'line: is not valid JSON' in lines[1]['error'] and 'line 2: ' in err
  assert lines[2]['known_user'] is False and len(lines[2]['items']) == 3


# Two-stage recommendation (retrieval + the release's ranker).

def _example(values: dict) -> bytes:
  feature = {}
  for name, value in values.items():
    if value and isinstance(value[0], str):
      feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[v.encode() for v in value]))
    elif value and isinstance(value[0], float):
      feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=value))
    else:
      feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=value))
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _same_result(answer: dict, expected: dict) -> bool:
  """Equal items, weights and user; scores equal to float32 noise (batch sizes differ)."""
  close = lambda a, b: len(a) == len(b) and np.allclose(a, b, atol=1e-5)
  return (answer['items'] == expected['items'] and answer['weights'] == expected['weights']
          and answer['known_user'] == expected['known_user']
          and close(answer['scores'], expected['scores'])
          and close(answer['retrieval_scores'], expected['retrieval_scores'])
          and all(close(answer['probabilities'][t], expected['probabilities'][t])
                  for t in expected['probabilities']))


def test_recommend_is_retrieval_then_the_rankers_blend(recommender, release_dir):
  """Recomputed apart from the library: ScaNN's candidates minus the excluded items, scored
  by the ranker's tf.Example signature on the snapshot's user and the release's item
  features, ordered by the blend with the request's weight."""
  release = recommender.release
  user, scenario = _known_user(recommender.retriever), release.scenarios[0]
  retriever = recommender.retriever
  embedding = retriever.embed([retriever.check(RetrievalRequest(user, scenario))])
  indices, _ = retriever.search(embedding, 32)
  top = release.item_ids[indices[0]].tolist()
  exclude = [top[0], top[3]]
  kept = [item for item in top if item not in exclude][:30]
  logits = release.item_embeddings[[indices[0][top.index(item)] for item in kept]] @ (
      embedding[0])
  request = recommender_lib.parse_recommend_request(
      {'user_id': user, 'scenario': scenario, 'exclude': exclude,
       'weights': {'long_view': 0.5}})
  [result] = recommender.recommend([request], k=8, candidates=30)

  items = {}
  for record in example_files.records(os.path.join(release_dir, 'item_corpus', '*')):
    values = example_files.to_python(record)
    items[values['item_id'][0]] = values
  with open(os.path.join(release_dir, layout.RECOMMEND_FILE)) as f:
    blend = json.load(f)['blend']['default']
  assert blend == {'click': 1.0, 'long_view': 0.0, 'like': 0.0,  # the config's default
                   'retrieval': 1.0}
  ranker = tf.saved_model.load(os.path.join(release_dir, 'ranker'))
  out = ranker.signatures[layout.RANKER_EXAMPLES_SIGNATURE](examples=tf.constant([
      _example({**items[item], **release.snapshot[user], 'scenario': [scenario]})
      for item in kept]))
  probabilities = np.stack([out[t].numpy() for t in ('click', 'long_view', 'like')], 1)
  blended = probabilities @ np.array([1.0, 0.5, 0.0]) + logits
  order = np.argsort(-blended, kind='stable')[:8]
  assert result.items == [kept[i] for i in order]
  assert not set(exclude) & set(result.items)
  np.testing.assert_allclose(result.scores, blended[order], atol=2e-5)
  np.testing.assert_allclose(result.probabilities['like'], probabilities[order, 2],
                             atol=2e-5)
  assert result.weights == {'click': 1.0, 'long_view': 0.5, 'like': 0.0, 'retrieval': 1.0}
  np.testing.assert_allclose(result.retrieval_scores, logits[order], atol=1e-4)
  assert result.known_user is True and len(result.retrieval_scores) == 8


@pytest.mark.parametrize('raw,k,candidates,field', [
    ({'weights': {'share': 1}}, 5, 20, 'weights.share'),
    ({'weights': {'click': 11}}, 5, 20, 'weights.click'),
    ({'weights': {'click': 0, 'retrieval': 0}}, 5, 20, 'weights'),
    ({'weights': {'retrieval': 0}}, 5, 20, None),  # p(click) alone
    ({'exclude': 'x'}, 5, 20, None),  # a CSV cell: one id
    ({'exclude': {'a': 1}}, 5, 20, 'exclude'),
    ({}, 21, 20, 'k'),
    ({}, 5, 0, 'candidates'),
    ({}, 5, 100000, 'candidates'),
])
def test_recommend_bad_requests_name_the_field(recommender, raw, k, candidates, field):
  raw = {'user_id': 'u', 'scenario': recommender.release.scenarios[0], **raw}
  if field is None:
    [result] = recommender.recommend([recommender_lib.parse_recommend_request(raw)], k,
                                     candidates)
    assert 'x' not in result.items and len(result.items) == k
    assert result.scores == pytest.approx(sorted(result.scores, reverse=True))
    return
  with pytest.raises(RequestError) as error:
    recommender.recommend([recommender_lib.parse_recommend_request(raw)], k, candidates)
  assert error.value.field == field


def test_cli_recommend_one_and_a_batch(capsys, recommender, release_dir, tmp_path):
  user, (s0, s1) = _known_user(recommender.retriever), recommender.release.scenarios[:2]
  code, out, err = _cli(capsys, 'recommend', '--release', release_dir, '--user-id', user,
                        '--scenario', s1, '-k', '4', '--candidates', '50', '--weight',
                        'like=3', '--exclude', 'nope')
  assert code == 0, err
  answer = json.loads(out)
  [expected] = recommender.recommend([recommender_lib.parse_recommend_request(
      {'user_id': user, 'scenario': s1, 'weights': {'like': 3}})], k=4, candidates=50)
  assert answer['release'] == recommender.version and answer['candidates'] == 50
  assert answer['ranker'].startswith(f'{configs.RankerConfig().model}-')
  assert _same_result(answer, expected.to_json())

  requests = tmp_path / 'requests.csv'
  requests.write_text('user_id,scenario,exclude,weight.like\n'
                      f'{user},{s0},,\n'
                      f'{user},{s0},{expected.items[0]}|{expected.items[1]},3\n'
                      f'{user},{s0},,-1\n'
                      f'new-user,{s1},,\n')
  output = tmp_path / 'out.jsonl'
  code, _, err = _cli(capsys, 'recommend', '--release', release_dir, '--requests',
                      str(requests), '--output', str(output), '-k', '4')
  lines = [json.loads(line) for line in output.read_text().splitlines()]
  assert code == 2 and len(lines) == 4 and 'line 4: weights.like' in err
  assert lines[2] == {'line': 4, 'user_id': user, 'scenario': s0,
                      'error': lines[2]['error']}
  [first] = recommender.recommend([recommender_lib.parse_recommend_request(
      {'user_id': user, 'scenario': s0})], k=4)
  assert _same_result(lines[0], first.to_json())
  assert lines[1]['weights']['like'] == 3.0 and not set(expected.items[:2]) & set(
      lines[1]['items'])
  assert lines[3]['known_user'] is False and len(lines[3]['items']) == 4


def test_recommend_without_a_ranker_is_a_clear_error(capsys, release_dir, tmp_path):
  path = _without_ranker(release_dir, tmp_path / 'releases', 'retrieval-only')
  code, out, err = _cli(capsys, 'recommend', '--release', path, '--user-id', 'u',
                        '--scenario', '1')
  assert code == 1 and not out
  assert 'has no ranker (the pipeline trained no ranker)' in err
  code, out, _ = _cli(capsys, 'query', '--release', path, '--user-id', 'u', '--scenario',
                      '1', '-k', '3')
  assert code == 0 and len(json.loads(out)['items']) == 3


# The HTTP service.

def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


ADMIN_TOKEN = 'test-admin-token'


def _call(base, path, body=None, raw=None, headers=None, full=False):
  """(status, JSON answer), or with full=True (status, answer, response headers).
  Admin paths carry the service's bearer token unless headers say otherwise."""
  data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
  if headers is None:
    headers = {'Content-Type': 'application/json'}
    if path.startswith('/admin/'):
      headers['Authorization'] = f'Bearer {ADMIN_TOKEN}'
  request = urllib.request.Request(base + path, data=data, headers=headers)
  try:
    with urllib.request.urlopen(request, timeout=300) as response:
      status, text, head = response.status, response.read(), response.headers
  except urllib.error.HTTPError as e:
    status, text, head = e.code, e.read(), e.headers
  answer = json.loads(text or b'null')
  return (status, answer, head) if full else (status, answer)


@pytest.fixture(scope='module')
def service(release_dir, tmp_path_factory):
  """`python -m serving serve` on a loopback port, started on a `latest` link."""
  releases = tmp_path_factory.mktemp('served')
  _copy(release_dir, releases / 'v1', 'v1')
  os.symlink('v1', releases / 'latest')
  port = _free_port()
  # The access log goes to a file: a pipe nobody reads would fill and block the service.
  log = tmp_path_factory.mktemp('service_log') / 'service.log'
  with open(log, 'w') as out:
    process = subprocess.Popen(
        [sys.executable, '-m', 'serving', 'serve', '--release', str(releases / 'latest'),
         '--port', str(port), '--max-requests', '3', '--max-k', '50'],
        cwd=REPO_ROOT, env=dict(os.environ, PYTHONPATH=REPO_ROOT,
                                DSMOE_ADMIN_TOKEN=ADMIN_TOKEN),
        stdout=out, stderr=subprocess.STDOUT, text=True)
  base = f'http://127.0.0.1:{port}'
  deadline = time.time() + 180
  while time.time() < deadline:
    try:
      if _call(base, '/healthz')[0] == 200:
        break
    except (urllib.error.URLError, ConnectionError):
      assert process.poll() is None, log.read_text()
      time.sleep(0.5)
  else:
    process.kill()
    pytest.fail('the service did not start: ' + log.read_text())
  yield base, process, releases, log
  process.terminate()
  try:
    process.wait(timeout=60)
  except subprocess.TimeoutExpired:
    process.kill()
    raise


def test_service_health_release_and_docs(service, retriever):
  base = service[0]
  assert _call(base, '/healthz') == (200, {'status': 'ok', 'release': 'v1'})
  status, info = _call(base, '/v1/release')
  assert status == 200 and info['version'] == 'v1'
  assert info['corpus_size'] == retriever.release.corpus_size
  assert info['scenarios'] == list(retriever.release.scenarios)
  assert set(info['recall']) == {'model', 'popular', 'popular_per_scenario'}
  status, schema = _call(base, '/openapi.json')
  assert status == 200 and '/v1/retrieve' in schema['paths']
  with urllib.request.urlopen(base + '/docs', timeout=30) as response:
    assert response.status == 200 and b'swagger' in response.read().lower()


def test_service_retrieves_one_and_many(service, retriever):
  base = service[0]
  user, (s0, s1) = _known_user(retriever), retriever.release.scenarios[:2]
  status, answer = _call(base, '/v1/retrieve', {'user_id': user, 'scenario': s0, 'k': 5})
  assert status == 200 and answer['release'] == 'v1'
  [expected] = retriever.retrieve([RetrievalRequest(user, s0)], k=5)
  assert answer['results'] == [expected.to_json()]
  status, answer = _call(base, '/v1/retrieve', {'requests': [
      {'user_id': user, 'scenario': s1}, {'user_id': 42, 'scenario': s0}], 'k': 4,
      'exact': True})
  assert status == 200 and [r['known_user'] for r in answer['results']] == [True, False]
  assert [len(r['items']) for r in answer['results']] == [4, 4]


@pytest.mark.parametrize('body,field', [
    ({'user_id': 'u', 'scenario': 'no-such-tab'}, 'scenario'),
    ({'user_id': 'u', 'scenario': 'S', 'k': 51}, 'k'),
    ({'user_id': 'u', 'scenario': 'S', 'k': 0}, 'k'),
    ({'scenario': 'S'}, 'user_id'),
    ({'requests': [{'user_id': 'u', 'scenario': 'S'}] * 4}, 'requests'),
    ({'requests': [{'user_id': 'u', 'scenario': 'S'}, {'user_id': 'u', 'scenario': 'x'}]},
     'requests.1.scenario'),
    ({'requests': [{'user_id': 'u'}]}, 'requests.0.scenario'),
    ({'user_id': 'u', 'scenario': 'S', 'features': {'nope': 1}}, 'features.nope'),
    ({'user_id': 'u', 'scenario': 'S', 'k': 'ten'}, 'k'),
])
def test_service_bad_requests_are_400_naming_the_field(service, retriever, body, field):
  base = service[0]
  s0 = retriever.release.scenarios[0]
  body = json.loads(json.dumps(body).replace('"S"', json.dumps(s0)))
  status, answer = _call(base, '/v1/retrieve', body)
  assert status == 400 and answer['field'] == field, answer


def test_service_malformed_and_oversized_bodies(service):
  base = service[0]
  status, answer = _call(base, '/v1/retrieve', raw=b'{"user_id": ')
  assert status == 400 and 'error' in answer
  # A body over the limit is refused from its Content-Length, before it is read.
  host, port = base.rsplit('/', 1)[1].split(':')
  connection = http.client.HTTPConnection(host, int(port), timeout=30)
  connection.putrequest('POST', '/v1/retrieve')
  connection.putheader('Content-Type', 'application/json')
  connection.putheader('Content-Length', str(5 << 20))
  connection.endheaders()
  response = connection.getresponse()
  assert response.status == 413 and json.loads(response.read())['field'] == 'body'


@pytest.mark.parametrize('content_type', [None, 'application/x-www-form-urlencoded',
                                          'text/plain'])
def test_service_reads_json_whatever_the_content_type(service, retriever, content_type):
  """curl -d sends a form content type; a body that is JSON is read as JSON."""
  base = service[0]
  user, s0 = _known_user(retriever), retriever.release.scenarios[0]
  headers = {} if content_type is None else {'Content-Type': content_type}
  body = json.dumps({'user_id': user, 'scenario': s0, 'k': 3}).encode()
  status, answer = _call(base, '/v1/retrieve', raw=body, headers=headers)
  assert status == 200 and len(answer['results'][0]['items']) == 3, answer
  status, answer = _call(base, '/v1/retrieve', raw=b'user_id=5&scenario=1',
                         headers=headers)
  assert status == 400 and answer['field'] == 'body', answer  # a real form: not JSON


def _metric(text: str, name: str, **labels) -> float:
  """The value of one sample of a Prometheus text exposition (0 when absent)."""
  for row in text.splitlines():
    match = re.fullmatch(r'(\w+)(?:\{(.*)\})? (\S+)', row)
    if match and match.group(1) == name and dict(
        re.findall(r'(\w+)="([^"]*)"', match.group(2) or '')) == labels:
      return float(match.group(3))
  return 0.0


def _metrics(base) -> str:
  with urllib.request.urlopen(base + '/metrics', timeout=30) as response:
    assert response.headers['Content-Type'].startswith('text/plain')
    return response.read().decode()


def test_service_operations_readiness_metrics_request_ids_access_log(service, retriever):
  base, log = service[0], service[3]
  assert _call(base, '/readyz') == (200, {'status': 'ready', 'release': 'v1',
                                          'ranker': _ranker_id(retriever)})
  before = _metrics(base)
  user, s0 = _known_user(retriever), retriever.release.scenarios[0]
  status, _, headers = _call(base, '/v1/retrieve', {'user_id': user, 'scenario': s0},
                             headers={'Content-Type': 'application/json',
                                      'X-Request-ID': 'req-42'}, full=True)
  assert status == 200 and headers['X-Request-ID'] == 'req-42'
  status, _, headers = _call(base, '/v1/retrieve', {'user_id': user, 'scenario': 'nope'},
                             full=True)
  generated = headers['X-Request-ID']
  assert status == 400 and len(generated) == 32 and int(generated, 16) >= 0
  after = _metrics(base)
  for code, delta in (('200', 1), ('400', 1)):
    assert _metric(after, 'dsmoe_requests_total', endpoint='/v1/retrieve', status=code) - \
        _metric(before, 'dsmoe_requests_total', endpoint='/v1/retrieve', status=code) == delta
  assert _metric(after, 'dsmoe_request_seconds_count', endpoint='/v1/retrieve') > 0
  assert _metric(after, 'dsmoe_release_info', version='v1',
                 ranker=_ranker_id(retriever)) == 1
  assert _metric(after, 'dsmoe_batch_size_sum', stage='retrieve') - \
      _metric(before, 'dsmoe_batch_size_sum', stage='retrieve') == 1  # the 400 never ran
  _call(base, '/no/such/path')
  assert 'endpoint="other"' in _metrics(base)
  deadline = time.time() + 10
  while True:
    lines = [json.loads(l) for l in log.read_text().splitlines() if l.startswith('{')]
    mine = [l for l in lines if l['request_id'] in ('req-42', generated)]
    if len(mine) == 2 or time.time() > deadline:
      break
    time.sleep(0.2)
  assert [(l['path'], l['status'], l['release']) for l in mine] == [
      ('/v1/retrieve', 200, 'v1'), ('/v1/retrieve', 400, 'v1')]
  assert all(l['ms'] > 0 and l['method'] == 'POST' for l in mine)


def _ranker_id(retriever):
  return recommender_lib.Recommender(retriever.release).ranker_id


def test_service_admin_needs_the_bearer_token(service):
  base = service[0]
  for headers in ({'Content-Type': 'application/json'},
                  {'Content-Type': 'application/json', 'Authorization': 'Bearer wrong'},
                  {'Content-Type': 'application/json', 'Authorization': ADMIN_TOKEN}):
    status, answer = _call(base, '/admin/reload', {}, headers=headers)
    assert status == 401 and answer['field'] == 'authorization', answer
  assert _call(base, '/healthz')[1]['release'] == 'v1'  # nothing was reloaded


def test_service_refuses_admin_beyond_loopback_without_a_token(capsys, monkeypatch):
  monkeypatch.delenv('DSMOE_ADMIN_TOKEN', raising=False)
  code, _, err = _cli(capsys, 'serve', '--release', '/nonexistent', '--host', '0.0.0.0')
  assert code == 2 and 'DSMOE_ADMIN_TOKEN' in err and '--no-admin' in err
  from serving import service as service_lib
  assert service_lib.check_admin('127.0.0.1', True, None) == ''
  assert service_lib.check_admin('::1', True, None) == ''
  assert service_lib.check_admin('0.0.0.0', True, 't') == ''
  assert service_lib.check_admin('0.0.0.0', False, None) == ''


def test_concurrent_requests_are_answered_as_one_by_one(service, retriever):
  """Micro-batched answers (other requests' k and exclusions in the same model call)
  equal the library's answer to each request alone. Exact search: ScaNN's batched search
  can order near-ties of a query differently depending on the other queries of its batch
  (seen on the fixture's barely trained model), so the split, k and exclusions are
  checked where the answer is unique."""
  base = service[0]
  users = sorted(retriever.release.snapshot)[:6]
  scenarios = retriever.release.scenarios
  bodies = []
  for i, user in enumerate(users * 2):
    body = {'user_id': user, 'scenario': scenarios[i % len(scenarios)], 'k': 3 + i % 5,
            'exact': True}
    if i % 3 == 0:
      [top] = retriever.retrieve([RetrievalRequest(user, body['scenario'])], k=2)
      body['exclude'] = top.items
    bodies.append(body)
  before = _metrics(base)
  answers = [None] * len(bodies)
  start = threading.Barrier(len(bodies))

  def client(i):
    start.wait()
    answers[i] = _call(base, '/v1/retrieve', bodies[i])

  threads = [threading.Thread(target=client, args=(i,)) for i in range(len(bodies))]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  for body, (status, answer) in zip(bodies, answers):
    assert status == 200, answer
    [expected] = retriever.retrieve([RetrievalRequest(
        body['user_id'], body['scenario'], exclude=tuple(body.get('exclude', ())))],
                                    k=body['k'], exact=True)
    [result] = answer['results']
    assert result['items'] == expected.items
    np.testing.assert_allclose(result['scores'], expected.scores, atol=1e-5)
  after = _metrics(base)
  calls = _metric(after, 'dsmoe_batch_size_count', stage='retrieve') - _metric(
      before, 'dsmoe_batch_size_count', stage='retrieve')
  assert _metric(after, 'dsmoe_batch_size_sum', stage='retrieve') - _metric(
      before, 'dsmoe_batch_size_sum', stage='retrieve') == len(bodies)
  assert 1 <= calls <= len(bodies)


def test_hot_swap_keeps_serving_and_refuses_a_broken_release(service, retriever,
                                                             release_dir):
  base, process, releases = service[:3]
  user, s0 = _known_user(retriever), retriever.release.scenarios[0]
  _copy(release_dir, releases / 'v2', 'v2')
  broken = _copy(release_dir, releases / 'broken', 'broken')
  os.remove(os.path.join(broken, release_format.MANIFEST))

  statuses, versions, stop = [], set(), threading.Event()

  def client():
    while not stop.is_set():
      status, answer = _call(base, '/v1/retrieve', {'user_id': user, 'scenario': s0})
      statuses.append(status)
      versions.add(answer.get('release'))
      time.sleep(0.02)

  clients = [threading.Thread(target=client) for _ in range(4)]
  for thread in clients:
    thread.start()
  time.sleep(1.0)
  assert _call(base, '/admin/reload', {'release': str(releases / 'v2')}) == (
      200, {'previous': 'v1', 'release': 'v2'})
  time.sleep(1.0)
  status, answer = _call(base, '/admin/reload', {'release': broken})
  assert status == 409 and 'still being written' in answer['error']
  assert answer['serving'] == 'v2'
  time.sleep(0.5)
  stop.set()
  for thread in clients:
    thread.join()
  assert statuses and set(statuses) == {200}  # nothing dropped during the swaps
  assert versions == {'v1', 'v2'}
  assert _call(base, '/healthz')[1]['release'] == 'v2'

  # SIGHUP reloads the start path (the `latest` link), now pointing at v3.
  _copy(release_dir, releases / 'v3', 'v3')
  os.symlink('v3', releases / 'latest.new')
  os.replace(releases / 'latest.new', releases / 'latest')
  process.send_signal(signal.SIGHUP)
  deadline = time.time() + 120
  while _call(base, '/healthz')[1]['release'] != 'v3':
    assert time.time() < deadline, 'SIGHUP did not reload'
    time.sleep(0.5)


def test_service_recommends_as_the_library_does(service, recommender):
  base = service[0]
  user, (s0, s1) = _known_user(recommender.retriever), recommender.release.scenarios[:2]
  status, answer = _call(base, '/v1/recommend', {'user_id': user, 'scenario': s0, 'k': 5,
                                                 'exclude': ['1'], 'weights': {'like': 1}})
  assert status == 200, answer
  [expected] = recommender.recommend([recommender_lib.parse_recommend_request(
      {'user_id': user, 'scenario': s0, 'exclude': ['1'], 'weights': {'like': 1}})], k=5)
  assert answer['candidates'] == 200 and answer['ranker'] == recommender.ranker_id
  assert _same_result(answer['results'][0], expected.to_json())
  status, answer = _call(base, '/v1/recommend', {'requests': [
      {'user_id': user, 'scenario': s1}, {'user_id': 'new', 'scenario': s0}], 'k': 3,
      'candidates': 20})
  assert status == 200 and [len(r['items']) for r in answer['results']] == [3, 3]
  assert answer['candidates'] == 20
  status, info = _call(base, '/v1/release')
  assert info['recommend']['blend']['default']['click'] == 1.0
  assert info['ranker']['included'] and info['ranker']['model'] == configs.RankerConfig().model


@pytest.mark.parametrize('body,field', [
    ({'user_id': 'u', 'scenario': 'S', 'k': 11, 'candidates': 10}, 'k'),
    ({'user_id': 'u', 'scenario': 'S', 'candidates': 0}, 'candidates'),
    ({'requests': [{'user_id': 'u', 'scenario': 'S', 'weights': {'nope': 1}}]},
     'requests.0.weights.nope'),
    ({'user_id': 'u', 'scenario': 'S', 'exclude': 'one'}, 'exclude'),
    ({'requests': [{'user_id': 'u', 'scenario': 'S'}] * 4}, 'requests'),
])
def test_service_recommend_bad_requests_are_400(service, recommender, body, field):
  base = service[0]
  body = json.loads(json.dumps(body).replace('"S"', json.dumps(
      recommender.release.scenarios[0])))
  status, answer = _call(base, '/v1/recommend', body)
  assert status == 400 and answer['field'] == field, answer


def test_swap_under_recommend_load_answers_each_request_from_one_release(
    service, recommender, release_dir, tmp_path):
  """Clients recommend while the service swaps between two releases whose index and
  ranker both differ; every answer must be exactly its release's (a mix of one release's
  retriever and the other's ranker gives other answers, checked below). Then a release
  without a ranker: recommend is a 409 naming the release, retrieve still answers."""
  base, _, releases = service[:3]
  assert _call(base, '/healthz')[1]['release'] == 'v3'
  other = _perturbed(release_dir, releases, 'v4', tmp_path)
  users = sorted(recommender.release.snapshot)[:3]
  scenario = recommender.release.scenarios[0]
  bodies = [{'user_id': u, 'scenario': scenario, 'k': 5} for u in users]
  requests = [recommender_lib.parse_recommend_request(b) for b in bodies]
  served = {'v3': recommender, 'v4': recommender_lib.Recommender(load_release(other))}
  expected = {version: [r.to_json() for r in current.recommend(requests, 5)]
              for version, current in served.items()}
  # v3's retriever (index, item rows) with v4's ranker: what a torn swap would answer.
  mixed = recommender_lib.Recommender(dataclasses.replace(
      served['v3'].release, ranker=served['v4'].release.ranker))
  for a, b, m in zip(expected['v3'], expected['v4'], mixed.recommend(requests, 5)):
    assert not _same_result(a, b) and not _same_result(m.to_json(), a)
    assert not _same_result(m.to_json(), b)

  answers, stop = [], threading.Event()

  def client(body):
    while not stop.is_set():
      answers.append((body['user_id'], _call(base, '/v1/recommend', body)))

  clients = [threading.Thread(target=client, args=(b,), daemon=True) for b in bodies * 2]
  for thread in clients:
    thread.start()
  try:
    for version in ('v4', 'v3', 'v4'):
      time.sleep(1.0)
      assert _call(base, '/admin/reload', {'release': str(releases / version)})[0] == 200
    time.sleep(1.0)
  finally:
    stop.set()
    for thread in clients:
      thread.join()
  seen = set()
  for user, (status, answer) in answers:
    assert status == 200, answer
    seen.add(answer['release'])
    [result] = answer['results']
    assert _same_result(result, expected[answer['release']][users.index(user)]), (
        answer['release'], user)
  assert seen == {'v3', 'v4'} and len(answers) > 20

  retrieval_only = _without_ranker(release_dir, releases, 'v5')
  assert _call(base, '/admin/reload', {'release': retrieval_only})[0] == 200
  status, answer = _call(base, '/v1/recommend', bodies[0])
  assert status == 409 and answer['field'] == 'release'
  assert 'release v5 has no ranker' in answer['error']
  assert _call(base, '/v1/retrieve', {'user_id': users[0], 'scenario': scenario})[0] == 200


def test_sigterm_drains_the_request_in_flight(service, retriever):
  """The last test of the service: SIGTERM while a request is half sent. The service stops
  accepting connections, answers that request, and exits (uvicorn re-raises the signal
  once it has shut down, so the status is the signal's)."""
  base, process, _, log = service
  user, s0 = _known_user(retriever), retriever.release.scenarios[0]
  body = json.dumps({'user_id': user, 'scenario': s0, 'k': 3}).encode()
  host, port = base.rsplit('/', 1)[1].split(':')
  connection = http.client.HTTPConnection(host, int(port), timeout=60)
  connection.putrequest('POST', '/v1/retrieve')
  connection.putheader('Content-Type', 'application/json')
  connection.putheader('Content-Length', str(len(body)))
  connection.endheaders()
  connection.send(body[:10])  # in flight: the service has the headers, not the body
  time.sleep(0.5)
  process.send_signal(signal.SIGTERM)
  time.sleep(1.0)
  assert process.poll() is None  # still draining: waiting for the body
  with pytest.raises(OSError):  # no new connections
    socket.create_connection((host, int(port)), timeout=5).close()
  connection.send(body[10:])
  response = connection.getresponse()
  assert response.status == 200
  assert json.loads(response.read())['results'][0]['user_id'] == user
  assert process.wait(timeout=60) in (0, -signal.SIGTERM)
  assert 'draining' in log.read_text() and 'Finished server process' in log.read_text()
