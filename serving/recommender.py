"""Two-stage recommendation: retrieve candidates with the release's index, rank them with
its ranker, return the top-k by the blended task score.

    recommender = Recommender(load_release('outputs/releases/latest'))
    request = parse_recommend_request({'user_id': '5', 'scenario': '1', 'exclude': ['7']})
    [result] = recommender.recommend([request], k=10)

Per request: the user is embedded as for retrieval (serving/retriever.py: snapshot
features, request overrides, unknown users); the index returns the N + |exclude| best
items (N: `candidates`, by default the release's recommend.json), excluded items are
dropped and the first N kept; the ranker (ranking/candidates.py) scores them from the same
user inputs and each item's features in the release's item corpus; the blended score
sum_t w_t p_t + w_retrieval <u, v> orders them, w being the scenario's weights in
recommend.json (`retrieval`: the weight of the retrieval logit), of which a request may
override some within [0, max_weight]. A result holds the top-k items with their blended
scores, each task's probability and the retrieval score (<u, v>).

Both stages come from one Release object: a service swaps the whole Recommender, so a
request is never answered by one release's retriever and another's ranker.
"""

import dataclasses
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from core.config import BLEND_RETRIEVAL
from ranking import candidates as candidate_lib
from serving.release import Release
from serving.retriever import bounded_int
from serving.retriever import parse_request
from serving.retriever import RequestError
from serving.retriever import RetrievalRequest
from serving.retriever import Retriever

WEIGHT_COLUMN = 'weight.'  # CSV: a column weight.<task> overrides that task's weight


class NoRankerError(Exception):
  """The release being served has no ranker: it can retrieve, not recommend."""


@dataclasses.dataclass(frozen=True)
class RecommendRequest:
  retrieval: RetrievalRequest  # user_id, scenario, feature overrides, excluded items
  weights: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # task -> weight

  @property
  def user_id(self) -> str:
    return self.retrieval.user_id


@dataclasses.dataclass(frozen=True)
class Checked:
  """A request checked against the release: user inputs, blend weights, exclusions."""
  inputs: dict
  weights: np.ndarray  # [T], in the ranker's task order
  exclude: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Recommendation:
  user_id: str
  scenario: str
  items: list[str]
  scores: list[float]  # blended
  probabilities: dict[str, list[float]]  # task -> [k]
  retrieval_scores: list[float]  # <u, v> of each item
  weights: dict[str, float]
  known_user: bool

  def top(self, k: int) -> 'Recommendation':
    return dataclasses.replace(
        self, items=self.items[:k], scores=self.scores[:k],
        probabilities={t: p[:k] for t, p in self.probabilities.items()},
        retrieval_scores=self.retrieval_scores[:k])

  def to_json(self) -> dict:
    return dataclasses.asdict(self)


def parse_recommend_request(raw: Mapping[str, Any]) -> RecommendRequest:
  """A recommend request from a JSON object or CSV row: the retrieval request's fields,
  optional `exclude` (list; CSV: ids separated by |) and `weights` (task -> weight; CSV:
  columns weight.<task>)."""
  if not isinstance(raw, Mapping):
    raise RequestError('request', f'must be an object with user_id and scenario, got '
                       f'{type(raw).__name__}')
  rest = dict(raw)
  weights = rest.pop('weights', None) or {}
  if not isinstance(weights, Mapping):
    raise RequestError('weights', 'must be an object of task -> weight')
  weights = dict(weights)
  for key in [k for k in rest if isinstance(k, str) and k.startswith(WEIGHT_COLUMN)]:
    value = rest.pop(key)
    if value not in ('', None):
      weights[key[len(WEIGHT_COLUMN):]] = value
  return RecommendRequest(parse_request(rest), weights)


class Recommender:
  """The release's retriever and ranker; `recommend` answers requests with both."""

  def __init__(self, release: Release):
    self.release = release
    self.retriever = Retriever(release)

  @property
  def version(self) -> str:
    return self.release.version

  @property
  def ranker_id(self) -> str:
    """<architecture>-<fingerprint[:12]> of the ranker ('' without one)."""
    entry = self.release.manifest.get('ranker') or {}
    return f'{entry["model"]}-{entry["fingerprint"][:12]}' if self.release.ranker else ''

  @property
  def tasks(self) -> tuple[str, ...]:
    return self.release.ranker.tasks if self.release.ranker else ()

  def require_ranker(self) -> None:
    if self.release.ranker is None:
      raise NoRankerError(
          f'release {self.version} has no ranker ({self.release.no_ranker}); it can '
          'retrieve (query, /v1/retrieve) but not recommend: serve a release with a blessed '
          'ranker')

  def check_candidates(self, candidates: Any) -> int:
    """N, the number of candidates to retrieve and rank (None: the release's default)."""
    settings = self.release.recommend
    if candidates is None:
      return min(settings['candidates'], self.release.corpus_size)
    return bounded_int('candidates', candidates, 1,
                       min(settings['max_candidates'], self.release.corpus_size))

  def check_k(self, k: Any, candidates: int) -> int:
    return bounded_int('k', k, 1, candidates, ' (the candidates)')

  def check(self, request: RecommendRequest) -> Checked:
    """RequestError names a bad field; NoRankerError when the release has no ranker."""
    self.require_ranker()
    inputs = self.retriever.check(request.retrieval)
    settings = self.release.recommend
    blend = dict(settings['blend'].get(request.retrieval.scenario,
                                       settings['blend']['default']))
    for task, weight in request.weights.items():
      field = f'weights.{task}'
      if task not in blend:
        raise RequestError(field, f'not a task of this release\'s ranker nor '
                           f'{BLEND_RETRIEVAL!r} (tasks: {", ".join(self.tasks)})')
      try:
        number = float(weight)
      except (TypeError, ValueError):
        number = float('nan')
      if isinstance(weight, bool) or not 0 <= number <= settings['max_weight']:
        raise RequestError(field, f'must be a number from 0 to {settings["max_weight"]}, '
                           f'got {weight!r}')
      blend[task] = number
    if not any(blend.values()):
      raise RequestError('weights', 'everything weighs 0: give a task or the retrieval a '
                         'weight above 0')
    return Checked(inputs, candidate_lib.weight_vector(blend, self.tasks),
                   request.retrieval.exclude)

  def recommend(self, requests: Sequence[RecommendRequest], k: int,
                candidates: Optional[int] = None) -> list[Recommendation]:
    """Results in request order; RequestError for the first bad request."""
    n = self.check_candidates(candidates)
    return self.recommend_checked(requests, [self.check(r) for r in requests],
                                  self.check_k(k, n), n)

  def recommend_checked(self, requests: Sequence[RecommendRequest],
                        checked: Sequence[Checked], k: int,
                        candidates: int) -> list[Recommendation]:
    """Results for requests that `check` passed, with k and candidates checked."""
    if not requests:
      return []
    release = self.release
    found = self.retriever.search_excluding(
        self.retriever.embed([c.inputs for c in checked]), candidates,
        [c.exclude for c in checked])
    probabilities = release.ranker.score([c.inputs for c in checked],
                                         [release.item_rows[row] for row, _ in found])
    results = []
    for request, check, (row, scores), p in zip(requests, checked, found, probabilities):
      columns = candidate_lib.with_retrieval(p, scores)
      order = candidate_lib.rerank(columns, check.weights)[:k]
      blended = candidate_lib.blend(columns[order], check.weights)
      results.append(Recommendation(
          user_id=request.retrieval.user_id, scenario=request.retrieval.scenario,
          items=release.item_ids[row[order]].tolist(),
          scores=[round(float(s), 6) for s in blended],
          probabilities={t: [round(float(v), 6) for v in p[order, i]]
                         for i, t in enumerate(self.tasks)},
          retrieval_scores=[round(float(s), 6) for s in scores[order]],
          weights={c: float(w) for c, w in zip(candidate_lib.blend_columns(self.tasks),
                                               check.weights)},
          known_user=request.retrieval.user_id in release.snapshot))
    return results
