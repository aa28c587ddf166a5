"""serving/batching.py: concurrent submits coalesce into calls, within the bounds."""

import asyncio
import threading

import pytest

from serving import batching


class Recorder:
  """A run(key, payloads) that records its calls and the thread they ran on."""

  def __init__(self, release: threading.Event = None):
    self.calls = []
    self.threads = set()
    self._release = release

  def __call__(self, key, payloads):
    if self._release is not None:
      self._release.wait(5)
    self.calls.append((key, list(payloads)))
    self.threads.add(threading.get_ident())
    return [(key, p) for p in payloads]


def test_concurrent_submits_share_one_call_in_order():
  run = Recorder()
  sizes = []

  async def main():
    batcher = batching.MicroBatcher(run, max_batch=8, max_wait=0.5, on_batch=sizes.append)
    results = await asyncio.gather(*(batcher.submit('k', i) for i in range(5)))
    batcher.close()
    return results

  results = asyncio.run(main())
  assert results == [('k', i) for i in range(5)]
  assert run.calls == [('k', [0, 1, 2, 3, 4])] and sizes == [5]
  assert threading.get_ident() not in run.threads  # off the event loop's thread


def test_batches_hold_at_most_max_batch_items_and_never_mix_keys():
  run = Recorder()

  async def main():
    batcher = batching.MicroBatcher(run, max_batch=4, max_wait=0.5)
    jobs = [batcher.submit('a', i, size=2) for i in range(3)]  # 2 + 2 fit, the third not
    jobs += [batcher.submit('b', 'x')]
    results = await asyncio.gather(*jobs)
    batcher.close()
    return results

  assert asyncio.run(main()) == [('a', 0), ('a', 1), ('a', 2), ('b', 'x')]
  assert run.calls[0] == ('a', [0, 1])
  assert ('b', ['x']) in run.calls and ('a', [2]) in run.calls
  for _, payloads in run.calls:
    assert len(payloads) <= 2  # size-2 payloads: at most two per batch of 4


def test_requests_arriving_during_a_call_form_the_next_batch():
  gate = threading.Event()
  run = Recorder(release=gate)

  async def main():
    batcher = batching.MicroBatcher(run, max_batch=16, max_wait=0.0)
    first = asyncio.ensure_future(batcher.submit('k', 'first'))
    await asyncio.sleep(0.05)  # the first call is running (blocked on the gate)
    later = [asyncio.ensure_future(batcher.submit('k', i)) for i in range(3)]
    await asyncio.sleep(0.05)
    gate.set()
    results = await asyncio.gather(first, *later)
    batcher.close()
    return results

  assert asyncio.run(main()) == [('k', 'first'), ('k', 0), ('k', 1), ('k', 2)]
  assert [payloads for _, payloads in run.calls] == [['first'], [0, 1, 2]]


def test_a_lone_request_is_answered_without_a_full_batch():
  run = Recorder()

  async def main():
    batcher = batching.MicroBatcher(run, max_batch=64, max_wait=0.01)
    result = await asyncio.wait_for(batcher.submit('k', 1), timeout=5)
    batcher.close()
    return result

  assert asyncio.run(main()) == ('k', 1)


def test_a_failing_call_fails_its_own_jobs_only():
  def run(key, payloads):
    if key == 'bad':
      raise RuntimeError('model call failed')
    return list(payloads)

  async def main():
    batcher = batching.MicroBatcher(run, max_batch=8, max_wait=0.5)
    results = await asyncio.gather(batcher.submit('bad', 1), batcher.submit('good', 2),
                                   return_exceptions=True)
    batcher.close()
    return results

  bad, good = asyncio.run(main())
  assert isinstance(bad, RuntimeError) and good == 2


def test_bounds_are_checked():
  with pytest.raises(ValueError, match='max_batch'):
    batching.MicroBatcher(lambda k, p: p, max_batch=0, max_wait=0.001)
