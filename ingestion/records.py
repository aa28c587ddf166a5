"""Record-level logic of the ingestion: parsing raw CSV cells, histories, tf.Examples.

Pure Python, no Beam: the Beam pipeline in `ingest.py` calls these functions, and the tests
check them on hand-made rows. Every parse error becomes a `BadRow` that names the file, the
line, the column, the value found and what was expected.
"""

import bisect
import datetime
import math
from typing import Iterable, NamedTuple, Optional, Sequence, Union

import tensorflow as tf

from core import dataset_spec as ds
from core import feature_names as fnames
from core import layout


class BadRow(NamedTuple):
  """A raw row that could not be read; `problem` says what was expected."""
  table: str  # 'logs', 'users' or 'items'
  file: str
  line: int  # 1-based physical line in the file; the header is line 1
  column: str  # '' when the whole row is at fault
  value: str
  problem: str

  def describe(self) -> str:
    where = f'{self.file}, line {self.line}'
    if self.column:
      where += f', column {self.column!r}'
    return f'{where}: {self.problem} (found {self.value!r})'


class Event(NamedTuple):
  """One parsed log row."""
  user_id: str
  item_id: str
  scenario: str
  label: int
  timestamp_ms: int
  file: str  # with `line`, a stable tie-break for events with equal timestamps
  line: int
  tasks: tuple[int, ...] = ()  # 0/1 per ranking task of the spec, in its order


class FeatureRow(NamedTuple):
  """One parsed feature-table row: tf.Example values by feature name."""
  id: str
  values: dict
  missing: tuple  # columns whose cell was empty and got the spec's default
  file: str
  line: int


class HistoryEntry(NamedTuple):
  timestamp_ms: int
  item_id: str
  scenario: str


_LABELS = {'0': 0, '1': 1, '0.0': 0, '1.0': 1, 'false': 0, 'true': 1}
_YEAR_2000_MS = 946_684_800_000


def parse_event(cells: dict, log: ds.LogSpec, tz: datetime.tzinfo, file: str,
                line: int) -> Union[Event, BadRow]:
  """Parses one log row; `cells` maps the spec's column names to raw strings."""
  def bad(column, problem):
    return BadRow('logs', file, line, column, cells[column], problem)

  ids = {}
  for column in (log.user_id, log.item_id, log.scenario):
    value = cells[column].strip()
    if not value:
      return bad(column, 'empty value; every event needs a user id, an item id and a '
                 'scenario')
    ids[column] = value
  label = _LABELS.get(cells[log.label].strip().lower())
  if label is None:
    return bad(log.label, 'the label must be 0 or 1 (1 = positive, e.g. a click)')
  try:
    timestamp_ms = parse_timestamp_ms(cells[log.timestamp], log.timestamp_format, tz)
  except ValueError as e:
    return bad(log.timestamp, str(e))
  tasks = []
  for task in log.tasks:
    value = _LABELS.get(cells[task.column].strip().lower())
    if value is None:
      return bad(task.column, f'the {task.name!r} task label must be 0 or 1 (logs.tasks.'
                 f'{task.name} in the dataset spec)')
    tasks.append(value)
  return Event(ids[log.user_id], ids[log.item_id], ids[log.scenario], label,
               timestamp_ms, file, line, tuple(tasks))


def parse_timestamp_ms(text: str, fmt: str, tz: datetime.tzinfo) -> int:
  """Milliseconds since the epoch; ValueError names the expected format."""
  text = text.strip()
  if fmt in ('epoch_ms', 'epoch_s'):
    try:
      number = float(text)
    except ValueError:
      number = math.nan
    if not math.isfinite(number):
      unit = 'milliseconds' if fmt == 'epoch_ms' else 'seconds'
      raise ValueError(f'expected a timestamp in epoch {unit} (timestamp_format: {fmt})')
    if fmt == 'epoch_s':
      return int(round(number * 1000))
    if number < _YEAR_2000_MS:
      raise ValueError('this epoch-millisecond timestamp is before the year 2000; if the '
                       'log holds seconds, set timestamp_format: epoch_s')
    return int(text) if text.isdigit() else int(round(number))
  try:
    if fmt == 'iso8601':
      parsed = datetime.datetime.fromisoformat(text)
    else:
      parsed = datetime.datetime.strptime(text, fmt)
  except ValueError:
    raise ValueError(f'expected a time in the format {fmt!r} '
                     f'(logs.timestamp_format in the dataset spec)') from None
  if parsed.tzinfo is None:
    parsed = parsed.replace(tzinfo=tz)
  return int(round(parsed.timestamp() * 1000))


def parse_feature_row(table_name: str, table: ds.FeatureTableSpec, cells: dict,
                      file: str, line: int) -> Union[FeatureRow, BadRow]:
  """Parses one row of a user or item feature table."""
  row_id = cells[table.id_column].strip()
  if not row_id:
    return BadRow(table_name, file, line, table.id_column, cells[table.id_column],
                  'empty id')
  values, missing = {}, []
  for feature in table.features:
    raw = cells[feature.column].strip()
    if feature.is_numeric:
      if raw == '' or raw.lower() == 'nan':
        parsed = None
      else:
        try:
          number = float(raw)
        except ValueError:
          number = math.nan
        if not math.isfinite(number):
          return BadRow(table_name, file, line, feature.column, cells[feature.column],
                        'expected a finite number (the spec declares this column '
                        'numeric; declare it categorical if it holds labels)')
        parsed = [number]
    elif feature.kind is ds.FeatureKind.MULTI_CATEGORICAL:
      parsed = [v.strip() for v in raw.split(feature.separator) if v.strip()] or None
    else:
      parsed = [raw] if raw else None
    if parsed is None:
      missing.append(feature.column)
      parsed = feature.missing_value
    values[feature.name] = parsed
  return FeatureRow(row_id, values, tuple(missing), file, line)


def default_feature_values(table: ds.FeatureTableSpec) -> dict:
  """Feature values for an id that has no row in its feature table."""
  return {f.name: f.missing_value for f in table.features}


def split_of(timestamp_ms: int, bounds: ds.SplitBoundaries) -> str:
  """The time window of an event: train, validation or test."""
  if timestamp_ms < bounds.validation_start_ms:
    return layout.TRAIN
  return layout.VALIDATION if timestamp_ms < bounds.test_start_ms else layout.TEST


def as_of_ms(timestamp_ms: int, view: str, bounds: ds.SplitBoundaries) -> int:
  """The moment an example of `view` sees the world at: its behaviour sequence and recent
  item clicks count what happened strictly before it.

  A training example (views train and all) is as of its own event; a validation or test
  example as of its window's start, which is all a model serving that window knew.
  """
  if view == layout.VALIDATION:
    return bounds.validation_start_ms
  if view == layout.TEST:
    return bounds.test_start_ms
  return timestamp_ms


def histories(events: Sequence[Event], ends_ms: Sequence[Optional[int]],
              length: int, before: Sequence[HistoryEntry] = ()) -> list[list[HistoryEntry]]:
  """The behaviour sequence of each of one user's events.

  For event i, the user's last `length` clicks (label 1, any scenario) with a timestamp
  strictly before ends_ms[i] (None: every click), oldest first. With ends_ms[i] the
  event's own time, clicks at the same millisecond are not in its history.

  Args:
    events: all events of one user, sorted by timestamp.
    ends_ms: one end per event (as_of_ms of its view).
    length: the maximum history length L.
    before: the user's clicks before every event and every end (oldest first), e.g. the
      history of the user's snapshot at the end of the previous day.
  """
  clicks = list(before) + [HistoryEntry(e.timestamp_ms, e.item_id, e.scenario)
                           for e in events if e.label == 1]
  click_times = [c.timestamp_ms for c in clicks]
  result = []
  for end_ms in ends_ms:
    end = len(clicks) if end_ms is None else bisect.bisect_left(click_times, end_ms,
                                                                lo=len(before))
    result.append(clicks[max(0, end - length):end])
  return result


class ItemState(NamedTuple):
  """One item's time-dependent counts as of `as_of_ms` (e.g. the end of a day): where
  ItemClicks and ItemOutcomes of the following events start instead of from every
  earlier event. Every count is kept, whichever popularity features the ingestion writes."""
  as_of_ms: int
  clicks: tuple[float, ...]  # n_s(as_of) per served scenario
  decayed: tuple[float, ...]  # d_s(as_of) per served scenario
  outcomes: tuple[float, ...]  # o(as_of): exposures, then each task's positives


class ScenarioCount(NamedTuple):
  value: str
  train_events: int
  train_positives: int


def select_scenarios(counts: Iterable[ScenarioCount], num_scenarios: int,
                     explicit: Sequence[str] = ()) -> list[ScenarioCount]:
  """The scenarios the model serves, in index order.

  By default the `num_scenarios` values with the most positives in the training split (ties
  broken by the raw value); values without any training positive are never chosen. An
  explicit list is used as given.
  """
  by_value = {c.value: c for c in counts}
  if explicit:
    return [by_value.get(v, ScenarioCount(v, 0, 0)) for v in explicit]
  ranked = sorted((c for c in by_value.values() if c.train_positives > 0),
                  key=lambda c: (-c.train_positives, c.value))
  return ranked[:num_scenarios]


class ItemClicks:
  """One item's clicks per scenario as of any moment t, counting only clicks strictly
  before t (the point-in-time rule of every example, anchor, negative or corpus row):

      n_s(t) = #{clicks c in scenario s : t_c < t}
      d_s(t) = sum over those clicks of 2 ** (-(t - t_c) / h)   (half-life h)

  A click counts 1 in d now, 1/2 after h, 1/4 after 2h. Prefix sums of
  2 ** ((t_c - t_0) / h) over the time-sorted clicks make each query one bisection.
  With `start` (the counts as of t_s, every event at or after t_s), the clicks before t_s
  are start's: n_s(t) = n_s(t_s) + #{new clicks before t} and
  d_s(t) = d_s(t_s) 2 ** (-(t - t_s) / h) + the new clicks' terms, for t >= t_s.
  models/item_clicks.py applies the same rule inside tf.data to the training negatives.
  """

  def __init__(self, events: Iterable[Event], scenarios: Sequence[str],
               half_life_ms: float, start: Optional[ItemState] = None):
    self._h = float(half_life_ms)
    events = list(events)
    self._start = start
    if start is not None:
      _check_after(events, start)
      if len(start.clicks) != len(scenarios) or len(start.decayed) != len(scenarios):
        raise ValueError(f'the start state has {len(start.clicks)} click counts and '
                         f'{len(start.decayed)} decayed counts for {len(scenarios)} '
                         f'scenarios')
    times = {s: sorted(e.timestamp_ms for e in events
                       if e.label == 1 and e.scenario == s) for s in scenarios}
    self._t0 = min((t[0] for t in times.values() if t), default=0)
    self._times = [times[s] for s in scenarios]
    self._prefix = []
    for clicks in self._times:
      total, prefix = 0.0, [0.0]
      for t in clicks:
        total += 2.0 ** ((t - self._t0) / self._h)
        prefix.append(total)
      self._prefix.append(prefix)

  def counts(self, t_ms: int) -> list[float]:
    """n_s(t) for every scenario, in order."""
    base = self._base(t_ms, 'clicks')
    return [b + float(bisect.bisect_left(times, t_ms)) for b, times in zip(base, self._times)]

  def decayed(self, t_ms: int) -> list[float]:
    """d_s(t) for every scenario, in order."""
    scale = 2.0 ** (-(t_ms - self._t0) / self._h)
    base = self._base(t_ms, 'decayed')
    if self._start is not None:
      carried = 2.0 ** (-(t_ms - self._start.as_of_ms) / self._h)
      base = [b * carried for b in base]
    return [b + prefix[bisect.bisect_left(times, t_ms)] * scale
            for b, times, prefix in zip(base, self._times, self._prefix)]

  def _base(self, t_ms: int, field: str) -> Sequence[float]:
    if self._start is None:
      return [0.0] * len(self._times)
    if t_ms < self._start.as_of_ms:
      raise ValueError(f'counts as of {t_ms} asked of a state that starts at '
                       f'{self._start.as_of_ms}')
    return getattr(self._start, field)


def _check_after(events: Sequence[Event], start: ItemState) -> None:
  early = [e for e in events if e.timestamp_ms < start.as_of_ms]
  if early:
    raise ValueError(f'{len(early)} event(s) before the start state\'s moment '
                     f'{start.as_of_ms} (e.g. {early[0].file} line {early[0].line}); the '
                     f'state already counts them')


class ItemOutcomes:
  """One item's exposures and task positives over every scenario as of any moment t,
  counting only exposures strictly before t (ItemClicks' point-in-time rule):

      o(t) = [#{exposures e : t_e < t}, #{e : t_e < t, task_1(e) = 1}, ...]   [1 + T]

  Each query is one bisection in the time-sorted exposures and a prefix-sum lookup. With
  `start` (o as of t_s, every event at or after t_s), o(t) = o(t_s) + the new events'.
  """

  def __init__(self, events: Iterable[Event], num_tasks: int,
               start: Optional[ItemState] = None):
    ordered = sorted(events, key=lambda e: e.timestamp_ms)
    totals = [0.0] * (1 + num_tasks)
    if start is not None:
      _check_after(ordered, start)
      if len(start.outcomes) != 1 + num_tasks:
        raise ValueError(f'the start state has {len(start.outcomes)} outcome counts for '
                         f'1 + {num_tasks} tasks')
      totals = list(start.outcomes)
    self._start_ms = start.as_of_ms if start is not None else None
    self._times = [e.timestamp_ms for e in ordered]
    self._prefix = [list(totals)]
    for event in ordered:
      totals[0] += 1.0
      for t, value in enumerate(event.tasks):
        totals[1 + t] += value
      self._prefix.append(list(totals))

  def counts(self, t_ms: int) -> list[float]:
    """o(t): [exposures, positives of each task] before t."""
    if self._start_ms is not None and t_ms < self._start_ms:
      raise ValueError(f'counts as of {t_ms} asked of a state that starts at '
                       f'{self._start_ms}')
    return list(self._prefix[bisect.bisect_left(self._times, t_ms)])


def float_lists_proto(values: dict) -> bytes:
  """A serialized tf.train.Features with float lists by name (e.g. `scenario_clicks`);
  appended to a serialized Features message it adds them (protobuf merges concatenated
  messages)."""
  features = tf.train.Features()
  for name, value_list in values.items():
    features.feature[name].float_list.value.extend(value_list)
  return features.SerializeToString()


def features_proto(values: dict) -> tf.train.Features:
  """Feature values by name -> tf.train.Features; built once per user or item."""
  features = tf.train.Features()
  for name, value_list in values.items():
    feature = features.feature[name]
    if value_list and isinstance(value_list[0], float):
      feature.float_list.value.extend(value_list)
    elif value_list:
      feature.bytes_list.value.extend(v.encode() for v in value_list)
    else:  # an empty multi_categorical list is still a present (empty) bytes feature
      feature.bytes_list.SetInParent()
  return features


def event_example(event: Event, history: Sequence[HistoryEntry],
                  user_features: tf.train.Features,
                  item_features: tf.train.Features,
                  task_names: Sequence[str] = ()) -> tf.train.Example:
  """The tf.Example of one event: log columns, task labels (named by `task_names`, the
  spec's tasks), history, user and item features."""
  example = tf.train.Example()
  feature = example.features.feature
  feature[fnames.USER_ID].bytes_list.value.append(event.user_id.encode())
  feature[fnames.ITEM_ID].bytes_list.value.append(event.item_id.encode())
  feature[fnames.SCENARIO].bytes_list.value.append(event.scenario.encode())
  feature[fnames.LABEL].int64_list.value.append(event.label)
  for task, value in zip(task_names, event.tasks, strict=True):
    feature[fnames.task_label(task)].int64_list.value.append(value)
  feature[fnames.TIMESTAMP].int64_list.value.append(event.timestamp_ms)
  feature[fnames.HISTORY_ITEM_ID].bytes_list.value.extend(
      h.item_id.encode() for h in history)
  feature[fnames.HISTORY_SCENARIO].bytes_list.value.extend(
      h.scenario.encode() for h in history)
  example.features.MergeFrom(user_features)
  example.features.MergeFrom(item_features)
  return example


def user_example(user_id: str, history: Sequence[HistoryEntry],
                 user_features: tf.train.Features) -> tf.train.Example:
  """The tf.Example of one user of the snapshot: id, history, features."""
  example = tf.train.Example()
  feature = example.features.feature
  feature[fnames.USER_ID].bytes_list.value.append(user_id.encode())
  feature[fnames.HISTORY_ITEM_ID].bytes_list.value.extend(h.item_id.encode() for h in history)
  feature[fnames.HISTORY_SCENARIO].bytes_list.value.extend(
      h.scenario.encode() for h in history)
  example.features.MergeFrom(user_features)
  return example


def item_example(item_id: str, item_features: tf.train.Features) -> tf.train.Example:
  """The tf.Example of one item of the corpus: its id and features."""
  example = tf.train.Example()
  example.features.feature[fnames.ITEM_ID].bytes_list.value.append(item_id.encode())
  example.features.MergeFrom(item_features)
  return example


_STATE_AS_OF = 'as_of_ms'
_STATE_CLICKS = 'state_clicks'
_STATE_DECAYED = 'state_decayed'
_STATE_OUTCOMES = 'state_outcomes'


def item_state_example(item_id: str, state: ItemState) -> tf.train.Example:
  """The tf.Example of one item's end-of-day state (the ingestion's item_state output);
  the counts are int64 (exact at any size), the decayed clicks float32 as in examples."""
  example = tf.train.Example()
  feature = example.features.feature
  feature[fnames.ITEM_ID].bytes_list.value.append(item_id.encode())
  feature[_STATE_AS_OF].int64_list.value.append(state.as_of_ms)
  feature[_STATE_CLICKS].int64_list.value.extend(int(n) for n in state.clicks)
  feature[_STATE_DECAYED].float_list.value.extend(state.decayed)
  feature[_STATE_OUTCOMES].int64_list.value.extend(int(n) for n in state.outcomes)
  return example


def parse_item_state(serialized: bytes) -> tuple[str, ItemState]:
  """item_state_example's inverse: (item id, state)."""
  feature = tf.train.Example.FromString(serialized).features.feature
  return (feature[fnames.ITEM_ID].bytes_list.value[0].decode(), ItemState(
      int(feature[_STATE_AS_OF].int64_list.value[0]),
      tuple(float(n) for n in feature[_STATE_CLICKS].int64_list.value),
      tuple(feature[_STATE_DECAYED].float_list.value),
      tuple(float(n) for n in feature[_STATE_OUTCOMES].int64_list.value)))


def snapshot_history(serialized: bytes) -> tuple[str, list[HistoryEntry]]:
  """(user id, history) of a user_example: the clicks before a day's events. The
  snapshot keeps no click times; every one is before the day (timestamp 0)."""
  feature = tf.train.Example.FromString(serialized).features.feature
  items = [v.decode() for v in feature[fnames.HISTORY_ITEM_ID].bytes_list.value]
  scenarios = [v.decode() for v in feature[fnames.HISTORY_SCENARIO].bytes_list.value]
  return (feature[fnames.USER_ID].bytes_list.value[0].decode(),
          [HistoryEntry(0, i, s) for i, s in zip(items, scenarios, strict=True)])
