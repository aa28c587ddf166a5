"""Micro-batching: concurrent requests coalesced into one model call.

    batcher = MicroBatcher(run, max_batch=64, max_wait=0.0)
    result = await batcher.submit(key, payload, size=1)   # in a coroutine

Handlers submit (key, payload) and await the result. A collector task takes the first
waiting job, then gathers more until the batch holds `max_batch` items or `max_wait`
seconds have passed since that first job arrived, and hands each key's payloads to
`run(key, payloads) -> results` (one result per payload, in order) on one worker thread:
the model call runs off the event loop. While a batch runs, new jobs queue up and form the
next batch, so batches grow with the load, and a lone request waits at most `max_wait`.
Jobs with different keys (another release, exact search, another candidates count) never
share a call. An exception in `run` fails the jobs of that call only.

max_wait=0 (the service's default) never waits: a batch is the requests that queued while
the previous call ran, so a lone request goes at once and batches still grow with the
load (measured on 2 cores: waiting 2 ms added 2 ms to a lone request and did not raise the
throughput at 16 clients; docs/serving/benchmark.md). max_batch=1 turns batching off (one
call per request, still off the event loop).

Written here rather than taken from a library: TF Serving's batching lives inside its C++
model server, and Ray Serve's `serve.batch` needs the Ray runtime; this is a queue and a
thread on asyncio.
"""

import asyncio
import concurrent.futures
import dataclasses
from typing import Any, Callable, Hashable, Optional, Sequence


@dataclasses.dataclass
class _Job:
  key: Hashable
  payload: Any
  size: int  # items (requests) in the payload; a batch holds at most max_batch
  arrived: float  # event-loop time
  future: asyncio.Future


class MicroBatcher:
  """Coalesces concurrent `submit`s with the same key into one `run` call."""

  def __init__(self, run: Callable[[Hashable, Sequence[Any]], Sequence[Any]],
               max_batch: int, max_wait: float,
               on_batch: Optional[Callable[[int], None]] = None, name: str = 'model'):
    if max_batch < 1 or max_wait < 0:
      raise ValueError(f'max_batch must be >= 1 and max_wait >= 0, got {max_batch}, '
                       f'{max_wait}')
    self._run = run
    self.max_batch = max_batch
    self.max_wait = max_wait
    self._on_batch = on_batch  # called with each call's item count (metrics)
    self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=name)
    self._queue: Optional[asyncio.Queue] = None
    self._collector: Optional[asyncio.Task] = None

  async def submit(self, key: Hashable, payload: Any, size: int = 1) -> Any:
    loop = asyncio.get_running_loop()
    if self._collector is None or self._collector.done() or \
        self._collector.get_loop() is not loop:
      self._queue = asyncio.Queue()
      self._collector = loop.create_task(self._collect())
    job = _Job(key, payload, size, loop.time(), loop.create_future())
    self._queue.put_nowait(job)
    return await job.future

  async def _collect(self) -> None:
    loop = asyncio.get_running_loop()
    held = None  # a job that did not fit in the previous batch
    while True:
      first = held or await self._queue.get()
      held = None
      jobs, items = [first], first.size
      deadline = first.arrived + self.max_wait
      while items < self.max_batch:
        if self._queue.empty():
          remaining = deadline - loop.time()
          if remaining <= 0:
            break
          try:
            job = await asyncio.wait_for(self._queue.get(), remaining)
          except asyncio.TimeoutError:
            break
        else:
          job = self._queue.get_nowait()
        if items + job.size > self.max_batch:
          held = job
          break
        jobs.append(job)
        items += job.size
      groups: dict[Hashable, list[_Job]] = {}
      for job in jobs:
        groups.setdefault(job.key, []).append(job)
      for key, group in groups.items():
        await self._call(loop, key, group)

  async def _call(self, loop, key: Hashable, group: list[_Job]) -> None:
    if self._on_batch:
      self._on_batch(sum(job.size for job in group))
    try:
      results = await loop.run_in_executor(self._worker, self._run, key,
                                           [job.payload for job in group])
    except Exception as e:  # pylint: disable=broad-except
      for job in group:
        if not job.future.done():
          job.future.set_exception(e)
      return
    for job, result in zip(group, results):
      if not job.future.done():
        job.future.set_result(result)

  def close(self) -> None:
    if self._collector is not None:
      self._collector.cancel()
    self._worker.shutdown(wait=False)
