"""The ingestion as a Beam pipeline: raw logs + feature tables -> tf.Example TFRecords.

    logs ----parse----> events --+-- join items (CoGroupByKey on item id) --> item corpus
                                 |                 |             (as of 3 moments)
    item table --parse-----------+                 v
                                     join users (CoGroupByKey on user id), per user:
    user table --parse------------->   sort by time, histories, scenario filter, time split
                                                   |
                          train / validation / test / all TFRecords + user snapshot
                          (features and history as of the last event, for every user)
                          + item state (every item's counts as of the last event)

Side inputs: the split boundaries (from the spec, or from the log's last day for day
counts) and the selected scenarios (from positives per scenario in the training split).
Both joins are CoGroupByKeys, so feature tables of any size work on a distributed runner.

Time: a train example sees the user's history before its event; a validation or test example
sees the history (and the time-dependent item features) as of its window's start, as a
model serving that window would (records.as_of_ms). The split `all`
repeats every event as a training example over all days, for the model a release serves.
The snapshot and the item state are the end state a new day is ingested from alone
(PreviousDays), with the same examples as ingesting every day again.

Every dropped or defaulted row is counted; the counts, the first bad rows and the scenario
selection go to a raw report (JSON) that `report.py` turns into the ingestion summary.
"""

import collections
import dataclasses
import datetime
import json
import os
from typing import Callable, Iterator, Mapping, Optional, Sequence

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen import write_split

from core import config as configs
from core import dataset_spec as ds
from core import examples as example_files
from core import feature_names as fnames
from core import layout
from core import release_format
from ingestion import counts
from ingestion import csv_tables
from ingestion import days as log_days
from ingestion import records
from ingestion import report
from ingestion.errors import IngestionError

BAD_ROW_SAMPLES = 20

_BAD = 'bad'
_COUNT = 'count'
_ITEM_STATE = 'item_state'


@dataclasses.dataclass(frozen=True)
class InputFiles:
  logs: tuple[str, ...]
  users: tuple[str, ...]
  items: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class PreviousDays:
  """What the ingestion of one new day starts from instead of every earlier day: the
  outputs of the ingestion that ended before it."""
  item_state: str  # file pattern of its item_state (records.item_state_example)
  user_snapshot: str  # file pattern of its user snapshot (records.user_example)
  scenarios: tuple[str, ...]  # the served scenarios, in index order
  day_start_ms: int  # the new day's first millisecond; no earlier event is read

  @classmethod
  def of_release(cls, release_dir: str, day_start_ms: int) -> 'PreviousDays':
    """The end state a release was built to (its item_state/, user_snapshot/ and
    scenarios) as the start of the day from `day_start_ms`; IngestionError when the
    release already holds events of that moment or later."""
    manifest = release_manifest(release_dir)
    last_event, last_ms = release_last_event(release_dir)
    if day_start_ms <= last_ms:
      raise IngestionError(
          f'{release_dir} already holds events up to {last_event}; a new day starting '
          f'{_iso_utc(day_start_ms)} would count some of them twice. Ingest only days '
          f'after its last event.')
    return cls(os.path.join(release_dir, release_format.ITEM_STATE_DIR, '*'),
               os.path.join(release_dir, release_format.USER_SNAPSHOT_DIR, '*'),
               tuple(manifest['scenarios']), day_start_ms)


def release_manifest(release_dir: str) -> dict:
  """The manifest of the release in `release_dir`; an IngestionError when it is none."""
  manifest = release_format.read_manifest(release_dir)
  if manifest is None:
    raise IngestionError(f'{release_dir} is not a release (no {release_format.MANIFEST}); '
                         f'name a directory under the releases directory')
  return manifest


def release_last_event(release_dir: str) -> tuple[str, int]:
  """(ISO time, epoch ms) of the last event a release was built from."""
  last_event = release_manifest(release_dir)['data']['windows']['last_event']
  return last_event, int(datetime.datetime.fromisoformat(last_event).timestamp() * 1000)


def check_newest_day_after(summary: dict, release_dir: str, data_dir: str) -> None:
  """A refresh of `release_dir` gates on the log's newest day (the test window): refuses,
  before anything trains, a log whose newest day the release already holds."""
  last_event, last_ms = release_last_event(release_dir)
  if summary['test_start_ms'] <= last_ms:
    raise IngestionError(
        f'the release {release_dir} already holds events up to {last_event}, and the '
        f'newest day of the logs in {data_dir} starts {summary["test_start"]}: a refresh '
        f'needs a day after the release; add that day\'s log file and run it again')


@dataclasses.dataclass(frozen=True)
class OutputPaths:
  examples: Mapping[str, str]  # split (layout.EXAMPLE_SPLITS [+ HISTORY]) -> directory
  item_corpus: Mapping[str, str]  # split (layout.CORPUS_SPLITS) -> directory
  user_snapshot: str  # directory
  raw_report: str  # JSON file
  item_state: str  # directory: every item's counts as of the last event (records.ItemState)

  @classmethod
  def under(cls, directory: str, history: bool = False) -> 'OutputPaths':
    """Every output in its own subdirectory of `directory` (outside a TFX pipeline):
    examples/<split> (with `history`, also layout.HISTORY), item_corpus/<split>,
    user_snapshot, raw_report.json, item_state."""
    splits = layout.EXAMPLE_SPLITS + ((layout.HISTORY,) if history else ())
    return cls({s: os.path.join(directory, 'examples', s) for s in splits},
               {s: os.path.join(directory, 'item_corpus', s) for s in layout.CORPUS_SPLITS},
               os.path.join(directory, 'user_snapshot'),
               os.path.join(directory, layout.INGESTION_RAW_REPORT),
               os.path.join(directory, 'item_state'))


def ingest_and_summarize(make_pipeline: Callable[[], beam.Pipeline],
                         spec: ds.DatasetSpec, data_dir: str,
                         config: configs.IngestionConfig, outputs: OutputPaths,
                         previous: Optional[PreviousDays] = None,
                         window_days: int = 0) -> dict:
  """Checks the input files, runs the Beam ingestion and returns its summary
  (report.summarize); the pipeline's executor and the TFDS builder both run this. With
  `previous`, the log files are new days only; with `window_days`, the training examples
  are those of the last days only (see build_ingestion)."""
  files = find_input_files(spec, data_dir)
  days = (log_days.log_days(files.logs, spec.logs.day_format) if spec.logs.day_format
          else ())
  if previous is not None:  # only the days from previous.day_start_ms on are read
    if not spec.logs.day_format:
      raise IngestionError('ingesting new days alone needs daily log files: set '
                           'logs.day_format in the dataset spec (README, Your own logs)')
    days = tuple(d for d in days if spec.split.day_start_ms(d.day)
                 >= previous.day_start_ms)
    if not days:
      raise IngestionError(f'no daily log file in {data_dir} from '
                           f'{_iso_utc(previous.day_start_ms)} on; nothing new to ingest')
    files = dataclasses.replace(files, logs=tuple(d.path for d in days))
    _check_state(previous, len(spec.logs.tasks))
  with make_pipeline() as pipeline:
    build_ingestion(pipeline, spec, files, config, outputs, days, previous, window_days)
  with tf.io.gfile.GFile(outputs.raw_report) as f:
    return report.summarize(json.load(f), spec, days)


def _check_state(previous: PreviousDays, num_tasks: int) -> None:
  """IngestionError when the end state does not count what this spec's ingestion counts
  (the scenarios and the ranking tasks), before any Beam work."""
  try:
    serialized = next(example_files.records(previous.item_state), None)
  except FileNotFoundError:
    raise IngestionError(f'no end state at {previous.item_state} (a release published '
                         f'before releases kept item_state/): ingest every day again '
                         f'(make run)') from None
  if serialized is not None:
    _, state = records.parse_item_state(serialized)
    if (len(state.outcomes) != 1 + num_tasks or
        len(state.clicks) != len(previous.scenarios)):
      raise IngestionError(
          f'the end state {previous.item_state} counts {len(state.outcomes) - 1} ranking '
          f'tasks and {len(state.clicks)} scenarios; this ingestion has {num_tasks} tasks '
          f'(logs.tasks) and {len(previous.scenarios)} scenarios. The dataset spec changed '
          f'since it was written: ingest every day again (make run).')


def _iso_utc(ms: int) -> str:
  return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat(
      timespec='seconds')


def find_input_files(spec: ds.DatasetSpec, data_dir: str) -> InputFiles:
  """Matches the spec's patterns and checks every file's header, before any Beam work."""
  log_columns = {spec.logs.user_id: 'logs.user_id', spec.logs.item_id: 'logs.item_id',
                 spec.logs.scenario: 'logs.scenario', spec.logs.label: 'logs.label',
                 spec.logs.timestamp: 'logs.timestamp'}
  for task in spec.logs.tasks:
    log_columns.setdefault(task.column, f'logs.tasks.{task.name}')
  files = {}
  for table, pattern, required in (
      ('logs', spec.logs.path, log_columns),
      ('users', spec.users.path, _table_columns('users', spec.users)),
      ('items', spec.items.path, _table_columns('items', spec.items))):
    files[table] = tuple(csv_tables.match_files(data_dir, pattern, table, f'{table}.path'))
    for path in files[table]:
      csv_tables.check_header(path, table, required)
  return InputFiles(**files)


def _table_columns(table: str, spec: ds.FeatureTableSpec) -> dict:
  columns = {spec.id_column: f'{table}.id'}
  columns.update({f.column: f'{table}.features.{f.column}' for f in spec.features})
  return columns


def build_ingestion(pipeline: beam.Pipeline, spec: ds.DatasetSpec, files: InputFiles,
                    options: configs.IngestionConfig, outputs: OutputPaths,
                    days: Sequence[log_days.LogDay] = (),
                    previous: Optional[PreviousDays] = None, window_days: int = 0) -> None:
  """Adds the whole ingestion, writes included, to `pipeline`; with `days` (daily log
  files), every event is checked against its file's day and counted per file.

  With `previous`, the logs are the events from previous.day_start_ms on (a new day) and
  everything before comes from the previous ingestion's end state: each item's counts
  start from its item_state, each user's history from the snapshot, the scenarios are
  the previous ones. The new events are the test window (features as of the day's start)
  and, as training examples, `all` (as of each event); the train and validation splits
  are empty. The item state, corpus `all` and snapshot are as of the new last event, as
  an ingestion of every day would write them (tests/test_ingestion.py).

  With `window_days` (a refresh, which trains on its last days only; outputs.examples
  must name layout.HISTORY), the train events before the `window_days` calendar days
  before the test window are written once, to HISTORY, instead of to train and all
  (where they would be the same example twice): every count, history and time-dependent
  feature is the same, only fewer examples are written (and transformed later)."""
  if window_days and (previous is not None or layout.HISTORY not in outputs.examples):
    raise ValueError('window_days needs every day ingested and a HISTORY output split')
  log_rows = _read(pipeline, 'Logs', 'logs', files.logs, spec.logs.columns)
  user_rows = _read(pipeline, 'Users', 'users', files.users, spec.users.columns)
  item_rows = _read(pipeline, 'Items', 'items', files.items, spec.items.columns)

  events = log_rows.rows | 'ParseEvents' >> beam.ParDo(
      _ParseEvents(spec.logs, spec.split, {d.path: d.day for d in days})).with_outputs(
          _BAD, _COUNT, main='events')
  users = user_rows.rows | 'ParseUsers' >> beam.ParDo(
      _ParseFeatureRows('users', spec.users)).with_outputs(_BAD, _COUNT, main='rows')
  items = item_rows.rows | 'ParseItems' >> beam.ParDo(
      _ParseFeatureRows('items', spec.items)).with_outputs(_BAD, _COUNT, main='rows')

  max_timestamp = (events.events
                   | 'Timestamps' >> beam.Map(lambda e: e.timestamp_ms)
                   | 'MaxTimestamp' >> beam.CombineGlobally(_max_or_none))
  if previous is None:
    bounds = max_timestamp | 'SplitBoundaries' >> beam.Map(
        lambda last: spec.split.boundaries(last) if last is not None else
        ds.SplitBoundaries(0, 0))
  else:
    bounds = pipeline | 'SplitBoundaries' >> beam.Create(
        [ds.SplitBoundaries(previous.day_start_ms, previous.day_start_ms)])
    options = dataclasses.replace(options, scenarios=previous.scenarios)
  if window_days:
    bounds = bounds | 'TrainingWindow' >> beam.Map(
        lambda b: b.with_window(window_days, spec.split))
  bounds_side = beam.pvalue.AsSingleton(bounds)
  # "As of the last event": everything up to and including the log's last millisecond.
  # A new day without any valid event ends where it starts (the refusal comes after).
  first_ms = previous.day_start_ms if previous is not None else 0
  end_side = beam.pvalue.AsSingleton(
      max_timestamp | 'End' >> beam.Map(lambda last: max((last or 0) + 1, first_ms)))

  scenarios = (
      events.events
      | 'ScenarioOfEvent' >> beam.Map(_scenario_train_counts, bounds_side)
      | 'CountPerScenario' >> beam.CombinePerKey(_sum_pairs)
      | 'ScenarioCounts' >> beam.Map(
          lambda kv: records.ScenarioCount(kv[0], kv[1][0], kv[1][1]))
      | 'AllScenarioCounts' >> beam.combiners.ToList()
      | 'SelectScenarios' >> beam.Map(records.select_scenarios, options.num_scenarios,
                                      options.scenarios))
  scenarios_side = beam.pvalue.AsSingleton(scenarios)

  item_inputs = {'events': events.events | 'KeyByItem' >> beam.Map(lambda e: (e.item_id, e)),
                 'features': items.rows | 'KeyItemRows' >> beam.Map(lambda r: (r.id, r))}
  user_inputs = {}
  if previous is not None:
    item_inputs['state'] = (
        pipeline | 'ReadItemState' >> beam.io.ReadFromTFRecord(previous.item_state)
        | 'ParseItemState' >> beam.Map(records.parse_item_state))
    user_inputs['history'] = (
        pipeline | 'ReadSnapshot' >> beam.io.ReadFromTFRecord(previous.user_snapshot)
        | 'ParseSnapshot' >> beam.Map(records.snapshot_history))
  with_items = (
      item_inputs
      | 'JoinItems' >> beam.CoGroupByKey()
      | 'AttachItemFeatures' >> beam.ParDo(
          _AttachItemFeatures(spec.items, options, len(spec.logs.task_names)), bounds_side,
          end_side,
          scenarios_side).with_outputs(_BAD, _COUNT, _ITEM_STATE, *_corpus_tags(),
                                       main='events'))

  examples = (
      {'events': with_items.events,
       'features': users.rows | 'KeyUserRows' >> beam.Map(lambda r: (r.id, r)),
       **user_inputs}
      | 'JoinUsers' >> beam.CoGroupByKey()
      | 'BuildExamples' >> beam.ParDo(
          _BuildUserExamples(spec.users, options.history_length, spec.logs.task_names),
          bounds_side,
          scenarios_side).with_outputs(_BAD, _COUNT, layout.USERS,
                                       *layout.EXAMPLE_SPLITS[1:], layout.HISTORY,
                                       main=layout.EXAMPLE_SPLITS[0]))

  for split in outputs.examples:
    _ = examples[split] | f'Write-examples-{split}' >> write_split.WriteSplit(
        outputs.examples[split], None)
  for split, tag in zip(layout.CORPUS_SPLITS, _corpus_tags()):
    _ = with_items[tag] | f'Write-corpus-{split}' >> write_split.WriteSplit(
        outputs.item_corpus[split], None)
  snapshot = examples[layout.USERS]
  _ = snapshot | 'WriteSnapshot' >> write_split.WriteSplit(outputs.user_snapshot, None)
  _ = with_items[_ITEM_STATE] | 'WriteItemState' >> write_split.WriteSplit(
      outputs.item_state, None)

  tallies = [log_rows.count, user_rows.count, item_rows.count, events[_COUNT],
             users[_COUNT], items[_COUNT], with_items[_COUNT], examples[_COUNT],
             with_items[_corpus_tags()[0]] | 'CountCorpus' >> beam.combiners.Count.Globally()
             | 'CorpusKey' >> beam.Map(lambda n: (counts.CORPUS_ITEMS, n)),
             snapshot | 'CountSnapshot' >> beam.combiners.Count.Globally()
             | 'SnapshotKey' >> beam.Map(lambda n: (counts.SNAPSHOT_USERS, n))]
  if days:
    tallies.append(events.events | 'DayRowKeys' >> beam.Map(
        lambda e: (counts.day_rows(e.file), 1)) | 'CountDayRows' >> beam.CombinePerKey(sum))
  bad_rows = ((log_rows.bad, events[_BAD], users[_BAD], items[_BAD], with_items[_BAD],
               examples[_BAD]) | 'AllBadRows' >> beam.Flatten())
  tallies.append(bad_rows | 'BadRowKeys' >> beam.Map(lambda b: (counts.bad_rows(b.table), 1)))
  all_counts = (tallies | 'AllCounts' >> beam.Flatten()
                | 'SumCounts' >> beam.CombinePerKey(sum)
                | 'CountsDict' >> beam.combiners.ToDict())
  bad_samples = bad_rows | 'FirstBadRows' >> beam.combiners.Top.Smallest(
      BAD_ROW_SAMPLES, key=lambda b: (b.table, b.file, b.line))

  _ = (pipeline
       | 'ReportSeed' >> beam.Create([None])
       | 'RawReport' >> beam.Map(
           _raw_report, totals=beam.pvalue.AsSingleton(all_counts),
           bad_rows=beam.pvalue.AsSingleton(bad_samples), scenarios=scenarios_side,
           bounds=bounds_side, max_timestamp_ms=beam.pvalue.AsSingleton(max_timestamp))
       | 'WriteRawReport' >> beam.io.WriteToText(outputs.raw_report, num_shards=1,
                                                 shard_name_template=''))


def _corpus_tags() -> tuple[str, ...]:
  """Beam output tags of the item corpus splits (distinct from the examples' tags)."""
  return tuple(f'corpus_{split}' for split in layout.CORPUS_SPLITS)


@dataclasses.dataclass
class _TableRead:
  rows: beam.PCollection  # CsvRow
  bad: beam.PCollection  # BadRow
  count: beam.PCollection  # (counts.rows_read(table), n)


def _read(pipeline, label: str, table: str, paths: Sequence[str],
          columns: Sequence[str]) -> _TableRead:
  read = (pipeline
          | f'{label}Files' >> beam.Create(list(paths))
          | f'Read{label}' >> beam.ParDo(csv_tables.ReadCsvRows(table, columns))
          .with_outputs(csv_tables.ReadCsvRows.BAD, main='rows'))
  rows = read.rows | f'Spread{label}' >> beam.Reshuffle()
  count = ((rows, read[csv_tables.ReadCsvRows.BAD])
           | f'{label}RowsAndBad' >> beam.Flatten()
           | f'Count{label}' >> beam.combiners.Count.Globally()
           | f'{label}CountKey' >> beam.Map(lambda n: (counts.rows_read(table), n)))
  return _TableRead(rows, read[csv_tables.ReadCsvRows.BAD], count)


class _ParseEvents(beam.DoFn):
  """CsvRow -> Event, or a BadRow; with daily files (`file_days`: path -> day), an event
  of another day than its file's is a BadRow too, counted per file."""

  def __init__(self, log: ds.LogSpec, split: ds.SplitSpec,
               file_days: Mapping[str, datetime.date]):
    self._log = log
    self._split = split
    self._file_days = dict(file_days)

  def process(self, row: csv_tables.CsvRow) -> Iterator:
    tz = self._split.tzinfo
    parsed = records.parse_event(row.cells, self._log, tz, row.file, row.line)
    if isinstance(parsed, records.BadRow):
      yield beam.pvalue.TaggedOutput(_BAD, parsed)
      return
    file_day = self._file_days.get(row.file)
    if file_day is not None:
      day = datetime.datetime.fromtimestamp(parsed.timestamp_ms / 1000, tz).date()
      if day != file_day:
        yield beam.pvalue.TaggedOutput(_COUNT, (counts.day_rows(row.file), 1))
        yield beam.pvalue.TaggedOutput(_COUNT, (counts.other_day_events(row.file), 1))
        yield beam.pvalue.TaggedOutput(_BAD, records.BadRow(
            'logs', row.file, row.line, self._log.timestamp, row.cells[self._log.timestamp],
            f'an event of {day} in the file of {file_day} (logs.day_format, '
            f'split.timezone {self._split.timezone})'))
        return
    yield parsed


class _ParseFeatureRows(beam.DoFn):

  def __init__(self, table: str, spec: ds.FeatureTableSpec):
    self._table = table
    self._spec = spec

  def process(self, row: csv_tables.CsvRow) -> Iterator:
    parsed = records.parse_feature_row(self._table, self._spec, row.cells, row.file,
                                       row.line)
    if isinstance(parsed, records.BadRow):
      yield beam.pvalue.TaggedOutput(_BAD, parsed)
      return
    for column in parsed.missing:
      yield beam.pvalue.TaggedOutput(_COUNT, (counts.missing_value(self._table, column), 1))
    yield parsed


def _unique_row(table: str, id_column: str, rows) -> tuple[Optional[records.FeatureRow],
                                                           list[records.BadRow]]:
  """The feature row of one id, and a BadRow for every duplicate of it."""
  rows = sorted(rows, key=lambda r: (r.file, r.line))
  if not rows:
    return None, []
  first = rows[0]
  duplicates = [records.BadRow(
      table, r.file, r.line, id_column, r.id,
      f'duplicate id: {first.file} line {first.line} has the same id; keep one row per id')
                for r in rows[1:]]
  return first, duplicates


class _AttachItemFeatures(beam.DoFn):
  """(item id, {events, features}) -> (user id, (event, item features)) + corpus examples.

  The item features of an event come in two views, serialized: the view of the event's
  own split (train, validation or test) and the refit view (all). The static features are
  built once per item; the popularity features (beyond the paper, each behind its
  ingestion flag) are point in time, as of records.as_of_ms of the view (a training event's
  own moment, an evaluation window's start), counting clicks strictly before it:
    scenario_clicks         the item's clicks per served scenario;
    scenario_recent_clicks  the same clicks exponentially decayed (records.ItemClicks);
    item_outcomes           the item's exposures and each ranking task's positives, all
                            scenarios (records.ItemOutcomes), for the rankers.
  So a training click never counts itself, and the random negatives the Trainer draws for
  it get the same features as of the same moment (models/item_clicks.py).
  The corpus gets one example per corpus split, as of the end of the training window
  (train), the start of the test window (test) and the last event (all).
  """

  def __init__(self, spec: ds.FeatureTableSpec, options: configs.IngestionConfig,
               num_tasks: int):
    self._spec = spec
    self._num_tasks = num_tasks
    self._defaults = records.default_feature_values(spec)
    self._clicks = options.scenario_click_features
    self._recent = options.recent_click_features
    self._half_life_ms = options.recent_clicks_half_life_days * 86_400_000
    self._outcomes = options.item_outcome_features

  def process(self, element, bounds: ds.SplitBoundaries, end_ms: int,
              scenarios: Sequence[records.ScenarioCount]) -> Iterator:
    item_id, grouped = element
    row, duplicates = _unique_row('items', self._spec.id_column, grouped['features'])
    for bad in duplicates:
      yield beam.pvalue.TaggedOutput(_BAD, bad)
    events = grouped['events']
    features_bytes = records.features_proto(
        row.values if row else self._defaults).SerializeToString()
    served = [s.value for s in scenarios]
    [start] = grouped.get('state') or [None]  # an item new since the previous day: None
    clicks = records.ItemClicks(events, served, self._half_life_ms, start)
    outcomes = records.ItemOutcomes(events, self._num_tasks, start)
    yield beam.pvalue.TaggedOutput(_ITEM_STATE, records.item_state_example(
        item_id, records.ItemState(end_ms, tuple(clicks.counts(end_ms)),
                                   tuple(clicks.decayed(end_ms)),
                                   tuple(outcomes.counts(end_ms)))).SerializeToString())

    def popularity(as_of_ms: int) -> bytes:
      values = {}
      if self._clicks:
        values[fnames.SCENARIO_CLICKS] = clicks.counts(as_of_ms)
      if self._recent:
        values[fnames.SCENARIO_RECENT_CLICKS] = clicks.decayed(as_of_ms)
      if self._outcomes:
        values[fnames.ITEM_OUTCOMES] = outcomes.counts(as_of_ms)
      return records.float_lists_proto(values) if values else b''

    corpus_as_of = {layout.TRAIN: bounds.validation_start_ms,
                    layout.TEST: bounds.test_start_ms, layout.ALL: end_ms}
    for split, tag in zip(layout.CORPUS_SPLITS, _corpus_tags()):
      corpus = records.item_example(item_id, tf.train.Features.FromString(
          features_bytes + popularity(corpus_as_of[split])))
      yield beam.pvalue.TaggedOutput(tag, corpus)
    num_events = 0
    for event in events:
      num_events += 1
      split = records.split_of(event.timestamp_ms, bounds)
      as_of = records.as_of_ms(event.timestamp_ms, split, bounds)
      own = features_bytes + popularity(event.timestamp_ms)  # its view in ALL
      # A training event's own view is its view in ALL (both as of the event): once.
      views = (own if as_of == event.timestamp_ms else features_bytes + popularity(as_of),
               own)
      yield event.user_id, (event, views)
    if row is None:
      yield beam.pvalue.TaggedOutput(_COUNT, (counts.ITEMS_WITHOUT_FEATURES, 1))
      yield beam.pvalue.TaggedOutput(_COUNT,
                                     (counts.EVENTS_WITH_DEFAULT_ITEM_FEATURES, num_events))


class _BuildUserExamples(beam.DoFn):
  """All events of one user -> serialized tf.Examples tagged by split (each event in its
  time window's split and, as a training example, in ALL), and the user's snapshot
  (features and history as of the last event) tagged USERS."""

  def __init__(self, spec: ds.FeatureTableSpec, history_length: int,
               task_names: Sequence[str]):
    self._spec = spec
    self._history_length = history_length
    self._task_names = tuple(task_names)
    self._defaults = records.default_feature_values(spec)

  def process(self, element, bounds: ds.SplitBoundaries,
              scenarios: Sequence[records.ScenarioCount]) -> Iterator:
    user_id, grouped = element
    events = sorted(grouped['events'],
                    key=lambda pair: (pair[0].timestamp_ms, pair[0].file, pair[0].line))
    row, duplicates = _unique_row('users', self._spec.id_column, grouped['features'])
    for bad in duplicates:
      yield beam.pvalue.TaggedOutput(_BAD, bad)
    user_features = records.features_proto(row.values if row else self._defaults)
    user_events = [e for e, _ in events]
    # Clicks of the days before (the previous snapshot's history), when ingesting a new day.
    [before] = grouped.get('history') or [[]]
    [history] = records.histories(user_events, [None], self._history_length, before)
    yield beam.pvalue.TaggedOutput(layout.USERS, records.user_example(
        user_id, history, user_features).SerializeToString())
    if not events:  # a user of the feature table who has no event
      return
    tally = collections.Counter()
    if row is None:
      tally[counts.USERS_WITHOUT_FEATURES] += 1
      tally[counts.EVENTS_WITH_DEFAULT_USER_FEATURES] += len(events)
    selected = {s.value for s in scenarios}
    splits = [records.split_of(e.timestamp_ms, bounds) for e in user_events]
    split_histories = records.histories(
        user_events, [records.as_of_ms(e.timestamp_ms, split, bounds)
                      for e, split in zip(user_events, splits)], self._history_length, before)
    all_histories = records.histories(user_events, [e.timestamp_ms for e in user_events],
                                      self._history_length, before)
    for (event, views), split, *histories in zip(events, splits, split_histories,
                                                 all_histories):
      if event.scenario not in selected:
        tally[counts.dropped_scenario(event.scenario)] += 1
        continue
      tally[counts.events(split, event.scenario)] += 1
      tally[counts.positives(split, event.scenario)] += event.label
      for task, value in zip(self._task_names, event.tasks):
        tally[counts.task_positives(split, event.scenario, task)] += value
      tags = (split, layout.ALL)
      if event.timestamp_ms < bounds.window_start_ms:  # before a refresh's window
        tally[counts.HISTORY_EVENTS] += 1
        tags = (layout.HISTORY,)  # its train view (the same as its view in all), once
      for tag, item_bytes, history in zip(tags, views, histories):
        example = records.event_example(event, history, user_features,
                                        tf.train.Features.FromString(item_bytes),
                                        self._task_names)
        serialized = example.SerializeToString()
        yield (serialized if tag == layout.EXAMPLE_SPLITS[0] else
               beam.pvalue.TaggedOutput(tag, serialized))
    for key, value in tally.items():
      yield beam.pvalue.TaggedOutput(_COUNT, (key, value))


def _scenario_train_counts(event: records.Event, bounds: ds.SplitBoundaries):
  in_train = event.timestamp_ms < bounds.validation_start_ms
  return event.scenario, (int(in_train), int(in_train and event.label == 1))


def _sum_pairs(pairs) -> tuple[int, int]:
  events = positives = 0
  for e, p in pairs:
    events += e
    positives += p
  return events, positives


def _max_or_none(values) -> Optional[int]:
  # Also merges partial results, some of which may be None (empty bundles).
  return max((v for v in values if v is not None), default=None)


def _raw_report(_, totals: dict, bad_rows: list, scenarios: list,
                bounds: ds.SplitBoundaries, max_timestamp_ms: Optional[int]) -> str:
  return json.dumps({
      'counts': totals,
      'bad_rows': [r._asdict() for r in bad_rows],
      'scenarios': [s._asdict() for s in scenarios],
      'validation_start_ms': bounds.validation_start_ms,
      'test_start_ms': bounds.test_start_ms,
      'window_start_ms': bounds.window_start_ms,
      'max_timestamp_ms': max_timestamp_ms,
  })
