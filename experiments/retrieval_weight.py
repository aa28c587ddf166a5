"""How much of the retrieval logit the two-stage blend needs, measured on the validation
window (recommend.retrieval_weight's default comes from this, not from the test window).

    python -m experiments.retrieval_weight [--pipeline-root outputs/pipeline_root/NAME]
                                           [--queries-per-scenario 300]

Reads a pipeline run's artifacts: the Trainer's retrieval model and teacher, the
RankerTrainer's ranker (all trained on the train window), the validation events (queries)
and the item corpus as of the validation window's start. For each query: retrieval's exact
top `--candidates`, then re-ordered by
  - p(task) of each task alone, and p(click) + w * <u, v> for a grid of w (the serving
    blend, recommend.retrieval_weight);
  - <u, v> + w * log p(click) (the ranker as a factor of the retrieval score: the product
    of an entire-space score and p(click | shown), ESMM's factorisation, Ma et al. 2018);
  - the teacher's logit alone and <u, v> + w * teacher logit: the teacher is trained on
    the retrieval task itself (clicks against random items) with the joint features, so
    it is the "ranker trained for the served list" candidate that needs no new training.
Prints Recall@10, Recall@50 and NDCG@10 per scenario (in %) for each ordering.
"""

import argparse
import glob
import os
from typing import Sequence

import numpy as np
import tensorflow as tf

from core import config as configs
from core import examples as example_files
from core import layout
from ranking import candidates as candidate_lib
from ranking import system
from retrieval import evaluation

GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
FACTOR_GRID = (0.1, 0.3, 1.0)  # weights of log p(click) and of the teacher's logit


def candidate_examples(query: bytes, items: Sequence[tf.train.Example]) -> list[bytes]:
  """The query's tf.Example once per candidate: every feature an item example has (its
  id, features and time-dependent counts) is the candidate's; the rest (the user, the
  history, the scenario) is the query's. The query's own item leaves no feature behind:
  a feature of the item side missing from a candidate is absent, not the query item's."""
  base = tf.train.Example.FromString(query)
  for item in items:
    for name in item.features.feature:
      if name in base.features.feature:
        del base.features.feature[name]
  examples = []
  for item in items:
    example = tf.train.Example()
    example.CopyFrom(base)
    for name, value in item.features.feature.items():
      example.features.feature[name].CopyFrom(value)
    examples.append(example.SerializeToString())
  return examples


def _one(pattern: str) -> str:
  found = sorted(glob.glob(pattern))
  if not found:
    raise SystemExit(f'nothing matches {pattern}: run the pipeline (make run) first')
  return found[-1]  # the latest run's artifact


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--pipeline-root', default=configs.PipelineConfig().pipeline_root)
  parser.add_argument('--queries-per-scenario', type=int, default=300)
  parser.add_argument('--candidates', type=int, default=configs.RecommendConfig().candidates)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args(argv)
  root = args.pipeline_root
  model = _one(os.path.join(root, 'DistillationTrainer', 'model', '*', 'Format-Serving'))
  ranker_dir = _one(os.path.join(root, 'RankerTrainer', 'model', '*', 'Format-Serving'))
  teacher_dir = os.path.join(_one(os.path.join(root, 'DistillationTrainer', 'teacher_model',
                                               '*')), layout.TEACHER_SERVING_DIR)
  examples = _one(os.path.join(root, 'InteractionExampleGen', 'examples', '*'))
  corpus = layout.split_pattern(
      _one(os.path.join(root, 'InteractionExampleGen', 'item_corpus', '*')), layout.TRAIN)

  queries = evaluation.eval_queries(evaluation.read_events(
      layout.split_pattern(examples, layout.VALIDATION)))
  drawn = system.draw_queries(queries.scenario, args.queries_per_scenario, args.seed)
  scenarios = queries.scenario[drawn]
  truth = [queries.clicked[i] for i in drawn]
  towers = evaluation.load_towers(model)
  item_ids, item_embeddings = evaluation.corpus_embeddings(towers.item, corpus)
  users = evaluation.embed(towers.user, queries.examples[drawn])
  top = evaluation.exact_top_k(users, item_embeddings, args.candidates)
  logits = np.einsum('bd,bkd->bk', users, item_embeddings[top])
  corpus_records = list(example_files.records(corpus))
  ranker = candidate_lib.CandidateRanker(ranker_dir, corpus_records)
  rows = ranker.items.rows(item_ids)
  probabilities = ranker.score([example_files.to_python(e) for e in queries.examples[drawn]],
                               [rows[row] for row in top])

  counts = {str(s): int(n) for s, n in zip(*np.unique(scenarios, return_counts=True))}
  print(f'validation queries per scenario: {counts}; {args.candidates} candidates each')
  print('ordering                          ' + '  '.join(
      f'{s:>19}' for s in sorted(counts) + ['all']) + '   (Recall@10 / Recall@50 / NDCG@10, %)')

  def show(name, scores):
    ranked = [item_ids[row[np.argsort(-s, kind='stable')]][:50].tolist()
              for row, s in zip(top, scores)]
    recall = evaluation.recall_at_k_per_scenario(ranked, truth, scenarios, (10, 50))
    ndcg = evaluation.mean_per_scenario(system.ndcg(ranked, truth, (10,)), scenarios)
    print(f'{name:33s} ' + '  '.join(
        f'{100 * recall[s]["10"]:5.2f}/{100 * recall[s]["50"]:5.2f}/{100 * ndcg[s]["10"]:5.2f}'
        for s in recall), flush=True)

  show('retrieval (logit)', logits)
  for t, task in enumerate(ranker.tasks):
    show(f'p({task}) alone', [p[:, t] for p in probabilities])
  for weight in GRID:
    show(f'p({ranker.tasks[0]}) + {weight} x logit',
         [p[:, 0] + weight * l for p, l in zip(probabilities, logits)])
  log_click = [np.log(np.maximum(p[:, 0], 1e-7)) for p in probabilities]
  for weight in FACTOR_GRID:
    show(f'logit + {weight} x log p({ranker.tasks[0]})',
         [l + weight * c for l, c in zip(logits, log_click)])

  teacher = tf.saved_model.load(teacher_dir).signatures[layout.TEACHER_EXAMPLES_SIGNATURE]
  corpus_examples = [tf.train.Example.FromString(r) for r in corpus_records]
  teacher_logits = [teacher(examples=tf.constant(candidate_examples(
      query, [corpus_examples[rows[i]] for i in row])))[layout.LOGIT_OUTPUT].numpy()
                    for query, row in zip(queries.examples[drawn], top)]
  show('teacher logit alone', teacher_logits)
  for weight in FACTOR_GRID:
    show(f'logit + {weight} x teacher logit',
         [l + weight * t for l, t in zip(logits, teacher_logits)])


if __name__ == '__main__':
  main()
