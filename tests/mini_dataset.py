"""A tiny hand-made dataset (logs + feature tables + spec) whose answers are known."""

import csv
import datetime
import os
from typing import Optional, Sequence

import apache_beam as beam

from core import config as configs
from core import dataset_spec as ds
from core import examples
from ingestion import ingest

LOG_HEADER = ('uid', 'iid', 'tab', 'click', 'ts')
USER_HEADER = ('uid', 'age', 'gender')
ITEM_HEADER = ('iid', 'cat', 'tags')
DAY_MS = 86_400_000
T0 = 1_650_000_000_000  # 2022-04-15T05:20:00Z
VALIDATION_START = T0 + 2 * DAY_MS  # train before, validation from here on
TEST_START = VALIDATION_START + 4 * 60_000  # test from here on


def _iso(ms: int) -> str:
  return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat()


SPEC_YAML = f"""
name: mini
logs: {{path: "logs*.csv*", user_id: uid, item_id: iid, scenario: tab, label: click,
        timestamp: ts, timestamp_format: epoch_ms}}
users: {{path: "users.csv", id: uid, features: {{age: numeric, gender: categorical}}}}
items:
  path: items.csv
  id: iid
  features: {{cat: categorical, tags: {{kind: multi_categorical, separator: "|"}}}}
split: {{validation_start: "{_iso(VALIDATION_START)}", test_start: "{_iso(TEST_START)}"}}
"""


def write_csv(path: str, header: Sequence[str], rows: Sequence[Sequence]) -> None:
  with open(path, 'w', newline='', encoding='utf-8') as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)


def write_dataset(directory: str, logs: Sequence[Sequence],
                  users: Optional[Sequence[Sequence]] = None,
                  items: Optional[Sequence[Sequence]] = None) -> ds.DatasetSpec:
  """Writes logs.csv, users.csv, items.csv and spec.yaml; returns the spec."""
  os.makedirs(directory, exist_ok=True)
  write_csv(os.path.join(directory, 'logs.csv'), LOG_HEADER, logs)
  write_csv(os.path.join(directory, 'users.csv'), USER_HEADER,
            users if users is not None else DEFAULT_USERS)
  write_csv(os.path.join(directory, 'items.csv'), ITEM_HEADER,
            items if items is not None else DEFAULT_ITEMS)
  spec_path = os.path.join(directory, 'spec.yaml')
  with open(spec_path, 'w', encoding='utf-8') as f:
    f.write(SPEC_YAML)
  return ds.DatasetSpec.from_yaml(spec_path)


def t(day: float, minute: int = 0) -> int:
  """A timestamp `day` days after T0 plus `minute` minutes."""
  return int(T0 + day * DAY_MS + minute * 60_000)


DEFAULT_USERS = [('u1', '30', 'f'), ('u2', '41', 'm'), ('u3', '', 'm'),
                 ('u5', '25', 'f')]  # u5 has no event
DEFAULT_ITEMS = [('a', 'sport', 'x|y'), ('b', 'news', 'y'), ('c', 'news', ''),
                 ('d', 'food', 'z')]
# Train positives per scenario: s1 4, s2 2, s3 1, s5 1 (s3 wins the tie by value), s4 0.
# With num_scenarios=3 the mapping is s1 -> 0, s2 -> 1, s3 -> 2; s4 and s5 are dropped.
DEFAULT_LOGS = [
    ('u1', 'a', 's1', 1, t(0, 1)),
    ('u1', 'b', 's2', 1, t(0, 2)),
    ('u1', 'c', 's1', 0, t(0, 3)),
    ('u1', 'c', 's1', 1, t(0, 3)),  # same millisecond as the row above
    ('u1', 'd', 's1', 1, t(1, 0)),
    ('u1', 'a', 's1', 1, t(2, 5)),  # test
    ('u1', 'b', 's1', 0, t(2, 6)),  # test
    ('u1', 'c', 's2', 1, t(2, 3)),  # validation
    ('u2', 'b', 's2', 1, t(0, 10)),
    ('u2', 'a', 's3', 1, t(1, 10)),
    ('u2', 'c', 's1', 1, t(1, 11)),
    ('u2', 'd', 's4', 1, t(2, 1)),  # validation, scenario without train positives
    ('u2', 'a', 's2', 0, t(2, 2)),  # validation
    ('u3', 'b', 's5', 1, t(0, 20)),  # dropped scenario, but still in u3's history
    ('u3', 'x', 's1', 0, t(0, 30)),  # item 'x' has no feature row
    ('u4', 'a', 's3', 0, t(2, 30)),  # user 'u4' has no feature row; test
]


def run_ingestion(data_dir: str, spec: ds.DatasetSpec, out_dir: str,
                  config: configs.IngestionConfig = configs.IngestionConfig(
                      num_scenarios=3)) -> dict:
  """Runs the Beam ingestion like the executor does; returns the summary."""
  beam_args = list(configs.PipelineConfig().beam_pipeline_args)
  return ingest.ingest_and_summarize(lambda: beam.Pipeline(argv=beam_args), spec,
                                     data_dir, config, ingest.OutputPaths.under(out_dir))


def read_output(out_dir: str, output: str, split: str = '') -> list[dict]:
  """The examples of one output (examples, item_corpus, user_snapshot) and split of an
  ingestion run_ingestion wrote under `out_dir`."""
  return read_examples(os.path.join(out_dir, output, split))


def read_examples(directory: str) -> list[dict]:
  """Every tf.Example in a split directory, as {name: list of python values}."""
  return [examples.to_python(record)
          for record in examples.records(os.path.join(directory, '*.gz'))]
