"""Executor of InteractionExampleGen: runs the Beam ingestion and checks its report."""

import json
import os
from typing import Any

from absl import logging
import tensorflow as tf
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils

from core import config as configs
from core import dataset_spec as ds
from core import layout
from core import scenario_mapping
from ingestion import ingest
from ingestion import report


class Executor(base_beam_executor.BaseBeamExecutor):

  def Do(self, input_dict: dict[str, list], output_dict: dict[str, list],
         exec_properties: dict[str, Any]) -> None:
    spec = ds.DatasetSpec.from_json(exec_properties['dataset_spec'])
    config = configs.section_from_json(configs.IngestionConfig,
                                       exec_properties['ingestion_config'])
    examples = artifact_utils.get_single_instance(output_dict['examples'])
    corpus = artifact_utils.get_single_instance(output_dict['item_corpus'])
    snapshot = artifact_utils.get_single_instance(output_dict['user_snapshot'])
    item_state = artifact_utils.get_single_instance(output_dict['item_state'])
    report_artifact = artifact_utils.get_single_instance(output_dict['report'])
    mapping_artifact = artifact_utils.get_single_instance(output_dict['scenario_mapping'])

    window_days = exec_properties.get('window_days') or 0
    splits = layout.EXAMPLE_SPLITS + ((layout.HISTORY,) if window_days else ())
    examples.split_names = artifact_utils.encode_split_names(list(splits))
    corpus.split_names = artifact_utils.encode_split_names(list(layout.CORPUS_SPLITS))
    snapshot.split_names = artifact_utils.encode_split_names([layout.USERS])
    item_state.split_names = artifact_utils.encode_split_names([layout.ITEMS])
    outputs = ingest.OutputPaths(
        examples={s: artifact_utils.get_split_uri([examples], s) for s in splits},
        item_corpus={s: artifact_utils.get_split_uri([corpus], s)
                     for s in layout.CORPUS_SPLITS},
        user_snapshot=artifact_utils.get_split_uri([snapshot], layout.USERS),
        raw_report=os.path.join(report_artifact.uri, layout.INGESTION_RAW_REPORT),
        item_state=artifact_utils.get_split_uri([item_state], layout.ITEMS))
    summary = ingest.ingest_and_summarize(self._make_beam_pipeline, spec,
                                          exec_properties['input_base'], config, outputs,
                                          window_days=window_days)
    text = report.format_text(summary)
    with tf.io.gfile.GFile(os.path.join(report_artifact.uri,
                                        layout.INGESTION_SUMMARY_JSON), 'w') as f:
      json.dump(summary, f, indent=2)
    with tf.io.gfile.GFile(os.path.join(report_artifact.uri,
                                        layout.INGESTION_SUMMARY_TEXT), 'w') as f:
      f.write(text + '\n')
    logging.info('%s', text)
    report.check(summary, config)
    if exec_properties.get('after_release'):
      ingest.check_newest_day_after(summary, exec_properties['after_release'],
                                    exec_properties['input_base'])

    selected_by = (
        'the list in ingestion.scenarios' if config.scenarios else
        f'the {config.num_scenarios} scenario values with the most positives in the '
        f'training split')
    scenario_mapping.ScenarioMapping(
        tuple(scenario_mapping.Scenario(**s) for s in summary['scenarios']),
        selected_by=selected_by).save(mapping_artifact.uri)
    for artifact in (examples, corpus, snapshot, item_state):
      examples_utils.set_payload_format(
          artifact, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
