"""Ingests the days after a release, alone, from the release's end state.

    python -m ingestion.new_days [--config my.yaml] [--set key=value ...] [--release DIR]

With daily log files (logs.day_format), the days in the data directory after the last day
the release saw (its manifest's data.log_days; the latest release by default) are read,
and only those: each item's counts start from the release's item_state/, each user's
history from its user_snapshot/, the scenarios are the release's (ingest.PreviousDays).
The examples, the new end state, the corpus and the report go to
<output_dir>/new_days/<release version>/<first day>_<last day>/ (ingest.OutputPaths.under),
the same examples an ingestion of every day writes for these days (tests).

Refused, with the file named and nothing written: a day the release has from another
file (a day twice), a day before the release's last one that it never had (out of
order), days missing after the release's last day, and a file holding another day's
events (the ingestion is written beside its directory and renamed into place only when
accepted). The release is never written to. This is the first step of a daily refresh
(issue 26); the warm-started training and the gate after it are not built yet.
"""

import argparse
import json
import os
import shutil
import sys

import apache_beam as beam
import tensorflow as tf

from core import config as configs
from core import dataset_spec as ds
from core import errors
from core import release_format
from ingestion import days as log_days
from ingestion import ingest
from ingestion import report
from ingestion.errors import IngestionError


def ingest_new_days(config: configs.PipelineConfig, release_dir: str) -> tuple[str, dict]:
  """(output directory, summary) of ingesting the days after `release_dir`."""
  spec = ds.DatasetSpec.from_yaml(config.local_path(config.dataset_spec))
  if not spec.logs.day_format:
    raise IngestionError('new days are read from daily log files: set logs.day_format in '
                         'the dataset spec (README, Your own logs)')
  manifest = ingest.release_manifest(release_dir)
  data_dir = config.path(config.data_dir)
  files = ingest.find_input_files(spec, data_dir)
  new = log_days.new_days(manifest['data'].get('log_days', ()),
                          log_days.log_days(files.logs, spec.logs.day_format),
                          f'release {release_dir}')
  if not new:
    raise IngestionError(f'no daily log file in {data_dir} after the last day of release '
                         f'{release_dir}; nothing new to ingest')
  previous = ingest.PreviousDays.of_release(
      release_dir, spec.split.day_start_ms(new[0].day))
  out = os.path.join(config.path(config.output_dir), 'new_days', manifest['version'],
                     f'{new[0].day}_{new[-1].day}')
  # Written beside `out` and renamed into place when accepted: a refused or failed
  # ingestion leaves nothing, and an earlier output of the same days stays until then.
  partial = out + '.partial'
  shutil.rmtree(partial, ignore_errors=True)
  try:
    summary = ingest.ingest_and_summarize(
        lambda: beam.Pipeline(argv=list(config.beam_pipeline_args)), spec, data_dir,
        config.ingestion, ingest.OutputPaths.under(partial), previous)
    report.check(summary, config.ingestion, whole_log=False)
    with tf.io.gfile.GFile(os.path.join(partial, 'summary.json'), 'w') as f:
      json.dump(summary, f, indent=2)
  except BaseException:
    shutil.rmtree(partial, ignore_errors=True)
    raise
  shutil.rmtree(out, ignore_errors=True)
  os.rename(partial, out)
  return out, summary


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default='', help='YAML file overriding the defaults')
  parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE')
  parser.add_argument('--release', default='',
                      help='the release to continue from (default: the latest one)')
  args = parser.parse_args(argv)
  try:
    config = configs.load_config(args.config, args.set)
    release = args.release or release_format.latest_release(config.releases_dir)
    if not release:
      raise IngestionError(f'no release under {config.releases_dir}; run make run first')
    out, summary = ingest_new_days(config, release)
  except errors.InputError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(report.format_text(summary))
  print(f'new days written to {out}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
