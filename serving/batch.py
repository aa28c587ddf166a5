"""Batch retrieval or recommendation: a CSV or JSONL file of requests -> a JSONL file of
results, streamed.

Input: CSV with a header (columns user_id, scenario, and optionally exclude (item ids
separated by '|') and user features (list features separated by '|'); recommend: also
weight.<task> columns) or JSONL (one object per line: user_id, scenario, optional
`features` and `exclude`; recommend: optional `weights`). The format follows the
extension (.csv; .jsonl/.json/.ndjson), else the first character.

Output: one JSON object per request line, in input order: the result, as `query`
(retrieval: user_id, scenario, items, scores, known_user) or `recommend` prints it,
or, for a bad line, {"line": n, "user_id": ..., "scenario": ..., "error": "field: why"}.
Bad lines are also reported (with their line numbers) on the progress stream; the rest go
on. Requests are processed in chunks, so memory stays constant however long the file is.
The output is written to OUT.partial and renamed to OUT when complete.
"""

import csv
import dataclasses
import json
import os
import time
from typing import Any, Iterator, Optional, TextIO

from serving import recommender as recommender_lib
from serving.retriever import parse_request
from serving.retriever import RequestError
from serving.retriever import Retriever

CHUNK = 256  # requests embedded and searched together
PROGRESS_SECONDS = 5.0


class Retrieval:
  """Answers lines with the retriever's top k."""

  def __init__(self, retriever: Retriever, k: int, exact: bool = False):
    self._retriever, self._k, self._exact = retriever, k, exact

  def parse(self, raw: Any) -> tuple[Any, Any]:
    request = parse_request(raw)
    return request, self._retriever.check(request)

  def answer(self, requests: list, checked: list) -> list:
    return self._retriever.retrieve_checked(requests, checked, self._k, self._exact)


class Recommendation:
  """Answers lines with the two stages' top k of `candidates` (serving/recommender.py)."""

  def __init__(self, recommender: recommender_lib.Recommender, k: int, candidates: int):
    self._recommender, self._k, self._candidates = recommender, k, candidates

  def parse(self, raw: Any) -> tuple[Any, Any]:
    request = recommender_lib.parse_recommend_request(raw)
    return request, self._recommender.check(request)

  def answer(self, requests: list, checked: list) -> list:
    return self._recommender.recommend_checked(requests, checked, self._k, self._candidates)


@dataclasses.dataclass
class BatchSummary:
  lines: int = 0
  ok: int = 0
  bad: int = 0
  unknown_users: int = 0
  seconds: float = 0.0


def _format(path: str, first_char: str) -> str:
  extension = os.path.splitext(path)[1].lower()
  if extension == '.csv':
    return 'csv'
  if extension in ('.jsonl', '.json', '.ndjson'):
    return 'jsonl'
  return 'jsonl' if first_char == '{' else 'csv'


def read_requests(f: TextIO, path: str) -> Iterator[tuple[int, Any, Optional[RequestError]]]:
  """(line number, raw request mapping, RequestError if the line is unreadable) for each
  non-blank line."""
  first = f.read(1)
  f.seek(0)
  if _format(path, first) == 'csv':
    reader = csv.DictReader(f)
    header = reader.fieldnames or []
    for column in ('user_id', 'scenario'):
      if column not in header:
        raise RequestError(column, f'{path}: the CSV header has no {column!r} column '
                           f'(header: {",".join(header)})')
    for row in reader:
      if None in row or None in row.values():
        yield reader.line_num, row, RequestError(
            'line', f'has not the {len(header)} columns of the header')
      else:
        yield reader.line_num, row, None
    return
  for number, line in enumerate(f, start=1):
    if not line.strip():
      continue
    try:
      yield number, json.loads(line), None
    except ValueError as e:
      yield number, None, RequestError('line', f'is not valid JSON ({e})')


def _error_record(number: int, raw: Any, error: Exception) -> dict:
  record = {'line': number}
  if isinstance(raw, dict):
    record.update({k: raw.get(k) for k in ('user_id', 'scenario')})
  record['error'] = str(error)
  return record


@dataclasses.dataclass
class _Line:
  number: int
  raw: Any
  request: Any = None  # the parsed request of a valid line
  inputs: Any = None  # its checked inputs
  error: Any = None  # RequestError of a bad line


def _write_chunk(answerer, chunk: list, out: TextIO, summary: BatchSummary) -> None:
  valid = [line for line in chunk if line.error is None]
  results = answerer.answer([line.request for line in valid],
                            [line.inputs for line in valid])
  by_line = dict(zip((line.number for line in valid), results))
  for line in chunk:
    if line.number in by_line:
      result = by_line[line.number]
      summary.unknown_users += not result.known_user
      record = result.to_json()
    else:
      record = _error_record(line.number, line.raw, line.error)
    out.write(json.dumps(record) + '\n')


def run_batch(answerer, requests_path: str, output_path: str,
              progress: Optional[TextIO] = None) -> BatchSummary:
  """Answers every line of `requests_path` into `output_path` with `answerer` (Retrieval
  or Recommendation); see the module docstring."""
  summary = BatchSummary()
  started = time.perf_counter()
  partial = output_path + '.partial'
  try:
    _answer_lines(answerer, requests_path, partial, progress, summary)
  except BaseException:
    if os.path.exists(partial):
      os.remove(partial)  # OUT (if it exists) is left as it was
    raise
  os.replace(partial, output_path)
  summary.seconds = time.perf_counter() - started
  return summary


def _answer_lines(answerer, requests_path: str, partial: str, progress: Optional[TextIO],
                  summary: BatchSummary) -> None:
  started = last_report = time.perf_counter()
  size = os.path.getsize(requests_path)
  with open(requests_path, encoding='utf-8', newline='') as f, \
      open(partial, 'w', encoding='utf-8') as out:
    chunk = []
    for number, raw, unreadable in read_requests(f, requests_path):
      summary.lines += 1
      line = _Line(number, raw)
      try:
        if unreadable:
          raise unreadable
        line.request, line.inputs = answerer.parse(raw)
        summary.ok += 1
      except RequestError as e:
        line.error = e
        summary.bad += 1
        if progress:
          progress.write(f'line {number}: {e}\n')
      chunk.append(line)
      if len(chunk) >= CHUNK:
        _write_chunk(answerer, chunk, out, summary)
        chunk = []
      now = time.perf_counter()
      if progress and now - last_report >= PROGRESS_SECONDS:
        last_report = now
        done = 100 * f.buffer.tell() / max(size, 1)
        progress.write(f'{summary.lines:,} requests ({done:.0f}% of the file), '
                       f'{summary.lines / (now - started):,.0f}/s\n')
        progress.flush()
    _write_chunk(answerer, chunk, out, summary)
