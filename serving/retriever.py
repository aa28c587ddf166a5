"""Top-K items for (user, scenario) requests against a loaded release.

    retriever = Retriever(load_release('outputs/releases/latest'))
    [result] = retriever.retrieve([RetrievalRequest('5', '1')], k=50)

A known user (in the release's user snapshot) is embedded from the snapshot's features and
behaviour sequence as of the data cutoff; features given in the request override them.
An unknown user id maps to the OOV id embedding, with the features the request gives
(missing categorical features: the unknown-category embedding; missing numeric: 0; no
history: an empty sequence); the result says `known_user: false`.

Search: ScaNN (the release's index) or, with exact=True, brute force over every item
embedding. Scores are the dot products <u, v> (the model's logits).
"""

import dataclasses
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from core import feature_names as fnames
from core import layout
from retrieval import evaluation
from serving.release import Release

# List-valued request features in a CSV cell are separated by this.
CSV_LIST_SEPARATOR = '|'
MAX_EXCLUDE = 1000  # excluded item ids per request


class RequestError(ValueError):
  """A request is malformed; `field` names the offending field."""

  def __init__(self, field: str, message: str):
    super().__init__(f'{field}: {message}')
    self.field = field
    self.reason = message


@dataclasses.dataclass(frozen=True)
class RetrievalRequest:
  user_id: str
  scenario: str  # the raw scenario value, as in the logs
  features: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  exclude: tuple[str, ...] = ()  # item ids never to return (e.g. already seen)


@dataclasses.dataclass(frozen=True)
class Retrieval:
  user_id: str
  scenario: str
  items: list[str]
  scores: list[float]
  known_user: bool

  def top(self, k: int) -> 'Retrieval':
    return dataclasses.replace(self, items=self.items[:k], scores=self.scores[:k])

  def to_json(self) -> dict:
    return {'user_id': self.user_id, 'scenario': self.scenario, 'items': self.items,
            'scores': self.scores, 'known_user': self.known_user}


def _scalar_text(value, field: str) -> str:
  if isinstance(value, bool) or value is None or not isinstance(value, (str, int, float)):
    raise RequestError(field, f'must be a string or a number, got {value!r}')
  if isinstance(value, float) and value.is_integer():
    value = int(value)
  text = str(value).strip()
  if not text:
    raise RequestError(field, 'must not be empty')
  return text


def bounded_int(field: str, value: Any, low: int, high: int, what: str = '') -> int:
  """value when it is an integer in [low, high]; else RequestError naming the field."""
  if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
    raise RequestError(field, f'must be an integer from {low} to {high}{what}, got '
                       f'{value!r}')
  return value


def _exclude(value: Any) -> tuple[str, ...]:
  """Item ids from a JSON list or a CSV cell of ids separated by |."""
  if value in (None, ''):
    return ()
  if isinstance(value, str):
    value = [v for v in value.split(CSV_LIST_SEPARATOR) if v]
  if not isinstance(value, (list, tuple)):
    raise RequestError('exclude', 'must be a list of item ids')
  if len(value) > MAX_EXCLUDE:
    raise RequestError('exclude', f'at most {MAX_EXCLUDE} item ids, got {len(value)}')
  texts = []
  for item in value:
    if isinstance(item, bool) or not isinstance(item, (str, int)) or not str(item).strip():
      raise RequestError('exclude', f'item ids are strings or integers, got {item!r}')
    texts.append(str(item).strip())
  return tuple(texts)


def parse_request(raw: Mapping[str, Any]) -> RetrievalRequest:
  """A request from a JSON object or CSV row: user_id, scenario, optional features and
  optional `exclude` (item ids; CSV: ids separated by |).

  Features come as a `features` mapping (JSON) or as further keys/columns (CSV).
  """
  if not isinstance(raw, Mapping):
    raise RequestError('request', f'must be an object with user_id and scenario, got '
                       f'{type(raw).__name__}')
  for field in ('user_id', 'scenario'):
    if field not in raw:
      raise RequestError(field, 'is missing; every request needs user_id and scenario')
  features = dict(raw.get('features') or {})
  if not isinstance(raw.get('features') or {}, Mapping):
    raise RequestError('features', 'must be an object of feature name -> value')
  for key, value in raw.items():
    if key not in ('user_id', 'scenario', 'features', 'k', 'exclude') and value not in (
        '', None):
      features[key] = value
  return RetrievalRequest(_scalar_text(raw['user_id'], 'user_id'),
                          _scalar_text(raw['scenario'], 'scenario'), features,
                          _exclude(raw.get('exclude')))


class Retriever:
  """Embeds requests with the release's user tower and searches its index."""

  def __init__(self, release: Release):
    self.release = release
    self._scenarios = set(release.scenarios)
    self._lists = {name for name, spec in release.input_specs.items()
                   if spec.shape.rank == 2}
    self._numeric = {name for name, spec in release.input_specs.items()
                     if spec.dtype.is_floating}
    # Request features: every raw input of the user tower except the ones set here.
    self._request_features = sorted(set(release.input_specs) - {fnames.USER_ID, fnames.SCENARIO})

  @property
  def version(self) -> str:
    return self.release.version

  def check_k(self, k: Any, max_k: Optional[int] = None) -> int:
    corpus = self.release.corpus_size
    return bounded_int('k', k, 1, min(corpus, max_k or corpus),
                       f' (the corpus has {corpus:,} items)')

  def _feature_values(self, name: str, value: Any) -> list:
    field = f'features.{name}'
    if name not in self.release.input_specs or name in (fnames.USER_ID, fnames.SCENARIO):
      raise RequestError(field, 'is not a user feature of this release; known features: '
                         + ', '.join(self._request_features))
    if name in self._lists:
      if isinstance(value, str):
        value = [v for v in value.split(CSV_LIST_SEPARATOR) if v]
      if not isinstance(value, (list, tuple)):
        raise RequestError(field, 'must be a list')
      return [_scalar_text(v, field) for v in value]
    if isinstance(value, (list, tuple)):
      raise RequestError(field, f'takes one value, got a list {value!r}')
    if name in self._numeric:
      try:
        number = float(value)
      except (TypeError, ValueError):
        number = float('nan')
      if isinstance(value, bool) or not np.isfinite(number):
        raise RequestError(field, f'must be a finite number, got {value!r}')
      return [number]
    return [_scalar_text(value, field)]

  def check(self, request: RetrievalRequest) -> dict:
    """The request's raw user-tower inputs; RequestError names a bad field."""
    if request.scenario not in self._scenarios:
      raise RequestError('scenario', f'unknown scenario {request.scenario!r}; this release '
                         f'serves {", ".join(self.release.scenarios)}')
    values = dict(self.release.snapshot.get(request.user_id, {}))
    for name, value in request.features.items():
      values[name] = self._feature_values(name, value)
    values[fnames.USER_ID] = [request.user_id]
    values[fnames.SCENARIO] = [request.scenario]
    return values

  def embed(self, inputs: Sequence[dict]) -> np.ndarray:
    """User embeddings [B, d] for checked inputs (from `check`)."""
    tensors = {}
    for name, spec in self.release.input_specs.items():
      blank = 0.0 if spec.dtype.is_floating else ''
      if name in self._lists:
        width = max([1] + [len(v.get(name, ())) for v in inputs])
        rows = [list(v.get(name, ())) + [blank] * (width - len(v.get(name, ())))
                for v in inputs]
      else:
        rows = [v.get(name, [blank])[0] for v in inputs]
      tensors[name] = tf.constant(rows, dtype=spec.dtype)
    return self.release.user_signature(**tensors)[layout.EMBEDDING_OUTPUT].numpy()

  def search(self, queries: np.ndarray, k: int,
             exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(item indices [B, k], scores [B, k]), best first."""
    if exact:
      return self._exact(queries, k)
    indices, scores = self.release.searcher.search_batched(
        queries, final_num_neighbors=k,
        pre_reorder_num_neighbors=max(k, self.release.reorder_candidates))
    indices, scores = np.array(indices), np.array(scores)
    # Where the searched leaves held fewer than k items ScaNN pads with NaN scores: those
    # queries are answered exactly.
    short = ~np.isfinite(scores).all(axis=1) | (indices.shape[1] < k)
    if short.any():
      if indices.shape[1] < k:
        return self._exact(queries, k)
      indices[short], scores[short] = self._exact(queries[short], k)
    return indices, scores

  def search_excluding(self, queries: np.ndarray, k: int, excludes: Sequence[Sequence[str]],
                       exact: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per query, (item indices, scores) of its best k items not in its excludes.

    The search asks for k + the longest exclusion list, so k remain whatever the excluded
    items' ranks (fewer only when the corpus runs out)."""
    depth = min(self.release.corpus_size, k + max([0] + [len(e) for e in excludes]))
    indices, scores = self.search(queries, depth, exact)
    ids = self.release.item_ids
    kept = []
    for row, score_row, exclude in zip(indices, scores, excludes):
      if exclude:
        excluded = set(exclude)
        keep = np.array([ids[i] not in excluded for i in row], bool)
        keep = np.flatnonzero(keep)[:k]
        kept.append((row[keep], score_row[keep]))
      else:
        kept.append((row[:k], score_row[:k]))
    return kept

  def _exact(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    items = self.release.item_embeddings
    indices = evaluation.exact_top_k(queries, items, k)
    return indices, np.einsum('bd,bkd->bk', queries, items[indices])

  def retrieve(self, requests: Sequence[RetrievalRequest], k: int,
               exact: bool = False) -> list[Retrieval]:
    """Results in request order; RequestError for the first bad request."""
    return self.retrieve_checked(requests, [self.check(r) for r in requests], k, exact)

  def retrieve_checked(self, requests: Sequence[RetrievalRequest], inputs: Sequence[dict],
                       k: int, exact: bool = False) -> list[Retrieval]:
    """Results for requests whose inputs `check` already returned."""
    if not requests:
      return []
    found = self.search_excluding(self.embed(inputs), k, [r.exclude for r in requests],
                                  exact)
    ids = self.release.item_ids
    return [Retrieval(r.user_id, r.scenario, ids[row].tolist(),
                      [round(float(s), 6) for s in score_row],
                      r.user_id in self.release.snapshot)
            for r, (row, score_row) in zip(requests, found)]
