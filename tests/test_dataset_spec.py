"""The dataset spec: the KuaiRand-Pure file, the YAML shape, and errors naming the fix."""

import datetime

import pytest

from core import dataset_spec as ds


def test_kuairand_spec_names_the_columns(kuairand_spec):
  assert kuairand_spec.logs.columns == ('user_id', 'video_id', 'tab', 'is_click', 'time_ms',
                                        'long_view', 'is_like')  # click is is_click, read once
  assert kuairand_spec.logs.tasks == (ds.TaskSpec('click', 'is_click'),
                                      ds.TaskSpec('long_view', 'long_view'),
                                      ds.TaskSpec('like', 'is_like'))
  kinds = {f.name: f.kind for f in kuairand_spec.items.features}
  assert kinds['tag'] is ds.FeatureKind.MULTI_CATEGORICAL
  assert kinds['video_duration'] is ds.FeatureKind.NUMERIC
  users = {f.name: f.kind for f in kuairand_spec.users.features}
  assert users['fans_user_num_range'] is ds.FeatureKind.BUCKETED_RANGE
  assert len(users) == 29 and len(kinds) == 10


def test_json_round_trip(kuairand_spec):
  assert ds.DatasetSpec.from_json(kuairand_spec.to_json()) == kuairand_spec


def test_day_counts_give_midnights_of_the_first_validation_and_test_days(kuairand_spec):
  # Last KuaiRand event: 2022-05-04 23:52:09 Beijing; test_days=2 -> 2022-05-03 00:00
  # +08:00, validation_days=1 before it -> 2022-05-02 00:00 +08:00.
  bounds = kuairand_spec.split.boundaries(1651679529474)
  iso = lambda ms: datetime.datetime.fromtimestamp(
      ms / 1000, kuairand_spec.split.tzinfo).isoformat()
  assert iso(bounds.validation_start_ms) == '2022-05-02T00:00:00+08:00'
  assert iso(bounds.test_start_ms) == '2022-05-03T00:00:00+08:00'
  assert bounds == ds.SplitBoundaries(1651420800000, 1651507200000)


def test_explicit_starts_without_offset_use_the_timezone():
  split = ds.SplitSpec(validation_start='2022-05-02T00:00:00',
                       test_start='2022-05-03T00:00:00', timezone='Asia/Shanghai')
  assert split.boundaries() == ds.SplitBoundaries(1651420800000, 1651507200000)
  utc = ds.SplitSpec(validation_start='2022-05-01T16:00:00+00:00',
                     test_start='2022-05-02T16:00:00+00:00')
  assert utc.boundaries() == ds.SplitBoundaries(1651420800000, 1651507200000)


MINIMAL = """
name: t
logs: {path: "*.csv", user_id: u, item_id: i, scenario: s, label: y, timestamp: ts}
users: {path: u.csv, id: u, features: {age: numeric}}
items: {path: i.csv, id: i, features: {cat: categorical}}
split: {validation_days: 1, test_days: 1}
"""


def _load(tmp_path, text):
  path = tmp_path / 'spec.yaml'
  path.write_text(text)
  return ds.DatasetSpec.from_yaml(str(path))


def test_minimal_spec_defaults(tmp_path):
  spec = _load(tmp_path, MINIMAL)
  assert spec.logs.timestamp_format == 'epoch_ms'
  assert spec.split.timezone == 'UTC'
  assert spec.users.features[0].missing_value == [0.0]


@pytest.mark.parametrize('old,new,message', [
    ('cat: categorical', 'cat: categoric',
     "items.features.cat: unknown kind 'categoric'; use one of categorical"),
    ('test_days: 1}', 'test_days: 1, test_start: "2022-01-01"}', 'set either both starts'),
    ('test_days: 1}', 'test_days: 0}', 'test_days must be a positive integer'),
    ('validation_days: 1, test_days: 1', 'eval_days: 2',
     'eval_cutoff and split.eval_days are replaced by a validation and a test window'),
    ('validation_days: 1, test_days: 1',
     'validation_start: "2022-01-02", test_start: "2022-01-01"',
     'validation_start must be before split.test_start'),
    ('validation_days: 1, test_days: 1', 'validation_start: x, test_start: "2022-01-01"',
     "split.validation_start 'x' is not an ISO-8601 time"),
    ('test_days: 1}', 'test_days: 1, timezone: Mars/Base}', "'Mars/Base' is not an IANA"),
    ('label: y,', '', "logs is missing the required key 'label'"),
    ('timestamp: ts}', 'timestamp: ts, timestamp_format: unix}',
     "timestamp_format is 'unix'"),
    ('cat: categorical', 'user_id: categorical', "'user_id' is reserved"),
    ('cat: categorical', 'age: categorical', "'age' is used by both users and items"),
    ('cat: categorical', 'cat: {kind: categorical, separator: "|"}',
     '`separator` only applies to multi_categorical'),
    ('age: numeric', 'age: {kind: numeric, default: old}', 'default must be a number'),
    ('test_days: 1}', 'test_days: 1}\nextra: 1',
     "the top level has an unknown key 'extra'"),
    ('test_days: 1}', 'test_days: 1, days: 2}', "split has an unknown key 'days'"),
    ('timestamp: ts}', 'timestamp: ts, tasks: {Click: y}}',
     "task name 'Click' must be a lower-case identifier"),
    ('timestamp: ts}', 'timestamp: ts, tasks: [y]}', 'logs.tasks must be a mapping'),
    ('timestamp: ts}', 'timestamp: ts, tasks: {click: ""}}',
     'logs.tasks.click must be a non-empty string'),
    ('cat: categorical', 'task_cat: categorical',
     "names starting with 'task_' are reserved for the ranking tasks"),
    ('timestamp: ts}', 'timestamp: ts, day_format: "%Y%m"}',
     "logs.day_format: '%Y%m' must hold %Y, %m and %d once each and no other directive "
     "(found %Y, %m)"),
    ('timestamp: ts}', 'timestamp: ts, day_format: "%Y-%m-%d_%H"}',
     'found %Y, %m, %d, %H'),
])
def test_spec_errors_name_field_and_fix(tmp_path, old, new, message):
  text = MINIMAL.replace(old, new)
  with pytest.raises(ds.SpecError, match=message.replace('(', r'\(').replace(')', r'\)')):
    _load(tmp_path, text)


def test_missing_spec_file():
  with pytest.raises(ds.SpecError, match='does not exist'):
    ds.DatasetSpec.from_yaml('/nonexistent/spec.yaml')


def test_tasks_are_optional_and_keep_their_order(tmp_path):
  assert _load(tmp_path, MINIMAL).logs.tasks == ()
  spec = _load(tmp_path, MINIMAL.replace('timestamp: ts}',
                                         'timestamp: ts, tasks: {like: l, click: y}}'))
  assert spec.logs.task_names == ('like', 'click')
  assert spec.logs.columns[-1] == 'l' and spec.logs.columns.count('y') == 1
  assert ds.DatasetSpec.from_json(spec.to_json()) == spec


def test_day_format_is_optional_and_matches_a_day_in_a_name(tmp_path):
  assert _load(tmp_path, MINIMAL).logs.day_format is None
  spec = _load(tmp_path, MINIMAL.replace('timestamp: ts}',
                                         'timestamp: ts, day_format: "day=%Y-%m-%d"}'))
  assert ds.DatasetSpec.from_json(spec.to_json()) == spec
  match = ds.day_pattern(spec.logs.day_format).search('logs/day=2022-05-02.csv.gz')
  assert (match['Y'], match['m'], match['d']) == ('2022', '05', '02')
  assert ds.day_pattern('%Y.%m.%d').search('2022x05x02') is None  # '.' is literal
