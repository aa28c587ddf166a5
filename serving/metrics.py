"""The service's Prometheus metrics (prometheus-client), served at GET /metrics.

    dsmoe_requests_total{endpoint, status}      HTTP requests answered
    dsmoe_request_seconds{endpoint}             latency histogram (receipt to response)
    dsmoe_batch_size{stage}                     requests per model call (micro-batches;
                                                stage: retrieve, recommend)
    dsmoe_release_info{version, ranker}         1 for the release being served
    dsmoe_reloads_total{result}                 reloads: ok, refused (the old release
                                                keeps serving)

`endpoint` is the route's path (/v1/retrieve, ...), or `other` for a path the service does
not have, so a scan of random URLs cannot grow the label set. Each app has its own
registry (several apps in one process, as in tests, do not collide).
"""

import prometheus_client
from prometheus_client import core as prometheus_core

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25,
                   0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class _HolderCollector:
  """dsmoe_release_info and dsmoe_reloads_total read from the release holder
  (serving/service.ReleaseHolder: .current, .reloads) at scrape time."""

  def __init__(self, holder):
    self._holder = holder

  def collect(self):
    current = self._holder.current
    info = prometheus_core.GaugeMetricFamily(
        'dsmoe_release_info', 'the release being served (value 1)',
        labels=['version', 'ranker'])
    info.add_metric([current.version, current.ranker_id], 1.0)
    yield info
    reloads = prometheus_core.CounterMetricFamily(
        'dsmoe_reloads', 'release reloads by result', labels=['result'])
    for result in ('ok', 'refused'):
      reloads.add_metric([result], float(self._holder.reloads[result]))
    yield reloads


class ServiceMetrics:
  """The metrics of one app over a release holder."""

  def __init__(self, holder):
    self.registry = prometheus_client.CollectorRegistry()
    self.requests = prometheus_client.Counter(
        'dsmoe_requests', 'HTTP requests by endpoint and status', ['endpoint', 'status'],
        registry=self.registry)
    self.latency = prometheus_client.Histogram(
        'dsmoe_request_seconds', 'request latency in seconds', ['endpoint'],
        buckets=LATENCY_BUCKETS, registry=self.registry)
    self.batch_size = prometheus_client.Histogram(
        'dsmoe_batch_size', 'requests per model call', ['stage'], buckets=BATCH_BUCKETS,
        registry=self.registry)
    self.registry.register(_HolderCollector(holder))

  def observe(self, endpoint: str, status: int, seconds: float) -> None:
    self.requests.labels(endpoint, str(status)).inc()
    self.latency.labels(endpoint).observe(seconds)

  def render(self) -> bytes:
    return prometheus_client.generate_latest(self.registry)
