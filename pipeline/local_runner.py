"""Runs the pipeline locally: LocalDagRunner, SQLite ML Metadata, Beam FnApiRunner.

    python -m pipeline.local_runner [--preset paper] [--config my.yaml] [--set key.sub=value ...]
    python -m pipeline.local_runner --refresh [...]   # make refresh: the latest release
                                                      # trained on the newest day

`make run` calls this on the bundled KuaiRand-Pure data. Everything is written under the
config's output_dir (default ./outputs): pipeline_root/ (artifacts), metadata/ (MLMD),
logs/ (the full log of each run) and releases/<version>/ (blessed releases;
releases/latest points at the newest). The console shows progress lines and, at the end,
each component's wall time, the ingestion summary, Recall@K per scenario next to the
popularity baselines, and where the release is. Bad input ends the run with exit code 1
and one clear message, never a runner traceback.
"""

import argparse
import datetime
import json
import logging as std_logging
import os
import sys
import time

from absl import logging
from tfx import v1 as tfx

from core import config as configs
from core import errors
from core import layout
from pipeline import pipeline as dsmoe_pipeline
from pipeline import run_summary


def run(config: configs.PipelineConfig, data_only: bool = False) -> None:
  """Runs the pipeline (with `data_only`, up to the Transform; see create_pipeline)."""
  tfx.orchestration.LocalDagRunner().run(
      dsmoe_pipeline.create_pipeline(
          config,
          metadata_connection_config=tfx.orchestration.metadata
          .sqlite_metadata_connection_config(config.metadata_path),
          data_only=data_only))


def configure_logging(log_dir: str, verbose: bool) -> str:
  """Console: the project's progress lines (and everything with --verbose); file: all."""
  os.makedirs(log_dir, exist_ok=True)
  path = os.path.join(log_dir, f'run-{datetime.datetime.now():%Y%m%d-%H%M%S}.log')
  logging.set_verbosity(logging.INFO)
  root = std_logging.getLogger()
  root.setLevel(std_logging.INFO)
  file_handler = std_logging.FileHandler(path)
  file_handler.setFormatter(std_logging.Formatter('%(asctime)s %(name)s %(levelname)s '
                                                  '%(message)s'))
  console = std_logging.StreamHandler(sys.stdout)
  console.setFormatter(std_logging.Formatter('%(asctime)s %(message)s', '%H:%M:%S'))
  if not verbose:
    console.addFilter(lambda record: record.name.startswith('dsmoe') or
                      record.levelno >= std_logging.ERROR)
  # TensorFlow and imports that called logging.basicConfig installed their own console
  # handlers; everything goes through the two handlers above instead.
  for logger in (root, std_logging.getLogger('tensorflow')):
    for handler in list(logger.handlers):
      logger.removeHandler(handler)
  root.addHandler(file_handler)
  root.addHandler(console)
  return path


def report(config: configs.PipelineConfig) -> str:
  """The end-of-run report, read from ML Metadata (cached components included)."""
  store = run_summary.open_store(config.metadata_path)
  lines = [run_summary.format_component_times(run_summary.component_times(store))]
  for node, key, file_name in (
      ('InteractionExampleGen', 'report', layout.INGESTION_SUMMARY_TEXT),
      ('RecallEvaluator', 'evaluation', layout.EVALUATION_SUMMARY_FILE),
      ('BlessedModelComparison', 'comparison', layout.COMPARISON_SUMMARY_FILE),
      ('RankingEvaluator', 'evaluation', layout.EVALUATION_SUMMARY_FILE),
      ('SystemEvaluator', 'evaluation', layout.SYSTEM_SUMMARY_FILE)):
    path = run_summary.output_file(store, node, key, file_name)
    if path:
      with open(path, encoding='utf-8') as f:
        lines.append(f.read().rstrip())
  summaries = []
  for node in ('DistillationTrainer', 'refit_trainer'):
    path = run_summary.output_file(store, node, 'model', 'Format-Serving',
                                   layout.TRAINING_SUMMARY_FILE)
    summaries.append(json.load(open(path, encoding='utf-8')) if path else None)
  for node in ('RankerTrainer', 'refit_ranker_trainer'):
    path = run_summary.output_file(store, node, 'model', 'Format-Serving',
                                   layout.TRAINING_SUMMARY_FILE)
    summaries.append(json.load(open(path, encoding='utf-8')) if path else None)
  lines.append(run_summary.training_lines(*summaries))
  index = run_summary.output_file(store, 'IndexBuilder', 'index', layout.INDEX_MANIFEST_FILE)
  if index:
    with open(index, encoding='utf-8') as f:
      scann = json.load(f)['recall_vs_exact']
    lines.append(f'ScaNN recall@{scann["k"]} against exact search: {scann["recall"]:.4f} '
                 f'({scann["queries"]:,} test queries)')
  lines.append(run_summary.release_line(store, config.releases_dir))
  return '\n\n'.join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default='', help='YAML file overriding the defaults')
  parser.add_argument('--preset', default='',
                      help='a preset of presets/ under the config, e.g. paper (everything '
                      'beyond the DSMOE paper off)')
  parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                      help='override one config value, e.g. training.epochs=10')
  parser.add_argument('--refresh', nargs='?', const='latest', default='',
                      metavar='RELEASE',
                      help='a daily refresh (beyond the paper, core/config.py '
                      'RefreshConfig) of RELEASE (default: the latest release) on the '
                      'logs\' newest day, instead of a full run')
  parser.add_argument('--verbose', action='store_true', help='show TFX and Beam logs')
  args = parser.parse_args(argv)
  started = time.time()
  try:
    config = configs.load_config(args.config, args.set, args.preset)
    if args.refresh:
      config = configs.for_refresh(config, '' if args.refresh == 'latest' else args.refresh)
    log_path = configure_logging(os.path.join(config.path(config.output_dir), 'logs'),
                                  args.verbose)
    print(f'pipeline {config.pipeline_name}: data {config.path(config.data_dir)}, '
          f'outputs {config.path(config.output_dir)}, log {log_path}'
          + (f', a refresh of {config.refresh.release}' if args.refresh else ''),
          flush=True)
    run(config)
  except errors.InputError as e:  # fix your input or config: no traceback
    print(f'\nerror: {e}', file=sys.stderr)
    return 1
  print(f'\nfinished in {time.time() - started:.0f} s\n\n{report(config)}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
