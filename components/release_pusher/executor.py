"""Executor of ReleasePusher."""

import datetime
import json
import os
from typing import Any

from absl import logging
import tensorflow as tf
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components import scenario_mapping
from components.index_builder import executor as index_executor
from components.index_builder import scann_index
from components.recall_evaluator import executor as evaluator_executor
from components.release_pusher import release
from models import export
from models import trainer


INDEX_DIR = 'index'


class Executor(base_executor.BaseExecutor):

  def Do(self, input_dict: dict[str, list], output_dict: dict[str, list],
         exec_properties: dict[str, Any]) -> None:
    pushed = artifact_utils.get_single_instance(output_dict['pushed_model'])
    blessing = artifact_utils.get_single_instance(input_dict['model_blessing'])
    evaluation = artifact_utils.get_single_uri(input_dict['evaluation'])
    with tf.io.gfile.GFile(os.path.join(evaluation, evaluator_executor.METRICS_FILE)) as f:
      metrics = json.load(f)
    if not blessing.get_int_custom_property('blessed'):
      logging.warning('model not blessed, no release: %s',
                      '; '.join(metrics['blessing']['reasons']))
      pushed.set_int_custom_property('pushed', 0)
      return

    model_dir = path_utils.serving_model_path(
        artifact_utils.get_single_uri(input_dict['model']))
    index = artifact_utils.get_single_uri(input_dict['index'])
    with tf.io.gfile.GFile(os.path.join(index, scann_index.MANIFEST)) as f:
      index_manifest = json.load(f)
    fingerprint = export.towers_fingerprint(model_dir)
    if index_manifest['model_fingerprint'] != fingerprint:
      raise release.ReleaseError(
          f'the index in {index} was built by model {index_manifest["model_fingerprint"]}'
          f', not by the blessed model {fingerprint}')
    released = _latest_release_of(exec_properties['releases_dir'], fingerprint)
    if released:
      # A rerun of an unchanged pipeline re-evaluates against the blessed model (itself);
      # it must not publish the same model again.
      logging.info('model %s is already the latest release %s', fingerprint[:12], released)
      pushed.set_int_custom_property('pushed', 1)
      pushed.set_string_custom_property('pushed_version', os.path.basename(released))
      pushed.set_string_custom_property('pushed_destination', released)
      return
    mapping_dir = artifact_utils.get_single_uri(input_dict['scenario_mapping'])
    snapshot = artifact_utils.get_single_instance(input_dict['user_snapshot'])
    split, = artifact_utils.decode_split_names(snapshot.split_names)

    parts = {
        export.USER_TOWER_DIR: os.path.join(model_dir, export.USER_TOWER_DIR),
        export.ITEM_TOWER_DIR: os.path.join(model_dir, export.ITEM_TOWER_DIR),
        export.FEATURE_SPACE_FILE: os.path.join(model_dir, export.FEATURE_SPACE_FILE),
        trainer.TRAINING_SUMMARY: os.path.join(model_dir, trainer.TRAINING_SUMMARY),
        index_executor.RETRIEVAL_MODEL_DIR: os.path.join(
            index, index_executor.RETRIEVAL_MODEL_DIR),
        scenario_mapping.FILE_NAME: os.path.join(mapping_dir, scenario_mapping.FILE_NAME),
        'user_snapshot': artifact_utils.get_split_uri([snapshot], split),
        'evaluation': evaluation,
    }
    for name in (scann_index.SCANN_DIR, scann_index.ITEM_IDS, scann_index.ITEM_EMBEDDINGS,
                 scann_index.MANIFEST):
      parts[os.path.join(INDEX_DIR, name)] = os.path.join(index, name)
    mapping = scenario_mapping.ScenarioMapping.load(mapping_dir)
    version = release.new_version(fingerprint)
    manifest = {
        'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'pipeline': exec_properties['pipeline_name'],
        'dataset': exec_properties['dataset'],
        'scenarios': list(mapping.values),
        'model_fingerprint': fingerprint,
        'user_tower_fingerprint': export.directory_fingerprint(
            os.path.join(model_dir, export.USER_TOWER_DIR)),
        'index': {'corpus_size': index_manifest['corpus_size'],
                  'dimension': index_manifest['dimension'],
                  'model_fingerprint': index_manifest['model_fingerprint'],
                  'recall_vs_exact': index_manifest['recall_vs_exact']},
        'recall': {name: metrics['recall'][name] for name in
                   ('model', 'popular', 'popular_per_scenario')},
        'ks': metrics['ks'],
    }
    path = release.publish(exec_properties['releases_dir'], version, parts, manifest)
    logging.info('released %s', path)
    pushed.set_int_custom_property('pushed', 1)
    pushed.set_string_custom_property('pushed_version', version)
    pushed.set_string_custom_property('pushed_destination', path)



def _latest_release_of(releases_dir: str, fingerprint: str) -> str:
  """The latest release's directory if it holds the model `fingerprint`, else ''."""
  path = release.latest_release(releases_dir)
  manifest = path and os.path.join(path, release.MANIFEST)
  if not manifest or not tf.io.gfile.exists(manifest):
    return ''
  with tf.io.gfile.GFile(manifest) as f:
    return path if json.load(f).get('model_fingerprint') == fingerprint else ''
