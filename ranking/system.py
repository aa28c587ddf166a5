"""Offline evaluation of the two-stage system: what retrieval and the ranker each add.

On the test split's queries (retrieval/evaluation.py: one per (user, scenario) with a
click; the truth is the set of items clicked there in the window), three stages rank the
corpus as of the window's start:

  retrieval           the retrieval model's exact top-k (dot products of the towers);
  retrieval_ranker    its top N (RecommendConfig.candidates) re-ordered by the blended
                      score (ranking/candidates.py: the ranker's task probabilities and
                      the retrieval logit, weighted): what serving returns;
  ranker_full_corpus  the ranker alone (the blend's task weights, no retrieval logit; all
                      zero: the first task) over every corpus item: the ranker's upper
                      bound with a perfect candidate generation (not servable).

Per scenario and over all: Recall@k and NDCG@k (binary relevance; IDCG of min(k, |truth|)
hits), with Poisson-bootstrap intervals (retrieval/bootstrap.py) over queries, shared by
every stage, so the differences are paired: retrieval_ranker - retrieval (what the ranker
adds) and ranker_full_corpus - retrieval_ranker (what retrieval loses). Also the
candidates' recall (Recall@N of retrieval: the ceiling of the two stages) and the share of
the full-corpus ranker's top-k that retrieval's N candidates hold.

Scoring the whole corpus costs queries x corpus ranker rows, so at most
`max_queries_per_scenario` queries per scenario are drawn (seeded) and every stage is
measured on the same drawn queries; 'all' is over the drawn queries.
"""

from typing import Sequence

import numpy as np

from core import config as configs
from core import examples as example_files
from ranking import candidates as candidate_lib
from retrieval import bootstrap
from retrieval import evaluation as retrieval_evaluation

RETRIEVAL, TWO_STAGE, FULL_CORPUS = 'retrieval', 'retrieval_ranker', 'ranker_full_corpus'
STAGES = (RETRIEVAL, TWO_STAGE, FULL_CORPUS)
DIFFERENCES = ((TWO_STAGE, RETRIEVAL), (FULL_CORPUS, TWO_STAGE))
METRICS = ('recall', 'ndcg')


def ndcg(ranked: Sequence[Sequence[str]], truth: Sequence[set],
         ks: Sequence[int]) -> dict[int, np.ndarray]:
  """{k: [Q] NDCG@k}: sum of 1 / log2(rank + 1) over the hits in the top k (rank from 1),
  divided by the same sum over min(k, |truth|) hits."""
  discounts = 1.0 / np.log2(np.arange(2, max(ks) + 2))
  result = {}
  for k in ks:
    values = []
    for items, clicked in zip(ranked, truth):
      hits = np.array([item in clicked for item in items[:k]], bool)
      ideal = discounts[:min(k, len(clicked))].sum()
      values.append(float(discounts[:len(hits)][hits].sum() / ideal) if ideal else 0.0)
    result[k] = np.array(values)
  return result


def draw_queries(scenarios: np.ndarray, per_scenario: int, seed: int) -> np.ndarray:
  """Sorted positions of at most `per_scenario` queries of each scenario (seeded)."""
  rng = np.random.default_rng(seed)
  keep = []
  for scenario in sorted(set(scenarios.tolist())):
    positions = np.flatnonzero(scenarios == scenario)
    if len(positions) > per_scenario:
      positions = rng.choice(positions, per_scenario, replace=False)
    keep.append(positions)
  return np.sort(np.concatenate(keep)) if keep else np.zeros([0], np.int64)


def evaluate(model_dir: str, ranker_dir: str, queries_pattern: str, corpus_pattern: str,
             config: configs.RecommendConfig,
             bootstrap_config: configs.EvaluationConfig) -> dict:
  """The stages' metrics on the test queries; see the module docstring. `model_dir`: the
  retrieval model's exported towers; `ranker_dir`: the ranker's SavedModel; the bootstrap
  settings (resamples, seed, confidence) are the retrieval evaluation's."""
  queries = retrieval_evaluation.eval_queries(
      retrieval_evaluation.read_events(queries_pattern))
  available = {str(s): int(n) for s, n in zip(*np.unique(queries.scenario,
                                                           return_counts=True))}
  drawn = draw_queries(queries.scenario, config.max_queries_per_scenario,
                       config.evaluation_seed)
  scenarios = queries.scenario[drawn]
  truth = [queries.clicked[i] for i in drawn]
  examples = queries.examples[drawn]

  towers = retrieval_evaluation.load_towers(model_dir)
  item_ids, item_embeddings = retrieval_evaluation.corpus_embeddings(towers.item,
                                                                     corpus_pattern)
  n = min(config.candidates, len(item_ids))
  user_embeddings = retrieval_evaluation.embed(towers.user, examples)
  top = retrieval_evaluation.exact_top_k(user_embeddings, item_embeddings, n)
  ranker = candidate_lib.CandidateRanker(ranker_dir, example_files.records(corpus_pattern))
  table_rows = ranker.items.rows(item_ids)  # index position -> item table row
  blend = config.scenario_blend(ranker.tasks)
  weights = [candidate_lib.weight_vector(blend.get(str(s), blend['default']), ranker.tasks)
             for s in scenarios]
  users = [example_files.to_python(e) for e in examples]

  k_max = max(config.evaluation_ks)
  ranked = {RETRIEVAL: [item_ids[row[:k_max]].tolist() for row in top]}
  scored = ranker.score(users, [table_rows[row] for row in top])
  ranked[TWO_STAGE] = [
      item_ids[row[candidate_lib.rerank(candidate_lib.with_retrieval(
          p, item_embeddings[row] @ u), w)][:k_max]].tolist()
      for row, p, u, w in zip(top, scored, user_embeddings, weights)]
  full = []
  for start in range(0, len(users), 16):  # 16 users x corpus rows per call, at most
    batch = ranker.score(users[start:start + 16], [table_rows] * len(users[start:start + 16]))
    full += [item_ids[np.argsort(-(p @ _task_weights(w)), kind='stable')[:k_max]].tolist()
             for p, w in zip(batch, weights[start:start + 16])]
  ranked[FULL_CORPUS] = full

  ks = tuple(config.evaluation_ks)
  per_query = {stage: {'recall': retrieval_evaluation.per_query_recall(r, truth, ks),
                       'ndcg': ndcg(r, truth, ks)} for stage, r in ranked.items()}
  for first, second in DIFFERENCES:
    per_query[f'{first}_minus_{second}'] = {
        metric: {k: per_query[first][metric][k] - per_query[second][metric][k] for k in ks}
        for metric in METRICS}
  resamples = bootstrap.poisson_weights(len(truth), bootstrap_config.bootstrap_resamples,
                                        bootstrap_config.bootstrap_seed)
  metrics = {}
  for system, by_metric in per_query.items():
    metrics[system] = {}
    for metric, by_k in by_metric.items():
      intervals = {str(k): bootstrap.grouped_intervals(v, scenarios, resamples,
                                                       bootstrap_config.confidence)
                   for k, v in by_k.items()}
      metrics[system][metric] = {scenario: {k: intervals[k][scenario].to_json()
                                            for k in intervals}
                                 for scenario in next(iter(intervals.values()))}
  candidate_sets = [set(item_ids[row].tolist()) for row in top]
  candidate_recall = retrieval_evaluation.mean_per_scenario(
      retrieval_evaluation.per_query_recall([item_ids[row].tolist() for row in top], truth,
                                            (n,)), scenarios)
  coverage = retrieval_evaluation.mean_per_scenario(
      {k: np.array([len(set(r[:k]) & c) / k for r, c in zip(full, candidate_sets)])
       for k in ks}, scenarios)
  return {
      'stages': list(STAGES), 'ks': list(ks), 'candidates': n,
      'corpus_size': int(len(item_ids)), 'tasks': list(ranker.tasks), 'blend': blend,
      'queries': {str(s): int(c) for s, c in zip(*np.unique(scenarios,
                                                             return_counts=True))},
      'queries_available': available,
      'max_queries_per_scenario': config.max_queries_per_scenario,
      'metrics': metrics,
      'candidate_recall': {s: v[str(n)] for s, v in candidate_recall.items()},
      'ranker_top_k_in_candidates': coverage,
      'bootstrap': {'method': 'poisson', 'resamples': bootstrap_config.bootstrap_resamples,
                    'seed': bootstrap_config.bootstrap_seed,
                    'confidence': bootstrap_config.confidence},
  }


def _task_weights(weights: np.ndarray) -> np.ndarray:
  """[T] the blend's task weights (without the retrieval logit's); all zero: the first."""
  tasks = weights[:-1]
  return tasks if tasks.any() else np.eye(len(tasks), dtype=tasks.dtype)[0]


def format_table(result: dict) -> str:
  """Markdown: scenario x stage x metric@k, each cell point [lower, upper] in %."""
  columns = [(metric, k) for metric in METRICS for k in result['ks']]
  header = ('| scenario (queries) | stage | '
            + ' | '.join(f'{"Recall" if m == "recall" else "NDCG"}@{k}' for m, k in columns)
            + ' |')
  lines = [f'Two-stage system on the test split: retrieval top {result["candidates"]} '
           f'candidates, blend {result["blend"]["default"]} of the ranker\'s probabilities '
           'and the retrieval logit (per-scenario overrides: '
           f'{ {s: w for s, w in result["blend"].items() if s != "default"} or "none"}); '
           f'in %, {int(100 * result["bootstrap"]["confidence"])}% bootstrap intervals over '
           'queries; differences paired.', '', header,
           '|' + '---|' * (2 + len(columns))]
  scenarios = sorted(result['queries']) + ['all']
  rows = list(STAGES) + [f'{a}_minus_{b}' for a, b in DIFFERENCES]
  for scenario in scenarios:
    count = (sum(result['queries'].values()) if scenario == 'all'
             else result['queries'][scenario])
    for row in rows:
      cells = []
      for metric, k in columns:
        cell = result['metrics'][row][metric][scenario][str(k)]
        signed = '_minus_' in row
        significant = signed and (cell['lower'] > 0 or cell['upper'] < 0)
        text = (f'{100 * cell["point"]:+.2f} [{100 * cell["lower"]:+.2f}, '
                f'{100 * cell["upper"]:+.2f}]' if signed else
                f'{100 * cell["point"]:.2f} [{100 * cell["lower"]:.2f}, '
                f'{100 * cell["upper"]:.2f}]')
        cells.append(f'**{text}**' if significant else text)
      name = row.replace('_minus_', ' − ')
      lines.append(f'| {scenario} ({count}) | {name} | ' + ' | '.join(cells) + ' |')
  lines += ['', f'Recall@{result["candidates"]} of the candidates (the two stages\' '
            'ceiling): ' + ', '.join(f'{s} {100 * v:.2f}'
                                     for s, v in result['candidate_recall'].items()),
            'Share of the full-corpus ranker\'s top k among the candidates: ' + '; '.join(
                f'{s} ' + ', '.join(f'@{k} {100 * v:.1f}' for k, v in by_k.items())
                for s, by_k in result['ranker_top_k_in_candidates'].items()),
            f'Queries drawn per scenario: at most {result["max_queries_per_scenario"]} '
            f'(available: {result["queries_available"]}); bold: the interval excludes 0.']
  return '\n'.join(lines)
