"""The HTTP service: FastAPI app over a hot-swappable release.

    python -m serving serve --release outputs/releases/latest [--port 8000]

Endpoints (OpenAPI docs at /docs, schema at /openapi.json):
  POST /v1/retrieve   {"user_id": "5", "scenario": "1", "k": 50, "exclude": ["42"]} or
                      {"requests": [{"user_id": ..., "scenario": ..., "features": {...},
                       "exclude": [...]}], "k": 50, "exact": false}
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
  GET  /healthz       liveness: 200 {"status": "ok", "release": version} while the process
                      answers
  GET  /readyz        readiness: 200 {"status": "ready", ...} with a release loaded; 503
                      {"status": "draining"} after SIGTERM (in-flight requests finish)
  GET  /metrics       Prometheus text format (serving/metrics.py)
  GET  /v1/release    -> version, corpus size, scenarios, Recall@K metrics, ScaNN recall
  POST /admin/reload  {"release": path} (optional; default: the path the service started
                      with, e.g. a `latest` link) -> the new version, or 409 and the old
                      release keeps serving. Needs `Authorization: Bearer <token>`, the
                      token being the environment variable DSMOE_ADMIN_TOKEN of the
                      service (401 otherwise). SIGHUP does the same with the start path.

Bodies are JSON whatever the content type says (curl -d sends a form type), 400 when they
are not valid JSON. A bad request (unknown scenario, k out of range, malformed body, too
many requests) is HTTP 400 with {"error": ..., "field": ...}. Every response carries an
X-Request-ID header (the client's, when it sends a valid one) and every request is logged
as one JSON line (logger `serving.access`: request_id, method, path, status, ms, release).

Micro-batching (serving/batching.py): concurrent requests to one endpoint are answered by
one user-tower call and one ScaNN search (and one ranker call), at most
`ServingLimits.max_batch` requests: those that queued while the previous call ran, and
with `max_wait_ms` > 0 also those arriving that long after the first; the model calls run
on a worker thread, off the event loop.

A swap loads and checks the new release completely, on a background thread at a lower
CPU priority, before it replaces the old one; requests in flight finish on the release
they started with. The holder swaps one object holding both stages (Recommender: the
release's retriever and ranker), and every request reads that reference once: an answer
comes from one release's retriever and ranker, never a mix; a micro-batch only holds
requests of one release.
"""

import asyncio
import collections
import concurrent.futures
import hmac
import ipaddress
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from typing import Any, Optional
import uuid

import fastapi
from fastapi import responses
from fastapi.exceptions import RequestValidationError
import pydantic
import uvicorn

from serving import batching
from serving import metrics as metrics_lib
from serving import recommender as recommender_lib
from serving.release import load_release
from serving.release import ReleaseLoadError
from serving.retriever import RequestError
from serving.retriever import parse_request


ADMIN_TOKEN_ENV = 'DSMOE_ADMIN_TOKEN'
REQUEST_ID_HEADER = 'X-Request-ID'
_REQUEST_ID = re.compile(r'^[A-Za-z0-9._:-]{1,128}$')
access_log = logging.getLogger('serving.access')
log = logging.getLogger('serving')


class ServingLimits(pydantic.BaseModel):
  max_requests: int = 1000  # requests in one POST /v1/retrieve
  max_k: int = 1000
  max_body_bytes: int = 4 << 20
  max_batch: int = 64  # requests per micro-batched model call (1: no batching)
  max_wait_ms: float = 0.0  # how long a request waits for others to share its call


class ReleaseHolder:
  """The release being served; `reload` swaps in another only when it loads cleanly."""

  def __init__(self, path: str, verify_checksums: bool = True):
    self.path = path
    self._verify = verify_checksums
    self._lock = threading.Lock()  # one reload at a time
    self.current = recommender_lib.Recommender(load_release(path, verify_checksums))
    self.draining = False  # set on SIGTERM: not ready for new traffic
    self.reloads = collections.Counter()  # result -> count: ok, refused

  def reload(self, path: Optional[str] = None) -> tuple[str, str]:
    """(old version, new version); ReleaseLoadError leaves the current release serving."""
    with self._lock:
      try:
        loaded = recommender_lib.Recommender(load_release(path or self.path, self._verify))
      except ReleaseLoadError as e:
        self.reloads['refused'] += 1
        log.error('reload refused, still serving %s: %s', self.current.version, e)
        raise
      old = self.current.version
      self.current = loaded  # one reference assignment: atomic for readers
      self.reloads['ok'] += 1
      log.info('now serving release %s (was %s)', loaded.version, old)
      return old, loaded.version


class Reloader:
  """Runs the holder's reloads on one background thread at a lower CPU priority (nice 10
  on Linux, where priority is per thread), so loading a release does not stall serving.

  Loading a SavedModel is mostly Python, holding the GIL that the event loop needs for
  every request; while a reload runs the interpreter hands the GIL over every
  SWITCH_INTERVAL seconds instead of the default 5 ms, so a request waits less for it."""

  NICE = 10
  SWITCH_INTERVAL = 0.0005

  def __init__(self, holder: ReleaseHolder):
    self._holder = holder
    self._thread = concurrent.futures.ThreadPoolExecutor(
        1, thread_name_prefix='reload', initializer=self._lower_priority)

  @classmethod
  def _lower_priority(cls) -> None:
    try:
      os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), cls.NICE)
    except (AttributeError, OSError):  # not Linux: the thread keeps the normal priority
      pass

  def submit(self, path: Optional[str] = None) -> concurrent.futures.Future:
    return self._thread.submit(self._reload, path)

  def _reload(self, path: Optional[str]) -> tuple[str, str]:
    interval = sys.getswitchinterval()
    sys.setswitchinterval(self.SWITCH_INTERVAL)
    try:
      return self._holder.reload(path)
    except ReleaseLoadError:
      raise  # counted and logged by the holder
    except Exception:  # a SIGHUP reload has no caller to see it: log it here
      log.exception('reload of %s failed, still serving %s', path or self._holder.path,
                    self._holder.current.version)
      raise
    finally:
      sys.setswitchinterval(interval)


class RequestModel(pydantic.BaseModel):
  user_id: str | int
  scenario: str | int
  features: dict[str, Any] = {}
  exclude: list[str | int] = []


class RetrieveBody(pydantic.BaseModel):
  """One request (user_id, scenario) or several (requests)."""
  user_id: Optional[str | int] = None
  scenario: Optional[str | int] = None
  features: dict[str, Any] = {}
  exclude: list[str | int] = []
  requests: Optional[list[RequestModel]] = None
  k: int = 50
  exact: bool = False


class RecommendRequestModel(RequestModel):
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


class AdminAuthError(Exception):
  """An admin endpoint was called without the service's bearer token."""


def _retrieve_batch(key, payloads):
  """MicroBatcher.run for /v1/retrieve: key (retriever, exact); payload (requests, inputs,
  k). One embedding call and one search at the largest k, each payload cut to its k."""
  retriever, exact = key
  results = retriever.retrieve_checked([r for p in payloads for r in p[0]],
                                       [i for p in payloads for i in p[1]],
                                       max(p[2] for p in payloads), exact)
  return _split(results, payloads)


def _recommend_batch(key, payloads):
  """MicroBatcher.run for /v1/recommend: key (recommender, candidates); payload
  (requests, checked, k)."""
  recommender, candidates = key
  results = recommender.recommend_checked([r for p in payloads for r in p[0]],
                                          [c for p in payloads for c in p[1]],
                                          max(p[2] for p in payloads), candidates)
  return _split(results, payloads)


def _split(results: list, payloads) -> list:
  answers, start = [], 0
  for requests, _, k in payloads:
    answers.append([r.top(k) for r in results[start:start + len(requests)]])
    start += len(requests)
  return answers


class _Operations:
  """ASGI middleware around every request: the request id (X-Request-ID, the client's when
  valid), the body size limit (413 from Content-Length, before reading), JSON bodies
  whatever the content type, metrics and the JSON access log line.

  Plain ASGI rather than @app.middleware('http'): Starlette's BaseHTTPMiddleware costs a
  task and a stream per request, a measurable share of a 5 ms request on 2 cores."""

  def __init__(self, app, limits: ServingLimits, metrics: metrics_lib.ServiceMetrics,
               holder: ReleaseHolder, paths: frozenset):
    self.app, self.limits, self.metrics = app, limits, metrics
    self.holder, self.paths = holder, paths

  async def __call__(self, scope, receive, send):
    if scope['type'] != 'http':
      await self.app(scope, receive, send)
      return
    start = time.perf_counter()
    headers = dict(scope['headers'])
    request_id = headers.get(b'x-request-id', b'').decode('latin-1')
    if not _REQUEST_ID.match(request_id):
      request_id = uuid.uuid4().hex
    status = [500]

    async def send_with_id(message):
      if message['type'] == 'http.response.start':
        status[0] = message['status']
        message['headers'] = list(message.get('headers', ())) + [
            (b'x-request-id', request_id.encode())]
      await send(message)

    try:
      length = headers.get(b'content-length', b'')
      if length.isdigit() and int(length) > self.limits.max_body_bytes:
        await responses.JSONResponse(
            {'error': f'body: {length.decode()} bytes, at most '
                      f'{self.limits.max_body_bytes} allowed; split the requests',
             'field': 'body'}, 413)(scope, receive, send_with_id)
        return
      content_type = headers.get(b'content-type', b'').split(b';')[0].strip().lower()
      if scope['method'] == 'POST' and not content_type.endswith(b'json'):
        # curl -d says form, some clients say nothing: the body is read as JSON.
        scope = dict(scope, headers=[(k, v) for k, v in scope['headers']
                                     if k != b'content-type'] + [
                                         (b'content-type', b'application/json')])
      await self.app(scope, receive, send_with_id)
    except Exception:
      log.exception('request %s failed', request_id)
      raise
    finally:
      seconds = time.perf_counter() - start
      path = scope['path']
      self.metrics.observe(path if path in self.paths else 'other', status[0], seconds)
      access_log.info(json.dumps({
          'time': time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime()),
          'request_id': request_id, 'method': scope['method'], 'path': path,
          'status': status[0], 'ms': round(seconds * 1000, 3),
          'release': self.holder.current.version}))


def _is_loopback(host: str) -> bool:
  if host == 'localhost':
    return True
  try:
    return ipaddress.ip_address(host).is_loopback
  except ValueError:
    return False


def check_admin(host: str, admin: bool, token: Optional[str]) -> str:
  """Why the service must not start with these settings, or ''."""
  if admin and not token and not _is_loopback(host):
    return (f'--host {host}: the admin endpoints would listen beyond this machine without '
            f'a token; set {ADMIN_TOKEN_ENV} (clients send "Authorization: Bearer '
            '<token>") or start with --no-admin')
  return ''


def create_app(holder: ReleaseHolder, limits: ServingLimits = ServingLimits(),
               admin: bool = True, admin_token: Optional[str] = None) -> fastapi.FastAPI:
  """The service over holder. admin=False leaves out /admin/*; with admin, a request must
  carry `Authorization: Bearer <admin_token>` (no token: every admin call is refused)."""
  app = fastapi.FastAPI(title='DSMOE multi-scenario retrieval',
                        description='Top-K items for a user in a scenario.')
  metrics = metrics_lib.ServiceMetrics(holder)
  max_wait = limits.max_wait_ms / 1000.0
  retrieve_batcher = batching.MicroBatcher(
      _retrieve_batch, limits.max_batch, max_wait, name='retrieve',
      on_batch=metrics.batch_size.labels('retrieve').observe)
  recommend_batcher = batching.MicroBatcher(
      _recommend_batch, limits.max_batch, max_wait, name='recommend',
      on_batch=metrics.batch_size.labels('recommend').observe)
  reloader = Reloader(holder)

  @app.exception_handler(RequestValidationError)
  async def _invalid(_, exc: RequestValidationError):
    error = exc.errors()[0]
    if error['type'] == 'json_invalid':  # loc: ('body', character position)
      return _bad_request('body', f'not valid JSON ({error["msg"]} at character '
                          f'{error["loc"][-1]}); send a JSON object')
    field = '.'.join(str(p) for p in error['loc'] if p != 'body') or 'body'
    return _bad_request(field, error['msg'])

  @app.exception_handler(RequestError)
  async def _request_error(_, exc: RequestError):
    return _bad_request(exc.field, exc.reason)

  @app.exception_handler(recommender_lib.NoRankerError)
  async def _no_ranker(_, exc: recommender_lib.NoRankerError):
    return responses.JSONResponse({'error': str(exc), 'field': 'release'}, 409)

  @app.exception_handler(AdminAuthError)
  async def _unauthorized(_, exc: AdminAuthError):
    return responses.JSONResponse({'error': str(exc), 'field': 'authorization'}, 401,
                                  headers={'WWW-Authenticate': 'Bearer'})

  @app.get('/healthz')
  async def healthz():
    return {'status': 'ok', 'release': holder.current.version}

  @app.get('/readyz')
  async def readyz():
    if holder.draining:
      return responses.JSONResponse({'status': 'draining',
                                     'release': holder.current.version}, 503)
    return {'status': 'ready', 'release': holder.current.version,
            'ranker': holder.current.ranker_id}

  @app.get('/metrics')
  async def metrics_text():
    return fastapi.Response(metrics.render(), media_type=metrics_lib.CONTENT_TYPE)

  @app.get('/v1/release')
  async def release_info():
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
  async def retrieve(body: RetrieveBody):
    retriever = holder.current.retriever  # this request's release, whatever reloads meanwhile
    raw = _raw_requests(body, limits, ('user_id', 'scenario', 'features', 'exclude'))
    k = retriever.check_k(body.k, limits.max_k)

    def check(raw_request):
      request = parse_request(raw_request)
      return request, retriever.check(request)

    pairs = _parsed(body, raw, check)
    requests = [p[0] for p in pairs]
    results = await retrieve_batcher.submit(
        (retriever, body.exact), (requests, [p[1] for p in pairs], k), len(requests))
    return responses.ORJSONResponse(
        {'release': retriever.version, 'results': [r.to_json() for r in results]})

  @app.post('/v1/recommend')
  async def recommend(body: RecommendBody):
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
    requests = [p[0] for p in pairs]
    results = await recommend_batcher.submit(
        (current, candidates), (requests, [p[1] for p in pairs], k), len(requests))
    return responses.ORJSONResponse(
        {'release': current.version, 'ranker': current.ranker_id,
         'candidates': candidates, 'results': [r.to_json() for r in results]})

  if admin:
    def require_admin(request: fastapi.Request) -> None:
      if not admin_token:
        raise AdminAuthError(
            f'admin endpoints are off: start the service with {ADMIN_TOKEN_ENV} set and '
            'send "Authorization: Bearer <token>"')
      scheme, _, token = request.headers.get('authorization', '').partition(' ')
      if scheme.lower() != 'bearer' or not hmac.compare_digest(
          token.strip().encode(), admin_token.encode()):
        raise AdminAuthError('send "Authorization: Bearer <token>" with the service\'s '
                             f'{ADMIN_TOKEN_ENV}')

    @app.post('/admin/reload', dependencies=[fastapi.Depends(require_admin)])
    async def reload(body: ReloadBody = ReloadBody()):
      try:
        old, new = await asyncio.wrap_future(reloader.submit(body.release))
      except ReleaseLoadError as e:
        return responses.JSONResponse(
            {'error': str(e), 'serving': holder.current.version}, 409)
      return {'previous': old, 'release': new}

  app.add_middleware(_Operations, limits=limits, metrics=metrics, holder=holder,
                     paths=frozenset(route.path for route in app.routes))
  app.state.reloader = reloader
  return app


def install_reload_signal(app: fastapi.FastAPI) -> None:
  """SIGHUP reloads the start path on the app's reload thread (the old release keeps
  serving if the new one is broken)."""

  def reload_in_background(*_):
    app.state.reloader.submit()

  signal.signal(signal.SIGHUP, reload_in_background)


class Server(uvicorn.Server):
  """uvicorn's server, and on SIGTERM/SIGINT /readyz turns 503 while uvicorn stops
  accepting connections and waits for the requests in flight (drain)."""

  def __init__(self, config: uvicorn.Config, holder: ReleaseHolder):
    super().__init__(config)
    self._holder = holder

  def handle_exit(self, sig, frame) -> None:
    self._holder.draining = True
    log.info('signal %s: draining (in-flight requests finish, no new connections)', sig)
    super().handle_exit(sig, frame)


def configure_logging() -> None:
  """JSON access lines and the service's messages on stderr."""
  for name, pattern in (('serving.access', '%(message)s'),
                        ('serving', '%(asctime)s %(levelname)s %(message)s')):
    logger = logging.getLogger(name)
    if not logger.handlers:
      handler = logging.StreamHandler()
      handler.setFormatter(logging.Formatter(pattern))
      logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
