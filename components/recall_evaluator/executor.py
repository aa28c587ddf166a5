"""Executor of RecallEvaluator (see component.py for what it computes)."""

import json
import os
from typing import Any, Optional

from absl import logging
import numpy as np
from sklearn import metrics as sk_metrics
import tensorflow as tf
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils
from tfx.utils import path_utils

from components import retrieval_eval as rev
from components.recall_evaluator import blessing
from components.recall_evaluator import chart
from models import export
from models import trainer
from pipeline import configs

METRICS_FILE = 'metrics.json'
CHART_FILE = 'recall.png'
SUMMARY_FILE = 'summary.txt'


class Executor(base_executor.BaseExecutor):

  def Do(self, input_dict: dict[str, list], output_dict: dict[str, list],
         exec_properties: dict[str, Any]) -> None:
    config = configs.from_dict(configs.EvaluationConfig,
                               json.loads(exec_properties['evaluation_config']))
    model = artifact_utils.get_single_instance(input_dict['model'])
    examples = artifact_utils.get_single_instance(input_dict['examples'])
    corpus = artifact_utils.get_single_instance(input_dict['item_corpus'])
    baselines = input_dict.get('baseline_model') or []
    teachers = input_dict.get('teacher') or []
    baseline_dir = (path_utils.serving_model_path(baselines[0].uri)
                    if baselines and baselines[0].id != model.id else None)
    teacher_dir = (os.path.join(teachers[0].uri, trainer.TEACHER_SERVING)
                   if teachers and tf.io.gfile.exists(
                       os.path.join(teachers[0].uri, trainer.TEACHER_SERVING)) else None)

    result = evaluate(path_utils.serving_model_path(model.uri),
                      rev.split_pattern(examples.uri, 'train'),
                      rev.split_pattern(examples.uri, 'eval'),
                      rev.split_pattern(corpus.uri, 'corpus'), config, baseline_dir,
                      teacher_dir)
    blessed, reasons = blessing.bless(result['recall'], config)
    result['blessing'] = {'blessed': blessed, 'reasons': reasons,
                          'rule': f'recall > per-scenario popularity + '
                                  f'{config.bless_margin} on every scenario and K'}
    result['model'] = {'uri': model.uri, 'id': model.id}

    out = artifact_utils.get_single_uri(output_dict['evaluation'])
    with tf.io.gfile.GFile(os.path.join(out, METRICS_FILE), 'w') as f:
      json.dump(result, f, indent=2)
    text = format_summary(result, config.recall_ks)
    with tf.io.gfile.GFile(os.path.join(out, SUMMARY_FILE), 'w') as f:
      f.write(text + '\n')
    chart.recall_chart(result['recall'], config.recall_ks, os.path.join(out, CHART_FILE),
                       'DSMOE retrieval: Recall@K per scenario (eval split)')
    logging.info('%s', text)

    blessing_artifact = artifact_utils.get_single_instance(output_dict['blessing'])
    blessing_artifact.set_int_custom_property('blessed', int(blessed))
    blessing_artifact.set_int_custom_property('current_model_id', model.id)
    blessing_artifact.set_string_custom_property('current_model', model.uri)
    io_utils.write_string_file(
        os.path.join(blessing_artifact.uri, 'BLESSED' if blessed else 'NOT_BLESSED'), '')


def evaluate(model_dir: str, train_pattern: str, eval_pattern: str, corpus_pattern: str,
             config: configs.EvaluationConfig, baseline_dir: Optional[str] = None,
             teacher_dir: Optional[str] = None) -> dict:
  """Recall@K per scenario of the model and the baselines, and AUC per scenario."""
  k_max = max(config.recall_ks)
  events = rev.read_events(eval_pattern)
  queries = rev.eval_queries(events)
  train = rev.read_events(train_pattern, keep_examples=False)
  overall, per_scenario = rev.popularity_rankings(train, k_max)
  recall = {
      'popular': rev.recall_at_k_per_scenario(
          [overall] * len(queries.clicked), queries.clicked, queries.scenario,
          config.recall_ks),
      'popular_per_scenario': rev.recall_at_k_per_scenario(
          [per_scenario.get(s, []) for s in queries.scenario], queries.clicked,
          queries.scenario, config.recall_ks),
  }
  towers = rev.load_towers(model_dir)
  item_ids, item_embeddings = rev.corpus_embeddings(towers.item, corpus_pattern)
  recall['model'] = _model_recall(towers, queries, item_ids, item_embeddings, config)
  recall['previous_blessed'] = None
  if baseline_dir:
    base = rev.load_towers(baseline_dir)
    base_ids, base_items = rev.corpus_embeddings(base.item, corpus_pattern)
    recall['previous_blessed'] = _model_recall(base, queries, base_ids, base_items, config)
  auc = {'student': _student_auc(towers, events, item_ids, item_embeddings)}
  if teacher_dir:
    teacher = tf.saved_model.load(teacher_dir).signatures[
        export.TEACHER_EXAMPLES_SIGNATURE]
    auc['teacher'] = _auc_per_scenario(events, rev.embed(teacher, events.examples, 'logit'))
  scenarios, counts = np.unique(queries.scenario, return_counts=True)
  return {'ks': list(config.recall_ks), 'corpus_size': int(len(item_ids)),
          'queries': {str(s): int(n) for s, n in zip(scenarios, counts)},
          'recall': recall, 'auc': auc}


def _model_recall(towers: rev.Towers, queries: rev.Queries, item_ids: np.ndarray,
                  item_embeddings: np.ndarray, config: configs.EvaluationConfig) -> dict:
  query_embeddings = rev.embed(towers.user, queries.examples)
  top = rev.exact_top_k(query_embeddings, item_embeddings, max(config.recall_ks))
  return rev.recall_at_k_per_scenario([item_ids[row].tolist() for row in top],
                                      queries.clicked, queries.scenario, config.recall_ks)


def _student_auc(towers: rev.Towers, events: rev.Events, item_ids: np.ndarray,
                 item_embeddings: np.ndarray) -> dict:
  """AUC of <u, v> separating clicks from exposures without a click, per scenario."""
  users = rev.embed(towers.user, events.examples)
  row = {item: i for i, item in enumerate(item_ids)}
  known = np.array([item in row for item in events.item_id])
  items = item_embeddings[[row.get(item, 0) for item in events.item_id]]
  scores = np.where(known, np.sum(users * items, axis=1), np.nan)
  return _auc_per_scenario(events, scores)


def _auc_per_scenario(events: rev.Events, scores: np.ndarray) -> dict:
  result = {}
  for scenario in sorted(set(events.scenario.tolist())) + ['all']:
    mask = (np.ones(len(scores), bool) if scenario == 'all'
            else events.scenario == scenario) & np.isfinite(scores)
    labels = events.label[mask] > 0
    result[scenario] = (float(sk_metrics.roc_auc_score(labels, scores[mask]))
                        if 0 < labels.sum() < len(labels) else None)
  return result


COLUMNS = {'model': 'model', 'previous_blessed': 'blessed', 'popular': 'popular',
           'popular_per_scenario': 'pop/scen'}


def format_summary(result: dict, ks) -> str:
  """Recall per scenario of the model next to the baselines; AUCs; the blessing."""
  recall = result['recall']
  names = [n for n in COLUMNS if recall.get(n)]
  header = ' '.join(f'{COLUMNS[n]}@{k}'.rjust(12) for k in ks for n in names)
  lines = [f'Recall@K over the full corpus of {result["corpus_size"]:,} items, eval split '
           f'(blessed = previous blessed model, pop/scen = most popular per scenario)',
           f'  {"scenario":>8} {"queries":>8} {header}']
  for scenario in list(result['queries']) + ['all']:
    queries = (sum(result['queries'].values()) if scenario == 'all'
               else result['queries'][scenario])
    values = ' '.join(f'{recall[n][scenario][str(k)]:>12.4f}' for k in ks for n in names)
    lines.append(f'  {scenario:>8} {queries:>8,} {values}')
  for name, per_scenario in result['auc'].items():
    aucs = ', '.join(f'{s} {v:.4f}' if v is not None else f'{s} n/a'
                     for s, v in per_scenario.items())
    lines.append(f'  AUC {name} (clicks vs exposures): {aucs}')
  verdict = result.get('blessing')
  if verdict:
    lines.append('  BLESSED' if verdict['blessed'] else
                 '  NOT BLESSED: ' + '; '.join(verdict['reasons']))
  return '\n'.join(lines)
