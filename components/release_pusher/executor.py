"""Executor of ReleasePusher (the release format is core/release_format.py)."""

import datetime
import json
import os
import shutil
import tempfile
from typing import Any, Optional

from absl import logging
import tensorflow as tf
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from core import config as configs
from core import examples
from core import layout
from core import release_format
from core import scenario_mapping
from retrieval import user_snapshot


class Executor(base_executor.BaseExecutor):

  def Do(self, input_dict: dict[str, list], output_dict: dict[str, list],
         exec_properties: dict[str, Any]) -> None:
    pushed = artifact_utils.get_single_instance(output_dict['pushed_model'])
    blessing = artifact_utils.get_single_instance(input_dict['model_blessing'])
    evaluation = artifact_utils.get_single_uri(input_dict['evaluation'])
    with tf.io.gfile.GFile(os.path.join(evaluation, layout.METRICS_FILE)) as f:
      metrics = json.load(f)
    with tf.io.gfile.GFile(os.path.join(artifact_utils.get_single_uri(
        input_dict['comparison']), layout.COMPARISON_FILE)) as f:
      regressions = json.load(f)['regressions']
    refusal = ('model not blessed: ' + '; '.join(metrics['blessing']['reasons'])
               if not blessing.get_int_custom_property('blessed') else
               'regression against the previous blessed model: ' + '; '.join(regressions)
               if regressions else '')
    if refusal:
      logging.warning('no release: %s', refusal)
      pushed.set_int_custom_property('pushed', 0)
      pushed.set_string_custom_property('refusal', refusal)
      return

    model_dir = path_utils.serving_model_path(
        artifact_utils.get_single_uri(input_dict['model']))
    index = artifact_utils.get_single_uri(input_dict['index'])
    with tf.io.gfile.GFile(os.path.join(index, layout.INDEX_MANIFEST_FILE)) as f:
      index_manifest = json.load(f)
    fingerprint = layout.towers_fingerprint(model_dir)
    if index_manifest['model_fingerprint'] != fingerprint:
      raise release_format.ReleaseError(
          f'the index in {index} was built by model {index_manifest["model_fingerprint"]}'
          f', not by the blessed model {fingerprint}')
    refresh_of = exec_properties.get('refresh_of') or ''
    ranker_parts, ranker_manifest = _ranker(input_dict, exec_properties['releases_dir'],
                                            refresh_of)
    if ranker_parts:
      ranker_parts.update(_recommend_parts(input_dict, exec_properties, ranker_manifest,
                                           pushed.uri))
    released = _latest_release_of(exec_properties['releases_dir'], fingerprint,
                                  ranker_manifest.get('fingerprint') if ranker_parts else None)
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
    snapshot_dir = artifact_utils.get_split_uri([snapshot], split)
    item_state = artifact_utils.get_single_instance(input_dict['item_state'])

    parts = {name: os.path.join(model_dir, name) for name in (
        layout.USER_TOWER_DIR, layout.ITEM_TOWER_DIR, layout.FEATURE_SPACE_FILE,
        layout.TRAINING_SUMMARY_FILE, layout.WARM_START_DIR)}
    parts.update({
        layout.RETRIEVAL_MODEL_DIR: os.path.join(index, layout.RETRIEVAL_MODEL_DIR),
        layout.SCENARIO_MAPPING_FILE: os.path.join(mapping_dir,
                                                   layout.SCENARIO_MAPPING_FILE),
        release_format.USER_SNAPSHOT_DIR: snapshot_dir,
        release_format.ITEM_STATE_DIR: artifact_utils.get_split_uri([item_state],
                                                                    layout.ITEMS),
        release_format.EVALUATION_DIR: evaluation,
    })
    parts.update(ranker_parts)
    teachers = input_dict.get('teacher') or []
    if teachers and tf.io.gfile.exists(os.path.join(teachers[0].uri, layout.WARM_START_DIR)):
      parts[os.path.join(release_format.TEACHER_DIR, layout.WARM_START_DIR)] = os.path.join(
          teachers[0].uri, layout.WARM_START_DIR)
    for name in layout.INDEX_FILES:
      parts[os.path.join(release_format.INDEX_DIR, name)] = os.path.join(index, name)
    mapping = scenario_mapping.ScenarioMapping.load(mapping_dir)
    version = release_format.new_version(fingerprint)
    with tf.io.gfile.GFile(os.path.join(
        artifact_utils.get_single_uri(input_dict['ingestion_report']),
        layout.INGESTION_SUMMARY_JSON)) as f:
      ingestion = json.load(f)
    evaluated_dir = path_utils.serving_model_path(
        artifact_utils.get_single_uri(input_dict['evaluated_model']))
    manifest = {
        'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'pipeline': exec_properties['pipeline_name'],
        'dataset': exec_properties['dataset'],
        'scenarios': list(mapping.values),
        'model_fingerprint': fingerprint,
        'user_tower_fingerprint': layout.directory_fingerprint(
            os.path.join(model_dir, layout.USER_TOWER_DIR)),
        'index': {'corpus_size': index_manifest['corpus_size'],
                  'dimension': index_manifest['dimension'],
                  'model_fingerprint': index_manifest['model_fingerprint'],
                  'recall_vs_exact': index_manifest['recall_vs_exact']},
        'data': data_account(ingestion, _training_summary(model_dir),
                             _training_summary(evaluated_dir)),
        'evaluated_model_fingerprint': layout.towers_fingerprint(evaluated_dir),
        'recall': {name: metrics['recall'][name] for name in
                   ('model', 'popular', 'popular_per_scenario')},
        'intervals': {name: metrics['intervals'][name] for name in
                      ('model', 'popular_per_scenario', 'model_minus_popular_per_scenario')},
        'ks': metrics['ks'],
        'ranker': ranker_manifest,
    }
    if refresh_of:
      manifest['refresh_of'] = os.path.basename(os.path.normpath(refresh_of))
    # The snapshot as arrays (serving opens them in milliseconds), written locally with
    # np.save, then copied into the release with the other parts.
    scratch = tempfile.mkdtemp(prefix='user_snapshot_arrays_')
    try:
      arrays = os.path.join(scratch, release_format.USER_SNAPSHOT_ARRAYS_DIR)
      users = user_snapshot.write(examples.records(os.path.join(snapshot_dir, '*')), arrays)
      logging.info('user snapshot: %d users as arrays', users)
      parts[release_format.USER_SNAPSHOT_ARRAYS_DIR] = arrays
      path = release_format.publish(exec_properties['releases_dir'], version, parts,
                                    manifest)
    finally:
      shutil.rmtree(scratch, ignore_errors=True)
    logging.info('released %s', path)
    pushed.set_int_custom_property('pushed', 1)
    pushed.set_string_custom_property('pushed_version', version)
    pushed.set_string_custom_property('pushed_destination', path)


def _training_summary(model_dir: str) -> dict:
  with tf.io.gfile.GFile(os.path.join(model_dir, layout.TRAINING_SUMMARY_FILE)) as f:
    return json.load(f)


def data_account(ingestion: dict, served: dict, evaluated: dict) -> dict:
  """Which data the served model saw, and which the evaluated one, for the manifest;
  with daily log files (logs.day_format), each day's file and events."""
  epochs = lambda summary: {phase: summary[phase]['epoch_kept']
                            for phase in ('teacher', 'student') if summary.get(phase)}
  days = {'log_days': [{k: d[k] for k in ('day', 'file', 'rows')}
                       for d in ingestion['log_days']]} if ingestion.get('log_days') else {}
  return {**days,
      'served_model': {
          'trained_on': _warm_start_account(served) or (
              f'every event up to {ingestion["last_event"]} (train, validation and test '
              f'windows)'),
          'epochs': epochs(served), 'anchors': served['anchors']},
      'features_as_of': ingestion['last_event'],
      'evaluated_model': {
          'trained_on': _warm_start_account(evaluated) or (
              f'the train window, before {ingestion["validation_start"]}; stopped on the '
              f'validation window'),
          'epochs': epochs(evaluated), 'anchors': evaluated['anchors'],
          'tested_on': f'the test window, from {ingestion["test_start"]} to '
                       f'{ingestion["last_event"]}, features as of its start'},
      'windows': {'validation_start': ingestion['validation_start'],
                  'test_start': ingestion['test_start'],
                  'last_event': ingestion['last_event']},
  }


def _warm_start_account(summary: dict) -> str:
  """A refresh's model (its training summary has warm_start): what it started from and
  the days it trained on; '' for any other model."""
  if 'warm_start' not in summary:
    return ''
  window = summary.get('window')
  days = (f'the days {window["first_day"]} .. {window["last_day"]}' if window else
          'every day of its split')
  return (f'a warm start from {os.path.basename(os.path.normpath(summary["warm_start"]["from"]))}'
          f', trained on {days}')


def _ranker(input_dict, releases_dir: str,
            refresh_of: str = '') -> tuple[dict[str, str], dict]:
  """(the release parts of the ranker, its manifest entry).

  A blessed ranker goes in. One that is not blessed stays out; the latest release's
  ranker, if it has one, is carried over instead (a retrieval refresh must not take away
  the ranker being served), and the entry says which ranker was refused and why. A
  refresh trains none and carries the ranker of the release it refreshed."""
  rankers = input_dict.get('ranker') or []
  if not rankers and refresh_of:
    return _carried_ranker(refresh_of, None)
  if not rankers:
    return {}, {'included': False, 'reason': 'the pipeline trained no ranker '
                                              '(ranker.enabled is false)'}
  ranker_dir = path_utils.serving_model_path(rankers[0].uri)
  evaluation_dir = artifact_utils.get_single_uri(input_dict['ranker_evaluation'])
  with tf.io.gfile.GFile(os.path.join(evaluation_dir, layout.RANKING_METRICS_FILE)) as f:
    evaluation = json.load(f)
  with tf.io.gfile.GFile(os.path.join(ranker_dir, layout.TRAINING_SUMMARY_FILE)) as f:
    summary = json.load(f)
  entry = {'model': summary['model'], 'tasks': evaluation['tasks'],
           'fingerprint': layout.directory_fingerprint(ranker_dir),
           'trained_on': summary['trained_on'],
           'epoch_kept': summary['epoch_kept'],
           # A refit: the evaluated ranker its blessing and test figures are of.
           **({'evaluated_fingerprint': summary['refit_of']['fingerprint']}
              if 'refit_of' in summary else {}),
           'test': {system: evaluation['metrics'][system]['all'] for system in
                    evaluation['systems']}}
  blessing = artifact_utils.get_single_instance(input_dict['ranker_blessing'])
  if blessing.get_int_custom_property('blessed'):
    return {release_format.RANKER_DIR: ranker_dir,
            release_format.RANKER_EVALUATION_DIR: evaluation_dir}, dict(entry, included=True)
  refused = {'fingerprint': entry['fingerprint'],
             'reason': 'not blessed: ' + '; '.join(evaluation['blessing']['reasons'])}
  parts, carried = _carried_ranker(release_format.latest_release(releases_dir), refused)
  if parts:
    return parts, carried
  logging.warning('the release leaves the ranker out: %s', refused['reason'])
  return {}, dict(entry, included=False, reason=refused['reason'])


def _carried_ranker(release: Optional[str], refused: Optional[dict]
                    ) -> tuple[dict[str, str], dict]:
  """The ranker parts and manifest entry of `release`'s ranker, carried into the new
  release (`refused`: why the new ranker is not served; None: a refresh trained none);
  ({}, an entry saying there is none) when that release serves no ranker."""
  served = (release_format.read_manifest(release) or {}).get('ranker') or {}
  if not served.get('included'):
    return {}, {'included': False, 'reason': 'a refresh trains no ranker, and the release '
                                              'it refreshed has none'}
  logging.warning('the release keeps the ranker of %s (%s)', release,
                  refused['reason'] if refused else 'a refresh trains no ranker')
  entry = dict(served, carried_from=os.path.basename(os.path.normpath(release)))
  if refused:
    entry['refused'] = refused
  return ({name: os.path.join(release, name) for name in (
      release_format.RANKER_DIR, release_format.RANKER_EVALUATION_DIR)}, entry)


def _recommend_parts(input_dict, exec_properties, ranker_manifest: dict,
                     scratch: str) -> dict[str, str]:
  """The two-stage parts beside a ranker: the item corpus as of the last event (the
  candidates' item features) and recommend.json (written to `scratch`)."""
  config = configs.section_from_json(configs.RecommendConfig,
                                     exec_properties['recommend_config'])
  scenarios = scenario_mapping.ScenarioMapping.load(
      artifact_utils.get_single_uri(input_dict['scenario_mapping'])).values
  unknown = sorted(set(config.scenario_weights) - set(scenarios))
  if unknown:
    raise configs.ConfigError(
        f'recommend.scenario_weights.{unknown[0]}: not a scenario of the data (scenarios: '
        f'{", ".join(scenarios)}); fix the key and run again (the trained models are cached)')
  settings = {'tasks': list(ranker_manifest['tasks']),
              'blend': config.scenario_blend(tuple(ranker_manifest['tasks'])),
              'candidates': config.candidates, 'max_candidates': config.max_candidates,
              'max_weight': config.max_weight}
  path = os.path.join(scratch, layout.RECOMMEND_FILE)
  with tf.io.gfile.GFile(path, 'w') as f:
    json.dump(settings, f, indent=2)
  corpus = artifact_utils.get_single_instance(input_dict['item_corpus'])
  return {layout.RECOMMEND_FILE: path,
          release_format.ITEM_CORPUS_DIR: artifact_utils.get_split_uri([corpus],
                                                                       layout.ALL)}


def _latest_release_of(releases_dir: str, fingerprint: str,
                       ranker_fingerprint: Optional[str]) -> str:
  """The latest release's directory if it holds the model `fingerprint` and the same
  ranker (or, both, none), else ''."""
  path = release_format.latest_release(releases_dir)
  released = release_format.read_manifest(path)
  if released is None:
    return ''
  ranker = released.get('ranker') or {}
  same_ranker = (ranker.get('fingerprint') if ranker.get('included') else None) == (
      ranker_fingerprint)
  return path if released.get('model_fingerprint') == fingerprint and same_ranker else ''
