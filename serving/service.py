"""The HTTP service: FastAPI app over a hot-swappable release.

    python -m serving serve --release outputs/releases/latest [--port 8000]

Endpoints (OpenAPI docs at /docs, schema at /openapi.json):
  POST /v1/retrieve   {"user_id": "5", "scenario": "1", "k": 50} or
                      {"requests": [{"user_id": ..., "scenario": ..., "features": {...}}],
                       "k": 50, "exact": false}
                      -> {"release": version, "results": [{user_id, scenario, items,
                          scores, known_user}]}
  POST /v1/recommend  {"user_id": "5", "scenario": "1", "k": 10, "candidates": 200,
                       "exclude": ["42"], "weights": {"like": 2}} or
                      {"requests": [{user_id, scenario, features, exclude, weights}], "k",
                       "candidates"}
                      -> {"release", "ranker", "candidates", "results": [{user_id,
                          scenario, items, scores, probabilities, retrieval_scores,
                          weights, known_user}]}: retrieval + the release's ranker
                          (serving/recommender.py); 409 when the release has no ranker
  GET  /healthz       -> {"status": "ok", "release": version}
  GET  /v1/release    -> version, corpus size, scenarios, Recall@K metrics, ScaNN recall
  POST /admin/reload  {"release": path} (optional; default: the path the service started
                      with, e.g. a `latest` link) -> the new version, or 409 and the old
                      release keeps serving. SIGHUP does the same with the start path.

A bad request (unknown scenario, k out of range, malformed body, too many requests) is
HTTP 400 with {"error": ..., "field": ...}. A swap loads and checks the new release
completely before it replaces the old one; requests in flight finish on the release they
started with. The holder swaps one object holding both stages (Recommender: the
release's retriever and ranker), and every request reads that reference once: an answer
comes from one release's retriever and ranker, never a mix.
"""

import signal
import threading
from typing import Any, Optional

from absl import logging
import fastapi
from fastapi import responses
from fastapi.exceptions import RequestValidationError
import pydantic

from serving import recommender as recommender_lib
from serving.release import load_release
from serving.release import ReleaseLoadError
from serving.retriever import RequestError
from serving.retriever import parse_request


class ServingLimits(pydantic.BaseModel):
  max_requests: int = 1000  # requests in one POST /v1/retrieve
  max_k: int = 1000
  max_body_bytes: int = 4 << 20


class ReleaseHolder:
  """The release being served; `reload` swaps in another only when it loads cleanly."""

  def __init__(self, path: str, verify_checksums: bool = True):
    self.path = path
    self._verify = verify_checksums
    self._lock = threading.Lock()  # one reload at a time
    self.current = recommender_lib.Recommender(load_release(path, verify_checksums))

  def reload(self, path: Optional[str] = None) -> tuple[str, str]:
    """(old version, new version); ReleaseLoadError leaves the current release serving."""
    with self._lock:
      loaded = recommender_lib.Recommender(load_release(path or self.path, self._verify))
      old = self.current.version
      self.current = loaded  # one reference assignment: atomic for readers
      logging.info('now serving release %s (was %s)', loaded.version, old)
      return old, loaded.version


class RequestModel(pydantic.BaseModel):
  user_id: str | int
  scenario: str | int
  features: dict[str, Any] = {}


class RetrieveBody(pydantic.BaseModel):
  """One request (user_id, scenario) or several (requests)."""
  user_id: Optional[str | int] = None
  scenario: Optional[str | int] = None
  features: dict[str, Any] = {}
  requests: Optional[list[RequestModel]] = None
  k: int = 50
  exact: bool = False


class RecommendRequestModel(RequestModel):
  exclude: list[str | int] = []
  weights: dict[str, Any] = {}


class RecommendBody(pydantic.BaseModel):
  """One request (user_id, scenario) or several (requests); k of `candidates`."""
  user_id: Optional[str | int] = None
  scenario: Optional[str | int] = None
  features: dict[str, Any] = {}
  exclude: list[str | int] = []
  weights: dict[str, Any] = {}
  requests: Optional[list[RecommendRequestModel]] = None
  k: int = 10
  candidates: Optional[int] = None


def _raw_requests(body, limits: ServingLimits, single_fields: tuple[str, ...]) -> list:
  """The body's requests as mappings (one, or `requests`); RequestError names a bad field."""
  if body.requests is not None:
    if body.user_id is not None or body.scenario is not None:
      raise RequestError('requests', 'give either requests or user_id and scenario')
    raw = [r.model_dump() for r in body.requests]
  else:
    raw = [{field: getattr(body, field) for field in single_fields}]
    for field in ('user_id', 'scenario'):
      if raw[0][field] is None:
        raise RequestError(field, 'is missing; send user_id and scenario, or requests')
  if not 1 <= len(raw) <= limits.max_requests:
    raise RequestError('requests', f'send 1 to {limits.max_requests} requests, got '
                       f'{len(raw)}')
  return raw


def _parsed(body, raw: list, parse) -> list:
  """parse(raw request) for each; a RequestError's field gets the request's position."""
  parsed = []
  for i, r in enumerate(raw):
    try:
      parsed.append(parse(r))
    except RequestError as e:
      prefix = f'requests.{i}.' if body.requests is not None else ''
      raise RequestError(prefix + e.field, e.reason) from None
  return parsed


class ReloadBody(pydantic.BaseModel):
  release: Optional[str] = None


def _bad_request(field: str, message: str) -> responses.JSONResponse:
  return responses.JSONResponse({'error': f'{field}: {message}', 'field': field}, 400)


def create_app(holder: ReleaseHolder, limits: ServingLimits = ServingLimits()
               ) -> fastapi.FastAPI:
  app = fastapi.FastAPI(title='DSMOE multi-scenario retrieval',
                        description='Top-K items for a user in a scenario.')

  @app.exception_handler(RequestValidationError)
  async def _invalid(_, exc: RequestValidationError):
    error = exc.errors()[0]
    field = '.'.join(str(p) for p in error['loc'] if p != 'body') or 'body'
    return _bad_request(field, error['msg'])

  @app.exception_handler(RequestError)
  async def _request_error(_, exc: RequestError):
    return _bad_request(exc.field, exc.reason)

  @app.middleware('http')
  async def _limit_body(request: fastapi.Request, call_next):
    length = request.headers.get('content-length')
    if length and length.isdigit() and int(length) > limits.max_body_bytes:
      return responses.JSONResponse(
          {'error': f'body: {length} bytes, at most {limits.max_body_bytes} allowed; '
                    'split the requests', 'field': 'body'}, 413)
    return await call_next(request)

  @app.exception_handler(recommender_lib.NoRankerError)
  async def _no_ranker(_, exc: recommender_lib.NoRankerError):
    return responses.JSONResponse({'error': str(exc), 'field': 'release'}, 409)

  @app.get('/healthz')
  def healthz():
    return {'status': 'ok', 'release': holder.current.version}

  @app.get('/v1/release')
  def release_info():
    release = holder.current.release
    manifest = release.manifest
    return {'version': release.version, 'path': release.path,
            'created': manifest.get('created'), 'dataset': manifest.get('dataset'),
            'corpus_size': release.corpus_size, 'dimension': manifest['index']['dimension'],
            'scenarios': list(release.scenarios), 'ks': manifest.get('ks'),
            'recall': manifest.get('recall'),
            'scann_recall_vs_exact': manifest['index'].get('recall_vs_exact'),
            'ranker': manifest.get('ranker'), 'recommend': release.recommend,
            'limits': limits.model_dump()}

  @app.post('/v1/retrieve')
  def retrieve(body: RetrieveBody):
    retriever = holder.current.retriever  # this request's release, whatever reloads meanwhile
    raw = _raw_requests(body, limits, ('user_id', 'scenario', 'features'))
    k = retriever.check_k(body.k, limits.max_k)

    def check(raw_request):
      request = parse_request(raw_request)
      return request, retriever.check(request)

    pairs = _parsed(body, raw, check)
    results = retriever.retrieve_checked([p[0] for p in pairs], [p[1] for p in pairs], k,
                                         body.exact)
    return {'release': retriever.version, 'results': [r.to_json() for r in results]}

  @app.post('/v1/recommend')
  def recommend(body: RecommendBody):
    current = holder.current  # both stages of this request's release
    current.require_ranker()
    raw = _raw_requests(body, limits, ('user_id', 'scenario', 'features', 'exclude',
                                       'weights'))
    candidates = current.check_candidates(body.candidates)
    k = current.check_k(body.k, candidates)

    def check(raw_request):
      request = recommender_lib.parse_recommend_request(raw_request)
      return request, current.check(request)

    pairs = _parsed(body, raw, check)
    results = current.recommend_checked([p[0] for p in pairs], [p[1] for p in pairs], k,
                                        candidates)
    return {'release': current.version, 'ranker': current.ranker_id, 'candidates': candidates, 'results': [r.to_json() for r in results]}

  @app.post('/admin/reload')
  def reload(body: ReloadBody = ReloadBody()):
    try:
      old, new = holder.reload(body.release)
    except ReleaseLoadError as e:
      return responses.JSONResponse(
          {'error': str(e), 'serving': holder.current.version}, 409)
    return {'previous': old, 'release': new}

  return app


def install_reload_signal(holder: ReleaseHolder) -> None:
  """SIGHUP reloads the start path in a background thread (the old release keeps serving
  if the new one is broken)."""

  def reload_in_background(*_):
    def run():
      try:
        holder.reload()
      except ReleaseLoadError as e:
        logging.error('reload refused, still serving %s: %s', holder.current.version, e)
    threading.Thread(target=run, daemon=True).start()

  signal.signal(signal.SIGHUP, reload_in_background)
