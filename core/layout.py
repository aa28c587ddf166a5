"""Artifact layout: every file, directory, split, signature and custom_config name that
one part of the project writes and another reads, and the fingerprints of directories.

Writers and readers import the name from here; nothing else spells it. The release
directory, which is assembled from these artifacts, is in release_format.py.
"""

import hashlib
import json
import os

import tensorflow as tf

# ---- InteractionExampleGen: splits of its Examples outputs ---------------------------
# examples: the events of each time window (dataset_spec.SplitSpec), features as of the
# event (train) or the window's start (validation, test); ALL: every event as a training
# example, for the model refit on all days that a release serves.
# item_corpus: every item, its time-dependent features as of the end of the training
# window (TRAIN), the start of the test window (TEST) or the last event (ALL).
TRAIN = 'train'
VALIDATION = 'validation'
TEST = 'test'
ALL = 'all'
EXAMPLE_SPLITS = (TRAIN, VALIDATION, TEST, ALL)
# A refresh's events before its training window (ingestion window_days): each written once,
# as of its own moment (what TRAIN and ALL would both hold), for what needs every earlier
# day: the vocabularies, the popularity baselines and the negatives' point-in-time clicks.
# No model trains on it, so no Transform transforms it.
HISTORY = 'history'
CORPUS_SPLITS = (TRAIN, TEST, ALL)


def with_history(splits, split_names) -> list[str]:
  """`splits` (of events before some moment) and, when the Examples artifact's
  `split_names` (decoded) hold it, HISTORY: the events before them all."""
  return ([HISTORY] if HISTORY in split_names else []) + list(splits)

USERS = 'users'  # user_snapshot: every user's features and history as of the last event
ITEMS = 'items'  # item_state: every item's counts as of the last event (ingestion/records.py)

# ---- InteractionExampleGen: the report and the scenario mapping ----------------------
INGESTION_SUMMARY_JSON = 'summary.json'
INGESTION_SUMMARY_TEXT = 'summary.txt'
INGESTION_RAW_REPORT = 'raw_report.json'  # the Beam pipeline's counts, before summarizing
SCENARIO_MAPPING_FILE = 'scenario_mapping.json'

# ---- Trainer: the model artifact (its serving model directory) -----------------------
USER_TOWER_DIR = 'user_tower'  # SavedModel: raw user features -> embedding
ITEM_TOWER_DIR = 'item_tower'  # SavedModel: raw item features -> embedding
FEATURE_SPACE_FILE = 'feature_space.json'  # models/features.py FeatureSpace
TRAINING_SUMMARY_FILE = 'training_summary.json'
# Weights and vocabularies (models/warm_start.py), what a refresh warm-starts from: in a
# model, one directory per tower under it (USER_TOWER_DIR, ITEM_TOWER_DIR); in a teacher
# artifact, the teacher's.
WARM_START_DIR = 'warm_start'
# Signatures of the exported towers (models/export.py).
USER_SIGNATURE = 'user_embedding'
USER_EXAMPLES_SIGNATURE = 'user_embedding_examples'
ITEM_SIGNATURE = 'item_embedding'
ITEM_EXAMPLES_SIGNATURE = 'item_embedding_examples'
EMBEDDING_OUTPUT = 'embedding'

# ---- Trainer: the teacher artifact ----------------------------------------------------
TEACHER_WEIGHTS = 'weights/teacher'  # Keras checkpoint prefix
TEACHER_CONFIG_FILE = 'teacher_config.json'
TEACHER_SUMMARY_FILE = 'teacher_summary.json'  # how it was trained, the epoch kept
TEACHER_SERVING_DIR = 'serving'  # SavedModel with TEACHER_EXAMPLES_SIGNATURE
TEACHER_EXAMPLES_SIGNATURE = 'teacher_logit_examples'
LOGIT_OUTPUT = 'logit'
# A ranker (models/rankers/): SavedModel from raw features, one probability per task under
# the task's name (the dataset spec's logs.tasks), feature_space.json and tasks.json beside.
RANKER_SIGNATURE = 'ranker_probabilities'
RANKER_EXAMPLES_SIGNATURE = 'ranker_probabilities_examples'
RANKER_TASKS_FILE = 'tasks.json'

# ---- Trainer: keys its executor adds to the run_fn's custom_config --------------------
TRAINER_ITEM_CORPUS = 'item_corpus_pattern'  # raw item corpus files (random negatives)
TRAINER_SCENARIO_MAPPING = 'scenario_mapping_dir'
TRAINER_TEACHER_INPUT = 'teacher_dir'  # absent: train a teacher
TRAINER_TEACHER_OUTPUT = 'teacher_output_dir'
TRAINER_BACKUP_DIR = 'backup_dir'  # checkpoints that survive a killed Trainer
TRAINER_VALIDATION_EVENTS = 'validation_events_pattern'  # raw validation split (recall)
TRAINER_CLICK_EVENTS = 'click_events_patterns'  # JSON [pattern, ...]: raw training splits
                                               # (point-in-time negatives)
TRAINER_FIXED_EPOCHS = 'fixed_epochs'  # JSON {"teacher": n, "student": m}: a refit
TRAINER_POPULARITY_WEIGHTS = 'popularity_weights'  # JSON {scenario: tau_s}: a refit's
TRAINER_WARM_START = 'warm_start_dir'  # a model dir or release with WARM_START_DIR: the
                                       # student starts from its towers (a refresh)
TRAINER_WARM_START_TEACHER = 'warm_start_teacher_dir'  # a teacher artifact: the teacher
                                       # starts from its WARM_START_DIR (a refresh)
TRAINER_WINDOW_DAYS = 'window_days'  # int: train on the anchors of the last N days of
                                     # the split's days only (a refresh)
# The training summary's {scenario: tau_s} (model.fitted_popularity_weight), the kept epoch's.
POPULARITY_WEIGHTS_KEY = 'popularity_weights'
TRAINER_RECALL_KS = 'recall_ks'  # JSON [k, ...]: the validation Recall@K it reports
RANKER_SEED = 'ranker_seed'  # the RankerTrainer's seed (training.seed), alone: another
                             # training section must not retrain the ranker
# A ranker refit: JSON {"epochs": n, "fingerprint": ...} of the evaluated ranker whose kept
# epochs it trains on every day.
RANKER_REFIT_OF = 'ranker_refit_of'

# ---- RankingEvaluator: the ranker's evaluation (AUC, GAUC per scenario and task) -----
RANKING_METRICS_FILE = 'ranking_metrics.json'
RANKING_SUMMARY_FILE = 'ranking_summary.md'
# The SystemEvaluator's (ranking/system.py): the two stages on the test split.
SYSTEM_METRICS_FILE = 'system_metrics.json'
SYSTEM_SUMMARY_FILE = 'system_summary.md'
# A release's two-stage settings (RecommendConfig resolved over the ranker's tasks).
RECOMMEND_FILE = 'recommend.json'

# ---- RecallEvaluator: the evaluation and blessing artifacts ---------------------------
METRICS_FILE = 'metrics.json'
CHART_FILE = 'recall.png'
EVALUATION_SUMMARY_FILE = 'summary.txt'
BLESSED_FILE = 'BLESSED'
NOT_BLESSED_FILE = 'NOT_BLESSED'

# ---- BlessedModelComparison: the model against the previous blessed one ---------------
COMPARISON_FILE = 'comparison.json'
COMPARISON_SUMMARY_FILE = 'summary.txt'

# ---- IndexBuilder: the index artifact -------------------------------------------------
SCANN_DIR = 'scann'  # the serialized ScaNN searcher
ITEM_IDS_FILE = 'item_ids.txt'  # the item id of each index row, one per line
ITEM_EMBEDDINGS_FILE = 'item_embeddings.npy'  # [N, d] float32
INDEX_MANIFEST_FILE = 'index_manifest.json'  # parameters, fingerprints, recall vs exact
RETRIEVAL_MODEL_DIR = 'retrieval_model'  # TFRS ScaNN SavedModel
RETRIEVE_SIGNATURE = 'retrieve'
INDEX_FILES = (SCANN_DIR, ITEM_IDS_FILE, ITEM_EMBEDDINGS_FILE, INDEX_MANIFEST_FILE)


def split_pattern(artifact_uri: str, split: str) -> str:
  """The files of one split of an Examples artifact (TFX's Split-<name> directories)."""
  return os.path.join(artifact_uri, f'Split-{split}', '*')


def file_checksums(directory: str, suffix: str = '') -> dict[str, str]:
  """Relative path -> sha256 of every file below `directory` whose name ends with
  `suffix`, sorted by path. The one walk the fingerprints and release checks share."""
  checksums = {}
  for root, _, files in tf.io.gfile.walk(directory):
    for name in files:
      if not name.endswith(suffix):
        continue
      path = os.path.join(root, name)
      digest = hashlib.sha256()
      with tf.io.gfile.GFile(path, 'rb') as f:
        while chunk := f.read(1 << 20):
          digest.update(chunk)
      checksums[os.path.relpath(path, directory)] = digest.hexdigest()
  return dict(sorted(checksums.items()))


def directory_fingerprint(directory: str, suffix: str = '') -> str:
  """sha256 over the relative paths and contents of the files `file_checksums` lists."""
  listing = json.dumps(file_checksums(directory, suffix), sort_keys=True)
  return hashlib.sha256(listing.encode()).hexdigest()


def towers_fingerprint(model_directory: str) -> str:
  """The fingerprint of a trained model: its two exported towers together."""
  return hashlib.sha256(json.dumps([
      directory_fingerprint(os.path.join(model_directory, USER_TOWER_DIR)),
      directory_fingerprint(os.path.join(model_directory, ITEM_TOWER_DIR))]).encode()
  ).hexdigest()


def trainer_backup_dir(input_dict: dict, exec_properties: dict, model_uri: str) -> str:
  """A trainer's checkpoint directory that is the same for every attempt of the same job:
  <root>/<component>/backup/<key>, keyed by the input artifacts' URIs (input_dict:
  {name: [artifact]}) and the execution properties. A rerun after a crash (same inputs,
  same config) finds the checkpoints; any change starts afresh."""
  key = json.dumps({
      'inputs': {name: sorted(a.uri for a in artifacts)
                 for name, artifacts in sorted(input_dict.items())},
      'properties': {k: str(v) for k, v in sorted(exec_properties.items())},
  }, sort_keys=True)
  component_dir = os.path.dirname(os.path.dirname(model_uri))  # <root>/<component>/model/<id>
  return os.path.join(component_dir, 'backup', hashlib.sha256(key.encode()).hexdigest()[:16])
