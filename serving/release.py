"""Loading a release directory (components/release_pusher/release.py) for serving.

A release is served only when it is whole and consistent:
  - manifest.json exists (it is written last, so a release without it is half-written);
  - every file listed in the manifest is there with its checksum, and nothing is missing;
  - the index was built by the model whose towers are in the release (the fingerprints
    the Pusher recorded; the checksums vouch that the files are the ones it hashed);
  - the index has as many ids as embeddings, and the corpus size the manifest states;
  - with a ranker (manifest ranker.included): its SavedModel, recommend.json for its tasks,
    and the item corpus with the features of every indexed item.
Anything else raises ReleaseLoadError with what is wrong and what to do.

`path` may be a release directory, the `latest` symlink, or a releases directory (its
LATEST file names the newest release).
"""

import dataclasses
import json
import os
from typing import Any, Mapping, Optional

import numpy as np
import tensorflow as tf

from core import examples
from core import feature_names as fnames
from core import layout
from core import release_format
from core import scenario_mapping
from ranking import candidates
from retrieval import scann_index
from retrieval import user_snapshot


class ReleaseLoadError(Exception):
  """The directory is not a complete, consistent release."""


@dataclasses.dataclass
class Release:
  """Everything a query needs, loaded in memory."""
  path: str
  manifest: dict
  scenarios: tuple[str, ...]  # raw scenario values, in index order
  user_signature: Any  # raw user features -> {'embedding': [B, d]}
  input_specs: dict  # raw input name -> tf.TensorSpec of user_signature
  searcher: Any  # ScaNN searcher over item_embeddings
  item_ids: np.ndarray  # [N] str
  item_embeddings: np.ndarray  # [N, d] float32
  reorder_candidates: int
  # user id -> {raw feature: list of values} as of the data cutoff (a UserSnapshot over
  # the release's arrays, or a dict parsed from its tf.Examples for older releases)
  snapshot: Mapping[str, dict]
  saved_model: Any = None  # the user tower SavedModel (keeps its resources alive)
  # The ranking stage: None when the release has no ranker (`no_ranker` says why).
  ranker: Optional[candidates.CandidateRanker] = None
  item_rows: Optional[np.ndarray] = None  # [N] ranker item-table row of each index item
  recommend: Optional[dict] = None  # recommend.json: tasks, blend, candidates, bounds
  no_ranker: str = ''

  @property
  def version(self) -> str:
    return self.manifest['version']

  @property
  def corpus_size(self) -> int:
    return len(self.item_ids)


def resolve(path: str) -> str:
  """The release directory that `path` (release, `latest` link, releases dir) means."""
  path = os.path.realpath(path)
  if not os.path.isdir(path):
    raise ReleaseLoadError(f'{path} does not exist or is not a directory; pass a release '
                           'directory such as outputs/releases/latest')
  if not os.path.exists(os.path.join(path, release_format.MANIFEST)):
    return release_format.latest_release(path) or path
  return path


def _check_files(path: str, manifest: dict) -> None:
  listed = manifest.get('files') or {}
  actual = layout.file_checksums(path)
  actual.pop(release_format.MANIFEST, None)
  missing = sorted(set(listed) - set(actual))
  changed = sorted(name for name in listed if name in actual and actual[name] != listed[name])
  if missing or changed:
    problems = ([f'missing: {", ".join(missing[:5])}'] if missing else []) + (
        [f'checksum differs: {", ".join(changed[:5])}'] if changed else [])
    raise ReleaseLoadError(f'release {path} is damaged ({"; ".join(problems)}); '
                           'republish it or serve another release')


def _read_snapshot(path: str) -> Mapping[str, dict]:
  """user id -> {feature: list of str or float}: the memory-mapped arrays, or for a
  release from before them, its tf.Examples parsed."""
  arrays = os.path.join(path, release_format.USER_SNAPSHOT_ARRAYS_DIR)
  if os.path.isdir(arrays):
    return user_snapshot.UserSnapshot.open(arrays)
  users = {}
  for record in examples.records(os.path.join(path, release_format.USER_SNAPSHOT_DIR, '*')):
    values = examples.to_python(record)
    users[values[fnames.USER_ID][0]] = values
  return users


def load_release(path: str, verify_checksums: bool = True, ranker: bool = True) -> Release:
  """Loads and checks a release; ReleaseLoadError says what is wrong. ranker=False leaves
  the ranking stage out (retrieval only: a faster start; `no_ranker` says so)."""
  path = resolve(path)
  manifest_path = os.path.join(path, release_format.MANIFEST)
  if not os.path.exists(manifest_path):
    raise ReleaseLoadError(
        f'{path} has no {release_format.MANIFEST}: it is not a release or it is still being '
        'written (the manifest is written last); wait for the pipeline or pass a finished '
        'release')
  try:
    with open(manifest_path, encoding='utf-8') as f:
      manifest = json.load(f)
  except (OSError, ValueError) as e:
    raise ReleaseLoadError(f'{manifest_path} cannot be read: {e}') from None
  if manifest.get('format') != release_format.FORMAT_VERSION:
    raise ReleaseLoadError(f'{path}: release format {manifest.get("format")!r}, this '
                           f'server reads format {release_format.FORMAT_VERSION}')
  if verify_checksums:
    _check_files(path, manifest)
  if manifest['index']['model_fingerprint'] != manifest['model_fingerprint']:
    raise ReleaseLoadError(
        f'release {path}: the index was built by model '
        f'{manifest["index"]["model_fingerprint"][:12]}, the towers are model '
        f'{manifest["model_fingerprint"][:12]}; rebuild the index from this model')
  index_dir = os.path.join(path, release_format.INDEX_DIR)
  with open(os.path.join(index_dir, layout.INDEX_MANIFEST_FILE), encoding='utf-8') as f:
    index_manifest = json.load(f)
  if index_manifest['user_tower_fingerprint'] != manifest['user_tower_fingerprint']:
    raise ReleaseLoadError(f'release {path}: index/{layout.INDEX_MANIFEST_FILE} belongs to '
                           'another user tower; rebuild the index from this model')
  searcher, item_ids, embeddings = scann_index.load(index_dir)
  if not len(item_ids) == len(embeddings) == manifest['index']['corpus_size']:
    raise ReleaseLoadError(
        f'release {path}: {len(item_ids)} item ids, {len(embeddings)} embeddings, manifest '
        f'says {manifest["index"]["corpus_size"]} items; republish the release')
  user_tower = tf.saved_model.load(os.path.join(path, layout.USER_TOWER_DIR))
  signature = user_tower.signatures[layout.USER_SIGNATURE]
  mapping = scenario_mapping.ScenarioMapping.load(path)
  ranking = (_load_ranker(path, manifest, item_ids) if ranker else
             {'no_ranker': 'loaded for retrieval only (load_release(ranker=False))'})
  return Release(
      path=path, manifest=manifest, scenarios=mapping.values, user_signature=signature,
      input_specs=dict(signature.structured_input_signature[1]), searcher=searcher,
      item_ids=item_ids, item_embeddings=embeddings,
      reorder_candidates=index_manifest['parameters']['reorder_candidates'],
      snapshot=_read_snapshot(path),
      saved_model=user_tower, **ranking)


def _load_ranker(path: str, manifest: dict, item_ids: np.ndarray) -> dict:
  """The Release fields of the ranking stage (ranker, item_rows, recommend, no_ranker)."""
  entry = manifest.get('ranker') or {}
  if not entry.get('included'):
    return {'no_ranker': entry.get('reason') or 'the release was made without a ranker'}
  files = {name: os.path.join(path, name) for name in (
      release_format.RANKER_DIR, layout.RECOMMEND_FILE, release_format.ITEM_CORPUS_DIR)}
  missing = [name for name, file in files.items() if not os.path.exists(file)]
  if missing:  # a release from before two-stage serving (checksums catch a damaged one)
    return {'no_ranker': f'the release has a ranker but not {" or ".join(missing)}, which '
                         'two-stage serving needs; republish it with this version'}
  with open(files[layout.RECOMMEND_FILE], encoding='utf-8') as f:
    recommend = json.load(f)
  ranker = candidates.CandidateRanker(
      files[release_format.RANKER_DIR],
      examples.records(os.path.join(files[release_format.ITEM_CORPUS_DIR], '*')))
  if tuple(recommend['tasks']) != ranker.tasks:
    raise ReleaseLoadError(f'release {path}: {layout.RECOMMEND_FILE} blends tasks '
                           f'{recommend["tasks"]}, the ranker predicts {list(ranker.tasks)}; '
                           'republish the release')
  unknown = sorted(set(item_ids.tolist()) - set(ranker.items.row))
  if unknown:
    raise ReleaseLoadError(f'release {path}: {len(unknown)} indexed items (e.g. '
                           f'{unknown[0]}) have no features in '
                           f'{release_format.ITEM_CORPUS_DIR}/; republish the release')
  return {'ranker': ranker, 'item_rows': ranker.items.rows(item_ids), 'recommend': recommend}
