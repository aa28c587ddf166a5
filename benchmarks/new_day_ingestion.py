"""Prints what ingesting one new day alone costs against ingesting every day again, and
checks that both give that day the same examples, on the bundled KuaiRand-Pure log.

    python -m benchmarks.new_day_ingestion [--output-dir outputs/benchmarks/new_day]
                                           [--day 2022-05-04]

1. Splits the bundled log into daily files (the spec's split.timezone, Asia/Shanghai) under
   OUTPUT_DIR/days/, named log_standard_YYYYMMDD.csv, with logs.day_format '%Y%m%d'.
2. Ingests every day before --day at once (as make run's ingestion does): the end state.
3. Ingests --day alone from that end state (ingest.PreviousDays), then, for reference,
   every day up to --day at once. Prints both wall times and compares --day's training
   examples (split `all`, each as of its own moment) of the two: ids, histories and counts
   exactly, float features within 1e-6 relative (the decayed clicks are float32 sums taken
   in another order).
The ingestion's Beam runner is the config's (in-process FnApiRunner); run it on an idle
machine. Writes nothing outside OUTPUT_DIR.
"""

import argparse
import collections
import csv
import dataclasses
import datetime
import gzip
import math
import os
import shutil
import time

import apache_beam as beam

from core import config as configs
from core import dataset_spec as ds
from core import examples as example_files
from ingestion import ingest


def split_by_day(log: str, spec: ds.DatasetSpec, directory: str) -> dict:
  """The log's rows by local day, one CSV per day; {day: rows}."""
  os.makedirs(directory, exist_ok=True)
  by_day = collections.defaultdict(list)
  with gzip.open(log, 'rt', newline='') as f:
    reader = csv.reader(f)
    header = next(reader)
    at = header.index(spec.logs.timestamp)
    for row in reader:
      day = datetime.datetime.fromtimestamp(int(row[at]) / 1000, spec.split.tzinfo).date()
      by_day[day].append(row)
  for day, rows in by_day.items():
    with open(os.path.join(directory, f'log_standard_{day:%Y%m%d}.csv'), 'w',
              newline='') as f:
      writer = csv.writer(f)
      writer.writerow(header)
      writer.writerows(rows)
  return {day: len(rows) for day, rows in sorted(by_day.items())}


def _same(a: dict, b: dict) -> bool:
  if a.keys() != b.keys():
    return False
  for name in a:
    x, y = a[name], b[name]
    if x and isinstance(x[0], float):
      if len(x) != len(y) or not all(math.isclose(u, v, rel_tol=1e-6, abs_tol=1e-9)
                                     for u, v in zip(x, y)):
        return False
    elif x != y:
      return False
  return True


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--output-dir', default='outputs/benchmarks/new_day')
  parser.add_argument('--day', default='2022-05-04')
  args = parser.parse_args(argv)
  config = configs.load_config()
  spec = ds.DatasetSpec.from_yaml(config.local_path(config.dataset_spec))
  spec = dataclasses.replace(spec, logs=dataclasses.replace(spec.logs, day_format='%Y%m%d'))
  new_day = datetime.date.fromisoformat(args.day)
  root = os.path.abspath(args.output_dir)
  shutil.rmtree(root, ignore_errors=True)
  source = config.path(config.data_dir)
  [log] = [f for f in os.listdir(source) if f.startswith('log_standard_')]
  rows = split_by_day(os.path.join(source, log), spec, os.path.join(root, 'days'))
  print(f'daily files: {len(rows)} ({min(rows)} .. {max(rows)}), rows: '
        + ', '.join(f'{d:%m-%d} {n:,}' for d, n in rows.items()))

  def data_dir(name: str, last: datetime.date, first=datetime.date.min) -> str:
    """A data directory with the feature tables and the daily files from first to last."""
    directory = os.path.join(root, name)
    os.makedirs(directory)
    for table in os.listdir(source):
      if not table.startswith('log_standard_'):
        os.symlink(os.path.join(source, table), os.path.join(directory, table))
    for day in rows:
      if first <= day <= last:
        name = f'log_standard_{day:%Y%m%d}.csv'
        os.symlink(os.path.join(root, 'days', name), os.path.join(directory, name))
    return directory

  pipeline = lambda: beam.Pipeline(argv=list(config.beam_pipeline_args))

  def ingest_timed(name, directory, previous=None):
    started = time.perf_counter()
    summary = ingest.ingest_and_summarize(pipeline, spec, directory, config.ingestion,
                                          ingest.OutputPaths.under(os.path.join(root, name)),
                                          previous)
    return summary, time.perf_counter() - started

  before, seconds_before = ingest_timed(
      'before', data_dir('data_before', new_day - datetime.timedelta(days=1)))
  out = os.path.join(root, 'before')
  previous = ingest.PreviousDays(
      os.path.join(out, 'item_state', '*'), os.path.join(out, 'user_snapshot', '*'),
      tuple(s['value'] for s in before['scenarios']),
      spec.split.day_start_ms(new_day))
  alone, seconds_alone = ingest_timed('day_alone', data_dir('data_day', new_day, new_day),
                                      previous)
  every, seconds_every = ingest_timed('every_day', data_dir('data_every', new_day))
  print(f'ingestion of the {len(rows) - 1} days before {new_day}: {seconds_before:.1f} s '
        f'({before["rows_read"]["logs"]:,} rows)')
  print(f'{new_day} alone from their end state: {seconds_alone:.1f} s '
        f'({alone["rows_read"]["logs"]:,} rows)')
  print(f'every day up to {new_day} at once: {seconds_every:.1f} s '
        f'({every["rows_read"]["logs"]:,} rows)')

  key = lambda e: (e['user_id'][0], e['item_id'][0], e['timestamp'][0], e['label'][0])
  read = lambda name: example_files.records(os.path.join(root, name, 'examples', 'all', '*'))
  start = previous.day_start_ms
  day_examples = {key(e): e for e in map(example_files.to_python, read('day_alone'))}
  every_examples = {key(e): e for e in map(example_files.to_python, read('every_day'))
                    if e['timestamp'][0] >= start}
  differ = [k for k in every_examples.keys() | day_examples.keys()
            if k not in day_examples or k not in every_examples
            or not _same(day_examples[k], every_examples[k])]
  print(f'{new_day}: {len(day_examples):,} training examples alone, {len(every_examples):,} '
        f'from every day; {len(differ)} differ'
        + (f' (first: {differ[0]})' if differ else ''))


if __name__ == '__main__':
  main()
