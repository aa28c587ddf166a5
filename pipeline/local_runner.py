"""Runs the pipeline locally: LocalDagRunner, SQLite ML Metadata, Beam FnApiRunner.

    python -m pipeline.local_runner [--config my.yaml] [--set key.sub=value ...]

`make run` calls this on the bundled KuaiRand-Pure data. Everything is written under the
config's output_dir (default ./outputs): pipeline_root/ (artifacts) and metadata/ (MLMD).
Bad input ends the run with exit code 1 and one clear message, never a runner traceback.
"""

import argparse
import logging as std_logging
import sys
import time

from absl import logging
from tfx import v1 as tfx

from components import artifacts
from components.data_validation_gate import DataValidationError
from components.interaction_example_gen import executor as example_gen_executor
from components.interaction_example_gen.errors import IngestionError
from pipeline import configs
from pipeline import dataset_spec
from pipeline import pipeline as dsmoe_pipeline
from pipeline import run_summary

# Errors that mean "fix your input or config", reported without a traceback.
USER_ERRORS = (IngestionError, DataValidationError, dataset_spec.SpecError,
               configs.ConfigError)


def run(config: configs.PipelineConfig) -> None:
  tfx.orchestration.LocalDagRunner().run(
      dsmoe_pipeline.create_pipeline(
          config,
          metadata_connection_config=tfx.orchestration.metadata
          .sqlite_metadata_connection_config(config.metadata_path)))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default='', help='YAML file overriding the defaults')
  parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                      help='override one config value, e.g. ingestion.history_length=30')
  parser.add_argument('--verbose', action='store_true', help='show TFX and Beam logs')
  args = parser.parse_args(argv)
  logging.set_verbosity(logging.INFO if args.verbose else logging.WARNING)
  if not args.verbose:
    for name in ('apache_beam', 'tensorflow', 'absl'):
      std_logging.getLogger(name).setLevel(std_logging.ERROR)

  started = time.time()
  try:
    config = configs.load_config(args.config, args.set)
    print(f'pipeline {config.pipeline_name}: data {config.path(config.data_dir)}, '
          f'outputs {config.path(config.output_dir)}', flush=True)
    run(config)
  except USER_ERRORS as e:
    print(f'\nerror: {e}', file=sys.stderr)
    return 1
  store = run_summary.open_store(config.metadata_path)
  print(f'\nfinished in {time.time() - started:.0f} s\n'
        + run_summary.format_component_times(run_summary.component_times(store)))
  summary = run_summary.latest_artifact_file(store, artifacts.IngestionReport.TYPE_NAME,
                                             example_gen_executor.SUMMARY_TEXT)
  if summary:
    with open(summary, encoding='utf-8') as f:
      print('\n' + f.read())
  return 0


if __name__ == '__main__':
  sys.exit(main())
