"""How much of the retrieval logit the two-stage blend needs, measured on the validation
window (recommend.retrieval_weight's default comes from this, not from the test window).

    python -m experiments.retrieval_weight [--pipeline-root outputs/pipeline_root/NAME]
                                           [--queries-per-scenario 300]

Reads a pipeline run's artifacts: the Trainer's retrieval model and the RankerTrainer's
ranker (both trained on the train window), the validation events (queries) and the item
corpus as of the validation window's start. For each query: retrieval's exact top
`--candidates`, then re-ordered by p(task) of each task alone and by p(click) + w * <u, v>
for a grid of w. Prints Recall@50 and NDCG@10 per scenario (in %) for each ordering.
"""

import argparse
import glob
import os

import numpy as np

from core import config as configs
from core import examples as example_files
from core import layout
from ranking import candidates as candidate_lib
from ranking import system
from retrieval import evaluation

GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


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
  ranker = candidate_lib.CandidateRanker(ranker_dir, example_files.records(corpus))
  rows = ranker.items.rows(item_ids)
  probabilities = ranker.score([example_files.to_python(e) for e in queries.examples[drawn]],
                               [rows[row] for row in top])

  counts = {str(s): int(n) for s, n in zip(*np.unique(scenarios, return_counts=True))}
  print(f'validation queries per scenario: {counts}; {args.candidates} candidates each')
  print('ordering                       ' + '  '.join(
      f'{s:>13}' for s in sorted(counts) + ['all']) + '   (Recall@50 / NDCG@10, %)')

  def show(name, scores):
    ranked = [item_ids[row[np.argsort(-s, kind='stable')]][:50].tolist()
              for row, s in zip(top, scores)]
    recall = evaluation.recall_at_k_per_scenario(ranked, truth, scenarios, (50,))
    ndcg = evaluation.mean_per_scenario(system.ndcg(ranked, truth, (10,)), scenarios)
    print(f'{name:30s} ' + '  '.join(
        f'{100 * recall[s]["50"]:6.2f}/{100 * ndcg[s]["10"]:5.2f}' for s in recall))

  show('retrieval (logit)', logits)
  for t, task in enumerate(ranker.tasks):
    show(f'p({task}) alone', [p[:, t] for p in probabilities])
  for weight in GRID:
    show(f'p({ranker.tasks[0]}) + {weight} x logit',
         [p[:, 0] + weight * l for p, l in zip(probabilities, logits)])


if __name__ == '__main__':
  main()
