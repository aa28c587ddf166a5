"""Two releases (or model directories) on the same queries: Recall@K per scenario of each
over the same item corpus, with intervals of the paired difference.

    python -m experiments.compare_releases MODEL BASELINE --examples DIR --corpus DIR \
        [--split test] [--json out.json]

MODEL and BASELINE: directories with user_tower/ and item_tower/ (a release, or a
Trainer's Format-Serving). DIR: the raw Examples and item corpus artifacts of an
ingestion (outputs/pipeline_root/.../InteractionExampleGen/examples/<id>, item_corpus/
<id>); the queries are the split's clicks, the corpus the same split's items (the test
split: events of the newest days with features as of their window's start, items as of
it). It is how a refreshed release was checked against a full retrain on the day after
its data (README, Daily refresh): the Evaluator's own code (retrieval/evaluation.compare,
the paired Poisson bootstrap of evaluation.*).
"""

import argparse
import json
import sys

from core import config as configs
from core import layout
from retrieval import evaluation
from retrieval import report


def compare(model: str, baseline: str, examples: str, corpus: str, split: str,
            config: configs.EvaluationConfig) -> dict:
  """evaluation.compare of `model` against `baseline` on `split` of the two artifacts."""
  return evaluation.compare(model, baseline, layout.split_pattern(examples, split),
                            layout.split_pattern(corpus, split), config)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('model')
  parser.add_argument('baseline')
  parser.add_argument('--examples', required=True, help='an Examples artifact directory')
  parser.add_argument('--corpus', required=True, help='an item corpus artifact directory')
  parser.add_argument('--split', default=layout.TEST)
  parser.add_argument('--json', default='', help='also write the comparison here')
  args = parser.parse_args(argv)
  result = compare(args.model, args.baseline, args.examples, args.corpus, args.split,
                   configs.EvaluationConfig())
  print(f'{args.model}\nagainst {args.baseline}\n'
        + report.format_comparison(result).replace('the previous blessed model',
                                                   'the baseline'))
  if args.json:
    with open(args.json, 'w', encoding='utf-8') as f:
      json.dump(result, f, indent=2)
  return 0


if __name__ == '__main__':
  sys.exit(main())
