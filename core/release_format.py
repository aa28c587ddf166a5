"""The release format: one self-contained, versioned directory that serving loads.

    <releases>/<version>/
      manifest.json          written last: version, fingerprints, which data the served
                             model saw, test metrics with intervals, file checksums
      user_tower/            SavedModel, raw features -> user embedding (models/export.py)
      item_tower/            SavedModel, raw item features -> item embedding
      feature_space.json     the model-input contract
      warm_start/            the towers' weights and vocabularies (models/warm_start.py):
                             what a refresh warm-starts the student from
      teacher/warm_start/    with distillation: the teacher's weights and vocabularies,
                             what a refresh warm-starts the teacher from
      index/                 ScaNN searcher, item ids, item embeddings, index_manifest.json
      retrieval_model/       TFRS ScaNN SavedModel: raw user features -> top-K ids, scores
      scenario_mapping.json  raw scenario value -> index
      training_summary.json  how the served model was trained (epochs, data)
      user_snapshot/         tf.Examples: every user's features and history as of the last
                             event of the logs
      user_snapshot_arrays/  the same as memory-mapped .npy arrays (retrieval/
                             user_snapshot.py), which serving opens instead of parsing
      item_state/            tf.Examples: every item's counts as of the last event
                             (ingestion/records.ItemState); with user_snapshot/, what
                             the next day is ingested from (ingestion/ingest.PreviousDays)
      evaluation/            the test evaluation of the same model trained on the train
                             window: metrics.json, recall.png, summary.txt
      ranker/                only with a blessed ranker: SavedModel from raw features, one
                             probability per task (layout.RANKER_SIGNATURE), tasks.json,
                             feature_space.json, training_summary.json
      ranker_evaluation/     with it, its test evaluation: ranking_metrics.json (AUC, GAUC
                             per scenario and task with intervals), ranking_summary.md,
                             summary.txt. A ranker that is not blessed leaves the latest
                             release's ranker in place (manifest: ranker.carried_from)
      item_corpus/           with a ranker: tf.Examples of every item's features as of the
                             last event (the ranked candidates' item inputs)
      recommend.json         with a ranker: the two-stage settings (tasks, blend weights
                             per scenario, candidates, bounds; core/config.RecommendConfig)
    <releases>/latest        symlink to the newest version (local file systems)
    <releases>/LATEST        the newest version's name (every file system)

On a local file system the release is assembled in a hidden directory and renamed into
place, so a reader never sees half of one; elsewhere (gs://) the manifest is written last
and a release without a manifest is incomplete.
"""

import datetime
import json
import os
from typing import Optional

import tensorflow as tf

from core import errors
from core import layout

MANIFEST = 'manifest.json'
LATEST_LINK = 'latest'
LATEST_FILE = 'LATEST'
FORMAT_VERSION = 1
# Directories of a release besides the artifacts' own names (core/layout.py): the user
# tower, item tower, feature space, training summary, retrieval model and scenario
# mapping keep the names they have in their artifacts.
INDEX_DIR = 'index'  # the index artifact's files (layout.INDEX_FILES)
USER_SNAPSHOT_DIR = 'user_snapshot'
USER_SNAPSHOT_ARRAYS_DIR = 'user_snapshot_arrays'
ITEM_STATE_DIR = 'item_state'
EVALUATION_DIR = 'evaluation'
RANKER_DIR = 'ranker'
RANKER_EVALUATION_DIR = 'ranker_evaluation'
ITEM_CORPUS_DIR = 'item_corpus'
TEACHER_DIR = 'teacher'  # the teacher's layout.WARM_START_DIR under it


class ReleaseError(errors.InputError):
  """The parts of a release do not belong together."""


def copy_tree(source: str, destination: str) -> None:
  for root, _, files in tf.io.gfile.walk(source):
    target = os.path.join(destination, os.path.relpath(root, source))
    tf.io.gfile.makedirs(target)
    for name in files:
      tf.io.gfile.copy(os.path.join(root, name), os.path.join(target, name), overwrite=True)


def new_version(model_fingerprint: str, now: Optional[datetime.datetime] = None) -> str:
  now = now or datetime.datetime.now(datetime.timezone.utc)
  return f'{now:%Y%m%dT%H%M%SZ}-{model_fingerprint[:8]}'


def publish(releases_dir: str, version: str, parts: dict[str, str],
            manifest: dict) -> str:
  """Assembles parts (release path -> source file or directory) and the manifest.

  Returns the release directory. The manifest gets the checksum of every file.
  """
  final = os.path.join(releases_dir, version)
  if tf.io.gfile.exists(final):
    raise ReleaseError(f'release {final} already exists')
  local = '://' not in releases_dir
  staging = os.path.join(releases_dir, f'.incoming-{version}') if local else final
  tf.io.gfile.makedirs(staging)
  for target, source in parts.items():
    destination = os.path.join(staging, target)
    if tf.io.gfile.isdir(source):
      copy_tree(source, destination)
    else:
      tf.io.gfile.makedirs(os.path.dirname(destination))
      tf.io.gfile.copy(source, destination, overwrite=True)
  manifest = dict(manifest, format=FORMAT_VERSION, version=version,
                  files=layout.file_checksums(staging))
  with tf.io.gfile.GFile(os.path.join(staging, MANIFEST), 'w') as f:
    json.dump(manifest, f, indent=2)
  if local:
    os.rename(staging, final)
    link = os.path.join(releases_dir, f'.{LATEST_LINK}-{version}')
    os.symlink(version, link)
    os.replace(link, os.path.join(releases_dir, LATEST_LINK))
  with tf.io.gfile.GFile(os.path.join(releases_dir, LATEST_FILE), 'w') as f:
    f.write(version + '\n')
  return final


def read_manifest(release_dir: Optional[str]) -> Optional[dict]:
  """The manifest of the release in `release_dir`; None when there is no release there
  (no directory given, or no manifest.json: the callers say what that means for them)."""
  path = release_dir and os.path.join(release_dir, MANIFEST)
  if not path or not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def latest_release(releases_dir: str) -> Optional[str]:
  """The directory the LATEST file of `releases_dir` names, if there is one."""
  latest = os.path.join(releases_dir, LATEST_FILE)
  if not tf.io.gfile.exists(latest):
    return None
  with tf.io.gfile.GFile(latest) as f:
    return os.path.join(releases_dir, f.read().strip())
