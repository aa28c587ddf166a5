"""The HTTP service: FastAPI app over a hot-swappable release.

    python -m serving serve --release outputs/releases/latest [--port 8000]

Endpoints (OpenAPI docs at /docs, schema at /openapi.json):
  POST /v1/retrieve   {"user_id": "5", "scenario": "1", "k": 50} or
                      {"requests": [{"user_id": ..., "scenario": ..., "features": {...}}],
                       "k": 50, "exact": false}
                      -> {"release": version, "results": [{user_id, scenario, items,
                          scores, known_user}]}
  GET  /healthz       -> {"status": "ok", "release": version}
  GET  /v1/release    -> version, corpus size, scenarios, Recall@K metrics, ScaNN recall
  POST /admin/reload  {"release": path} (optional; default: the path the service started
                      with, e.g. a `latest` link) -> the new version, or 409 and the old
                      release keeps serving. SIGHUP does the same with the start path.

A bad request (unknown scenario, k out of range, malformed body, too many requests) is
HTTP 400 with {"error": ..., "field": ...}. A swap loads and checks the new release
completely before it replaces the old one; requests in flight finish on the release they
started with.
"""

import signal
import threading
from typing import Any, Optional

from absl import logging
import fastapi
from fastapi import responses
from fastapi.exceptions import RequestValidationError
import pydantic

from serving.release import load_release
from serving.release import ReleaseLoadError
from serving.retriever import RequestError
from serving.retriever import parse_request
from serving.retriever import Retriever


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
    self.retriever = Retriever(load_release(path, verify_checksums))

  def reload(self, path: Optional[str] = None) -> tuple[str, str]:
    """(old version, new version); ReleaseLoadError leaves the current release serving."""
    with self._lock:
      retriever = Retriever(load_release(path or self.path, self._verify))
      old = self.retriever.version
      self.retriever = retriever  # one reference assignment: atomic for readers
      logging.info('now serving release %s (was %s)', retriever.version, old)
      return old, retriever.version


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

  @app.get('/healthz')
  def healthz():
    return {'status': 'ok', 'release': holder.retriever.version}

  @app.get('/v1/release')
  def release_info():
    release = holder.retriever.release
    manifest = release.manifest
    return {'version': release.version, 'path': release.path,
            'created': manifest.get('created'), 'dataset': manifest.get('dataset'),
            'corpus_size': release.corpus_size, 'dimension': manifest['index']['dimension'],
            'scenarios': list(release.scenarios), 'ks': manifest.get('ks'),
            'recall': manifest.get('recall'),
            'scann_recall_vs_exact': manifest['index'].get('recall_vs_exact'),
            'limits': limits.model_dump()}

  @app.post('/v1/retrieve')
  def retrieve(body: RetrieveBody):
    retriever = holder.retriever  # this request's release, whatever reloads meanwhile
    if body.requests is not None:
      if body.user_id is not None or body.scenario is not None:
        raise RequestError('requests', 'give either requests or user_id and scenario')
      raw = [r.model_dump() for r in body.requests]
    else:
      raw = [{'user_id': body.user_id, 'scenario': body.scenario,
              'features': body.features}]
      for field in ('user_id', 'scenario'):
        if raw[0][field] is None:
          raise RequestError(field, 'is missing; send user_id and scenario, or requests')
    if not 1 <= len(raw) <= limits.max_requests:
      raise RequestError('requests', f'send 1 to {limits.max_requests} requests, got '
                         f'{len(raw)}')
    k = retriever.check_k(body.k, limits.max_k)
    requests, inputs = [], []
    for i, r in enumerate(raw):
      try:
        requests.append(parse_request(r))
        inputs.append(retriever.check(requests[-1]))
      except RequestError as e:
        prefix = f'requests.{i}.' if body.requests is not None else ''
        raise RequestError(prefix + e.field, e.reason) from None
    results = retriever.retrieve_checked(requests, inputs, k, body.exact)
    return {'release': retriever.version, 'results': [r.to_json() for r in results]}

  @app.post('/admin/reload')
  def reload(body: ReloadBody = ReloadBody()):
    try:
      old, new = holder.reload(body.release)
    except ReleaseLoadError as e:
      return responses.JSONResponse(
          {'error': str(e), 'serving': holder.retriever.version}, 409)
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
        logging.error('reload refused, still serving %s: %s', holder.retriever.version, e)
    threading.Thread(target=run, daemon=True).start()

  signal.signal(signal.SIGHUP, reload_in_background)
