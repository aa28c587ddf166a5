"""Dataset spec: how a user's raw logs and feature tables map onto the pipeline.

One YAML file per dataset (see `schemas/kuairand_pure/dataset_spec.yaml`) names the columns of
the interaction log (user id, item id, scenario, label, timestamp), the user and item feature
tables with the kind of every feature column, and how events are split by time into train,
validation and test windows. Pointing the pipeline at new logs means writing such a file, not
changing code.

The tf.Examples the ingestion writes use the canonical names of feature_names.py for the log
columns, and the feature's `name` (by default its column name) for every user and item feature.
"""

import dataclasses
import datetime
import enum
import json
import re
from typing import Any, Mapping, NamedTuple, Optional, Sequence, Union
import zoneinfo

import yaml

from core import errors
from core import feature_names

TIMESTAMP_FORMATS = ('epoch_ms', 'epoch_s', 'iso8601')


class SpecError(errors.InputError):
  """A dataset spec is invalid; the message names the field and the fix."""


class FeatureKind(enum.Enum):
  """How a feature column is read and, later, embedded."""
  CATEGORICAL = 'categorical'  # one string value -> vocabulary + embedding
  MULTI_CATEGORICAL = 'multi_categorical'  # 'a,b,c' -> list of strings
  NUMERIC = 'numeric'  # float -> scaled, projected
  BUCKETED_RANGE = 'bucketed_range'  # ordered range label such as '[10,100)'


@dataclasses.dataclass(frozen=True)
class FeatureColumn:
  """One user or item feature column."""
  column: str  # column name in the CSV file
  kind: FeatureKind
  name: str = ''  # tf.Example feature name; defaults to `column`
  separator: str = ','  # MULTI_CATEGORICAL only: splits a cell into values
  default: Union[str, float, None] = None  # value of a missing cell

  def __post_init__(self):
    if not self.name:
      object.__setattr__(self, 'name', self.column)

  @property
  def is_numeric(self) -> bool:
    return self.kind is FeatureKind.NUMERIC

  @property
  def missing_value(self) -> list:
    """The tf.Example value list written when the cell is empty."""
    if self.kind is FeatureKind.NUMERIC:
      return [float(self.default if self.default is not None else 0.0)]
    if self.kind is FeatureKind.MULTI_CATEGORICAL:
      return [] if self.default is None else [str(self.default)]
    return ['' if self.default is None else str(self.default)]


@dataclasses.dataclass(frozen=True)
class FeatureTableSpec:
  """A user or item feature table: one row per id."""
  path: str  # glob, relative to the data directory
  id_column: str
  features: tuple[FeatureColumn, ...]

  @property
  def columns(self) -> tuple[str, ...]:
    return (self.id_column,) + tuple(f.column for f in self.features)


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """A ranking task: a 0/1 column of the log (e.g. click, long view, like) that the
  rankers predict for every exposure. Its tf.Example name is feature_names.task_label."""
  name: str  # lower-case identifier, e.g. 'long_view'
  column: str  # column of the log holding 0/1


@dataclasses.dataclass(frozen=True)
class LogSpec:
  """The interaction log: one row per exposure (impression) event."""
  path: str  # glob, relative to the data directory; .gz files are read too
  user_id: str
  item_id: str
  scenario: str
  label: str  # 1 = positive (click), 0 = negative exposure; the retrieval label
  timestamp: str
  # 'epoch_ms', 'epoch_s', 'iso8601', or a strptime pattern such as '%Y-%m-%d %H:%M:%S'.
  timestamp_format: str = 'epoch_ms'
  tasks: tuple[TaskSpec, ...] = ()  # the ranking tasks, in the rankers' output order
  # Daily files: the day each file holds, in its name, as a strptime pattern of %Y, %m
  # and %d (e.g. '%Y%m%d' for log_20220502.csv.gz). Optional; when set, every file holds
  # the events of its day only (split.timezone), one file per day, no day left out.
  day_format: Optional[str] = None

  @property
  def columns(self) -> tuple[str, ...]:
    """Every column the ingestion reads, each once."""
    named = (self.user_id, self.item_id, self.scenario, self.label, self.timestamp)
    return tuple(dict.fromkeys(named + tuple(t.column for t in self.tasks)))

  @property
  def task_names(self) -> tuple[str, ...]:
    return tuple(t.name for t in self.tasks)


_DAY_DIRECTIVES = {'%Y': r'(?P<Y>\d{4})', '%m': r'(?P<m>\d{2})', '%d': r'(?P<d>\d{2})'}


def day_pattern(day_format: str) -> re.Pattern:
  """The regular expression of `day_format` (LogSpec.day_format): %Y, %m and %d once
  each, everything else literal. ValueError says what is wrong."""
  pieces = re.split(r'(%.)', day_format)
  directives = [p for p in pieces if p.startswith('%') and len(p) == 2]
  unknown = sorted({d for d in directives if d not in _DAY_DIRECTIVES})
  if unknown or sorted(directives) != sorted(_DAY_DIRECTIVES):
    raise ValueError(f'{day_format!r} must hold %Y, %m and %d once each and no other '
                     f'directive (found {", ".join(directives) or "none"}); e.g. '
                     f"'%Y%m%d' for log_20220502.csv.gz")
  return re.compile(''.join(_DAY_DIRECTIVES.get(p, re.escape(p)) for p in pieces))


class SplitBoundaries(NamedTuple):
  """The two boundaries of a time split, in epoch ms:

      train  <  validation_start  <=  validation  <  test_start  <=  test

  and, for a refresh (ingestion window_days), where its training examples start: the train
  events before window_start_ms are written to split history only (0: none are).
  """
  validation_start_ms: int
  test_start_ms: int
  window_start_ms: int = 0

  def with_window(self, days: int, split: 'SplitSpec') -> 'SplitBoundaries':
    """These boundaries with the window of the `days` calendar days (of `split`'s time
    zone) before the test window's start."""
    first = datetime.datetime.fromtimestamp(self.test_start_ms / 1000, split.tzinfo).date()
    return self._replace(window_start_ms=split.day_start_ms(
        first - datetime.timedelta(days=days)))


@dataclasses.dataclass(frozen=True)
class SplitSpec:
  """Time split into three consecutive windows: train, then validation, then test.

  Either explicit starts (`validation_start` and `test_start`, ISO-8601 times) or window
  lengths in calendar days of `timezone` counted back from the log's last day (`test_days`,
  and `validation_days` before them). Everything before the validation window trains.
  """
  validation_start: Optional[str] = None
  test_start: Optional[str] = None
  validation_days: Optional[int] = None
  test_days: Optional[int] = None
  timezone: str = 'UTC'  # for the day counts, and for times without an offset

  @property
  def tzinfo(self) -> datetime.tzinfo:
    return zoneinfo.ZoneInfo(self.timezone)

  def boundaries(self, max_timestamp_ms: Optional[int] = None) -> SplitBoundaries:
    """The boundaries in epoch ms; the day counts need the log's last timestamp."""
    if self.test_start is not None:
      return SplitBoundaries(self._epoch_ms(self.validation_start),
                             self._epoch_ms(self.test_start))
    if max_timestamp_ms is None:
      raise ValueError('test_days and validation_days need the last timestamp of the log')
    last_day = datetime.datetime.fromtimestamp(max_timestamp_ms / 1000, self.tzinfo).date()
    first_test_day = last_day - datetime.timedelta(days=self.test_days - 1)
    first_validation_day = first_test_day - datetime.timedelta(days=self.validation_days)
    return SplitBoundaries(self.day_start_ms(first_validation_day),
                           self.day_start_ms(first_test_day))

  def day_start_ms(self, day: datetime.date) -> int:
    """The first millisecond of `day` in this split's time zone, in epoch ms."""
    return int(datetime.datetime.combine(day, datetime.time(),
                                         tzinfo=self.tzinfo).timestamp() * 1000)

  def _epoch_ms(self, text: str) -> int:
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
      moment = moment.replace(tzinfo=self.tzinfo)
    return int(moment.timestamp() * 1000)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """Everything the pipeline needs to know about one dataset's raw files."""
  name: str
  logs: LogSpec
  users: FeatureTableSpec
  items: FeatureTableSpec
  split: SplitSpec

  def to_dict(self) -> dict:
    """The spec in the YAML file's shape (from_json(to_json(spec)) == spec)."""
    def table(t: FeatureTableSpec) -> dict:
      features = {}
      for f in t.features:
        options = {'kind': f.kind.value, 'name': f.name}
        if f.kind is FeatureKind.MULTI_CATEGORICAL:
          options['separator'] = f.separator
        if f.default is not None:
          options['default'] = f.default
        features[f.column] = options
      return {'path': t.path, 'id': t.id_column, 'features': features}
    split = {k: v for k, v in dataclasses.asdict(self.split).items() if v is not None}
    logs = {k: v for k, v in dataclasses.asdict(self.logs).items() if v is not None}
    logs['tasks'] = {t.name: t.column for t in self.logs.tasks}
    if not logs['tasks']:
      del logs['tasks']
    return {'name': self.name, 'logs': logs,
            'users': table(self.users), 'items': table(self.items), 'split': split}

  def to_json(self) -> str:
    return json.dumps(self.to_dict())

  def with_features(self, keep) -> 'DatasetSpec':
    """This spec with only the user and item features named in `keep` (feature names);
    a quicker run reads fewer columns and builds fewer vocabularies."""
    keep = set(keep)
    unknown = keep - set(self.feature_names)
    if unknown:
      raise SpecError(f'{self.name}: no user or item feature named '
                      f'{", ".join(sorted(unknown))}')
    subset = lambda table: dataclasses.replace(
        table, features=tuple(f for f in table.features if f.name in keep))
    return dataclasses.replace(self, users=subset(self.users), items=subset(self.items))

  @property
  def feature_names(self) -> tuple[str, ...]:
    """The tf.Example names of every user and item feature."""
    return tuple(f.name for f in self.users.features + self.items.features)

  @classmethod
  def from_json(cls, text: str) -> 'DatasetSpec':
    return _parse_spec(json.loads(text), source='<json>')

  @classmethod
  def from_yaml(cls, path: str) -> 'DatasetSpec':
    try:
      with open(path, encoding='utf-8') as f:
        raw = yaml.safe_load(f)
    except FileNotFoundError:
      raise SpecError(f'dataset spec {path!r} does not exist') from None
    except yaml.YAMLError as e:
      raise SpecError(f'{path}: not valid YAML: {e}') from None
    return _parse_spec(raw, source=path)


# ----------------------------------------------------------------------------------------
# Parsing and validation: every error names the file, the field and what to write instead.


def _parse_spec(raw: Any, source: str) -> DatasetSpec:
  where = _Where(source)
  top = where.mapping(raw, '', required=('name', 'logs', 'users', 'items', 'split'),
                      optional=())
  logs = where.mapping(top['logs'], 'logs',
                       required=('path', 'user_id', 'item_id', 'scenario', 'label',
                                 'timestamp'),
                       optional=('timestamp_format', 'tasks', 'day_format'))
  log_spec = LogSpec(**{k: where.string(v, f'logs.{k}') for k, v in logs.items()
                        if k != 'tasks'}, tasks=_parse_tasks(where, logs.get('tasks', {})))
  fmt = log_spec.timestamp_format
  if fmt not in TIMESTAMP_FORMATS and not fmt.startswith('%'):
    raise SpecError(f'{source}: logs.timestamp_format is {fmt!r}; use one of '
                    f'{", ".join(TIMESTAMP_FORMATS)} or a strptime pattern like '
                    f"'%Y-%m-%d %H:%M:%S'")
  if log_spec.day_format is not None:
    try:
      day_pattern(log_spec.day_format)
    except ValueError as e:
      raise SpecError(f'{source}: logs.day_format: {e}') from None
  users = _parse_table(where, top['users'], 'users')
  items = _parse_table(where, top['items'], 'items')
  split = _parse_split(where, top['split'])
  spec = DatasetSpec(name=where.string(top['name'], 'name'), logs=log_spec,
                     users=users, items=items, split=split)
  _check_names(spec, source)
  return spec


_TASK_NAME = re.compile(r'[a-z][a-z0-9_]*')


def _parse_tasks(where: '_Where', raw: Any) -> tuple[TaskSpec, ...]:
  """`logs.tasks`: task name -> 0/1 column, e.g. {click: is_click, like: is_like}."""
  tasks = where.mapping(raw, 'logs.tasks')
  parsed = []
  for name, column in tasks.items():
    if not isinstance(name, str) or not _TASK_NAME.fullmatch(name):
      raise SpecError(f'{where.source}: logs.tasks: task name {name!r} must be a lower-case '
                      f"identifier such as 'click' or 'long_view'")
    parsed.append(TaskSpec(name, where.string(column, f'logs.tasks.{name}')))
  return tuple(parsed)


def _parse_table(where: '_Where', raw: Any, field: str) -> FeatureTableSpec:
  table = where.mapping(raw, field, required=('path', 'id', 'features'), optional=())
  features_raw = where.mapping(table['features'], f'{field}.features')
  features = []
  for column, value in features_raw.items():
    at = f'{field}.features.{column}'
    if isinstance(value, str):
      value = {'kind': value}
    options = where.mapping(value, at, required=('kind',),
                            optional=('name', 'separator', 'default'))
    kind_name = where.string(options['kind'], f'{at}.kind')
    try:
      kind = FeatureKind(kind_name)
    except ValueError:
      raise SpecError(f'{where.source}: {at}: unknown kind {kind_name!r}; use one of '
                      f'{", ".join(k.value for k in FeatureKind)}') from None
    if 'separator' in options and kind is not FeatureKind.MULTI_CATEGORICAL:
      raise SpecError(f'{where.source}: {at}: `separator` only applies to '
                      f'multi_categorical features; remove it or change the kind')
    if kind is FeatureKind.NUMERIC and options.get('default') is not None:
      try:
        float(options['default'])
      except (TypeError, ValueError):
        raise SpecError(f'{where.source}: {at}.default must be a number for a numeric '
                        f'feature, got {options["default"]!r}') from None
    features.append(FeatureColumn(
        column=str(column), kind=kind, name=str(options.get('name') or column),
        separator=str(options.get('separator', ',')), default=options.get('default')))
  return FeatureTableSpec(path=where.string(table['path'], f'{field}.path'),
                          id_column=where.string(table['id'], f'{field}.id'),
                          features=tuple(features))


_SPLIT_EXAMPLE = ("validation_days: 1 and test_days: 2, or validation_start: "
                  "'2022-05-02T00:00:00+08:00' and test_start: '2022-05-03T00:00:00+08:00'")


def _parse_split(where: '_Where', raw: Any) -> SplitSpec:
  if isinstance(raw, dict) and ('eval_cutoff' in raw or 'eval_days' in raw):
    raise SpecError(f'{where.source}: split.eval_cutoff and split.eval_days are replaced by a '
                    f'validation and a test window: set {_SPLIT_EXAMPLE}')
  split = where.mapping(raw, 'split', optional=('validation_start', 'test_start',
                                                'validation_days', 'test_days', 'timezone'))
  starts = [split.get('validation_start'), split.get('test_start')]
  days = [split.get('validation_days'), split.get('test_days')]
  by_starts = all(v is not None for v in starts) and all(v is None for v in days)
  by_days = all(v is not None for v in days) and all(v is None for v in starts)
  if not by_starts and not by_days:
    raise SpecError(f'{where.source}: split: set either both starts or both day counts: '
                    f'{_SPLIT_EXAMPLE}')
  timezone = where.string(split.get('timezone', 'UTC'), 'split.timezone')
  try:
    zoneinfo.ZoneInfo(timezone)
  except (zoneinfo.ZoneInfoNotFoundError, ValueError):
    raise SpecError(f'{where.source}: split.timezone {timezone!r} is not an IANA time zone '
                    f"such as 'UTC' or 'Asia/Shanghai'") from None
  if by_starts:
    for i, (key, value) in enumerate(zip(('validation_start', 'test_start'), starts)):
      text = value.isoformat() if isinstance(value, datetime.datetime) else str(value)
      try:
        datetime.datetime.fromisoformat(text)
      except ValueError:
        raise SpecError(f'{where.source}: split.{key} {text!r} is not an ISO-8601 time such '
                        f"as '2022-05-02T00:00:00+08:00'") from None
      starts[i] = text
    spec = SplitSpec(validation_start=starts[0], test_start=starts[1], timezone=timezone)
    bounds = spec.boundaries()
    if bounds.validation_start_ms >= bounds.test_start_ms:
      raise SpecError(f'{where.source}: split.validation_start must be before '
                      f'split.test_start')
    return spec
  for key, value in zip(('validation_days', 'test_days'), days):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      raise SpecError(f'{where.source}: split.{key} must be a positive integer, '
                      f'got {value!r}')
  return SplitSpec(validation_days=days[0], test_days=days[1], timezone=timezone)


def _check_names(spec: DatasetSpec, source: str) -> None:
  seen = {}
  for table_name, table in (('users', spec.users), ('items', spec.items)):
    for feature in table.features:
      if feature.name in feature_names.RESERVED:
        raise SpecError(
            f'{source}: {table_name}.features.{feature.column}: the feature name '
            f'{feature.name!r} is reserved for the log columns; give it another name '
            f'with `name:`')
      if feature.name.startswith(feature_names.TASK_PREFIX):
        raise SpecError(
            f'{source}: {table_name}.features.{feature.column}: feature names starting '
            f'with {feature_names.TASK_PREFIX!r} are reserved for the ranking tasks; give '
            f'it another name with `name:`')
      if feature.name in seen:
        raise SpecError(
            f'{source}: feature name {feature.name!r} is used by both '
            f'{seen[feature.name]} and {table_name}; give one of them another name with '
            f'`name:`')
      seen[feature.name] = table_name


@dataclasses.dataclass
class _Where:
  source: str

  def mapping(self, raw: Any, field: str, required: Sequence[str] = (),
              optional: Optional[Sequence[str]] = None) -> Mapping[str, Any]:
    label = field or 'the top level'
    if not isinstance(raw, dict):
      raise SpecError(f'{self.source}: {label} must be a mapping, got {raw!r}')
    for key in required:
      if key not in raw:
        raise SpecError(f'{self.source}: {label} is missing the required key {key!r}')
    if optional is not None:
      allowed = set(required) | set(optional)
      for key in raw:
        if key not in allowed:
          raise SpecError(f'{self.source}: {label} has an unknown key {key!r}; allowed: '
                          f'{", ".join(sorted(allowed))}')
    return raw

  def string(self, value: Any, field: str) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool) or value == '':
      raise SpecError(f'{self.source}: {field} must be a non-empty string, got {value!r}')
    return str(value)

