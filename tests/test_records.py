"""Record-level ingestion logic: parsing, histories (known answers), scenario selection."""

import datetime
import zoneinfo

import pytest

from core import dataset_spec as ds
from ingestion import records

UTC = datetime.timezone.utc
LOG = ds.LogSpec(path='*', user_id='u', item_id='i', scenario='s', label='y', timestamp='t')


def cells(**overrides):
  row = {'u': '7', 'i': '42', 's': '1', 'y': '1', 't': '1650812741436'}
  row.update(overrides)
  return row


def test_parse_event_reads_every_column():
  event = records.parse_event(cells(), LOG, UTC, 'f.csv', 2)
  assert event == records.Event('7', '42', '1', 1, 1650812741436, 'f.csv', 2)


@pytest.mark.parametrize('raw,label', [('0', 0), ('1', 1), ('1.0', 1), (' TRUE ', 1),
                                       ('false', 0)])
def test_parse_event_label_spellings(raw, label):
  assert records.parse_event(cells(y=raw), LOG, UTC, 'f', 2).label == label


@pytest.mark.parametrize('raw', ['yes', '2', '', '0.5'])
def test_parse_event_bad_label_names_file_line_column(raw):
  bad = records.parse_event(cells(y=raw), LOG, UTC, 'logs.csv', 17)
  assert isinstance(bad, records.BadRow)
  assert (bad.table, bad.file, bad.line, bad.column, bad.value) == (
      'logs', 'logs.csv', 17, 'y', raw)
  assert 'must be 0 or 1' in bad.problem
  assert bad.describe().startswith("logs.csv, line 17, column 'y': ")


TASKS = ds.LogSpec(path='*', user_id='u', item_id='i', scenario='s', label='y', timestamp='t',
                   tasks=(ds.TaskSpec('click', 'y'), ds.TaskSpec('like', 'l')))


def test_parse_event_reads_the_task_labels_in_spec_order():
  event = records.parse_event(cells(y='1', l='0.0'), TASKS, UTC, 'f', 2)
  assert event.tasks == (1, 0)


def test_parse_event_bad_task_label_names_column_and_spec_field():
  bad = records.parse_event(cells(l='3'), TASKS, UTC, 'logs.csv', 9)
  assert isinstance(bad, records.BadRow) and (bad.column, bad.value) == ('l', '3')
  assert "'like' task label must be 0 or 1 (logs.tasks.like" in bad.problem


def test_parse_event_empty_id_is_bad():
  bad = records.parse_event(cells(u='  '), LOG, UTC, 'f', 3)
  assert isinstance(bad, records.BadRow) and bad.column == 'u'


@pytest.mark.parametrize('fmt,text,expected', [
    ('epoch_ms', '1650812741436', 1650812741436),
    ('epoch_s', '1650812741.436', 1650812741436),
    ('iso8601', '2022-04-24T15:05:41.436+00:00', 1650812741436),
    ('iso8601', '2022-04-24T23:05:41.436', 1650812741436),  # naive: the split timezone
    ('%Y/%m/%d %H:%M:%S', '2022/04/24 23:05:41', 1650812741000),
])
def test_parse_timestamp_formats(fmt, text, expected):
  shanghai = zoneinfo.ZoneInfo('Asia/Shanghai')
  assert records.parse_timestamp_ms(text, fmt, shanghai) == expected


@pytest.mark.parametrize('fmt,text,message', [
    ('epoch_ms', 'yesterday', 'epoch milliseconds'),
    ('epoch_ms', '1650812741', 'set timestamp_format: epoch_s'),  # seconds read as ms
    ('iso8601', '24/04/2022', "format 'iso8601'"),
    ('epoch_s', 'nan', 'epoch seconds'),
])
def test_parse_timestamp_errors_name_the_format(fmt, text, message):
  with pytest.raises(ValueError, match=message):
    records.parse_timestamp_ms(text, fmt, UTC)


TABLE = ds.FeatureTableSpec(path='*', id_column='id', features=(
    ds.FeatureColumn('age', ds.FeatureKind.NUMERIC),
    ds.FeatureColumn('city', ds.FeatureKind.CATEGORICAL, name='user_city'),
    ds.FeatureColumn('tags', ds.FeatureKind.MULTI_CATEGORICAL, separator='|'),
    ds.FeatureColumn('level', ds.FeatureKind.BUCKETED_RANGE, default='unknown'),
))


def test_parse_feature_row_values_by_feature_name():
  row = records.parse_feature_row('users', TABLE, {'id': 'u1', 'age': '31.5', 'city': 'x',
                                                   'tags': 'a| b |', 'level': '[1,5)'},
                                  'u.csv', 4)
  assert row.id == 'u1'
  assert row.values == {'age': [31.5], 'user_city': ['x'], 'tags': ['a', 'b'],
                        'level': ['[1,5)']}
  assert row.missing == ()


def test_parse_feature_row_fills_and_reports_missing_cells():
  row = records.parse_feature_row('users', TABLE, {'id': 'u1', 'age': 'NaN', 'city': '',
                                                   'tags': '', 'level': ''}, 'u.csv', 4)
  assert row.values == {'age': [0.0], 'user_city': [''], 'tags': [], 'level': ['unknown']}
  assert row.missing == ('age', 'city', 'tags', 'level')


def test_parse_feature_row_text_in_numeric_column_is_bad():
  bad = records.parse_feature_row('users', TABLE, {'id': 'u1', 'age': 'old', 'city': '',
                                                   'tags': '', 'level': ''}, 'u.csv', 9)
  assert isinstance(bad, records.BadRow)
  assert (bad.column, bad.line, bad.value) == ('age', 9, 'old')
  assert 'finite number' in bad.problem


def _event(item, ts, label=1, scenario='s'):
  return records.Event('u', item, scenario, label, ts, 'f', ts)


BOUNDS = ds.SplitBoundaries(validation_start_ms=5, test_start_ms=7)


def test_windows_and_the_moment_each_view_sees_the_world_at():
  assert [records.split_of(t, BOUNDS) for t in (4, 5, 6, 7, 9)] == [
      'train', 'validation', 'validation', 'test', 'test']
  # A training example is as of its own event; validation and test as of their window's
  # start; the refit view 'all' as of its own event whatever the window.
  assert [records.as_of_ms(t, v, BOUNDS) for t, v in (
      (3, 'train'), (6, 'validation'), (9, 'test'), (9, 'all'))] == [3, 5, 7, 9]


def _views(events, view=None):
  """The histories of the events in their own split's view, or all in `view`."""
  ends = [records.as_of_ms(e.timestamp_ms, view or records.split_of(e.timestamp_ms, BOUNDS),
                           BOUNDS) for e in events]
  return [[h.item_id for h in history] for history in records.histories(events, ends, 2)]


def test_histories_known_answers():
  # Clicks a@1, b@2, c@3 (and a non-click d@3), e@5 and f@6 (validation), g@7 and h@8
  # (test); train < 5 <= validation < 7 <= test.
  events = [_event('a', 1), _event('b', 2, scenario='t'), _event('c', 3),
            _event('d', 3, label=0), _event('e', 5), _event('f', 6), _event('g', 7),
            _event('h', 8)]
  assert _views(events) == [
      [],  # a@1: nothing before
      ['a'],  # b@2
      ['a', 'b'],  # c@3: the click c at the same millisecond is not in its history
      ['a', 'b'],  # d@3: same
      ['b', 'c'],  # e@5 (validation): clicks before its window, last two
      ['b', 'c'],  # f@6 (validation): the validation click e@5 must not leak in
      ['e', 'f'],  # g@7 (test): before the test window, validation clicks included
      ['e', 'f'],  # h@8 (test): the test click g@7 must not leak in
  ]
  # The refit view: every event sees what came before it.
  assert _views(events, 'all')[4:] == [['b', 'c'], ['c', 'e'], ['e', 'f'], ['f', 'g']]
  ends = [records.as_of_ms(e.timestamp_ms, 'train', BOUNDS) for e in events]
  assert [h.scenario for h in records.histories(events, ends, 2)[2]] == ['s', 't']
  # The snapshot: every click, the last two.
  assert [h.item_id for h in records.histories(events, [None], 2)[0]] == ['g', 'h']


def test_histories_never_contain_the_future_or_their_window():
  events = [_event(str(i), ts, label=ts % 3 != 0) for i, ts in
            enumerate([1, 1, 2, 4, 4, 4, 7, 9, 10, 10, 12])]
  bounds = ds.SplitBoundaries(9, 11)
  ends = [records.as_of_ms(e.timestamp_ms, records.split_of(e.timestamp_ms, bounds), bounds)
          for e in events]
  for event, end, history in zip(events, ends, records.histories(events, ends, length=3)):
    assert len(history) <= 3
    assert end <= event.timestamp_ms
    assert all(h.timestamp_ms < end for h in history)


def test_item_clicks_count_and_decay_clicks_strictly_before_a_moment():
  day = 86_400_000
  events = [_event('i', 0, scenario='s'), _event('i', day, scenario='s'),
            _event('i', day, label=0, scenario='s'), _event('i', 2 * day, scenario='t')]
  clicks = records.ItemClicks(events, ['s', 't', 'u'], half_life_ms=day)
  assert clicks.counts(3 * day) == [2.0, 1.0, 0.0]
  # As of day 3: s clicks 3 and 2 half-lives ago -> 1/8 + 1/4; t 1 half-life ago -> 1/2.
  assert clicks.decayed(3 * day) == pytest.approx([0.375, 0.5, 0.0])
  # Strictly before: as of the instant of a click, that click does not count yet (so a
  # training click never counts itself); the exposure without a click never counts.
  assert clicks.counts(day) == [1.0, 0.0, 0.0]
  assert clicks.decayed(day) == pytest.approx([0.5, 0.0, 0.0])
  assert clicks.counts(0) == [0.0, 0.0, 0.0] and clicks.decayed(0) == [0.0, 0.0, 0.0]


def test_select_scenarios_by_train_positives_with_value_tiebreak():
  counts = [records.ScenarioCount('b', 10, 5), records.ScenarioCount('a', 50, 9),
            records.ScenarioCount('c', 3, 5), records.ScenarioCount('z', 100, 0)]
  chosen = records.select_scenarios(counts, num_scenarios=4)
  assert [c.value for c in chosen] == ['a', 'b', 'c']  # z has no positive: never chosen
  assert [c.value for c in records.select_scenarios(counts, 2)] == ['a', 'b']


def test_select_scenarios_explicit_list_keeps_its_order():
  counts = [records.ScenarioCount('a', 50, 9), records.ScenarioCount('b', 10, 5)]
  chosen = records.select_scenarios(counts, 4, explicit=('b', 'q'))
  assert chosen == [records.ScenarioCount('b', 10, 5), records.ScenarioCount('q', 0, 0)]


def test_event_example_holds_log_history_and_features():
  user = records.features_proto({'age': [30.0], 'gender': ['f']})
  item = records.features_proto({'tags': []})
  history = [records.HistoryEntry(1, 'a', 's1')]
  example = records.event_example(_event('z', 2), history, user, item)
  f = example.features.feature
  assert f['item_id'].bytes_list.value == [b'z']
  assert f['label'].int64_list.value == [1]
  assert f['history_item_id'].bytes_list.value == [b'a']
  assert f['history_scenario'].bytes_list.value == [b's1']
  assert f['age'].float_list.value == [30.0]
  assert f['gender'].bytes_list.value == [b'f']
  assert f['tags'].HasField('bytes_list') and not f['tags'].bytes_list.value
  assert not any(name.startswith('task_') for name in f)


def test_event_example_holds_the_task_labels():
  event = _event('z', 2)._replace(tasks=(1, 0))
  f = records.event_example(event, [], records.features_proto({}), records.features_proto({}),
                            ('click', 'like')).features.feature
  assert f['task_click'].int64_list.value == [1] and f['task_like'].int64_list.value == [0]
  with pytest.raises(ValueError):  # a task name per label, no fewer
    records.event_example(event, [], records.features_proto({}),
                          records.features_proto({}), ('click',))


def _random_events(seed, days=3, n=300):
  import random
  rng = random.Random(seed)
  day = 86_400_000
  events = [records.Event('u', 'a', rng.choice('st'), int(rng.random() < 0.4),
                          rng.randrange(days * day), 'f', i,
                          (int(rng.random() < 0.3), int(rng.random() < 0.1)))
            for i in range(n)]  # one user's events of one item
  return sorted(events, key=lambda e: e.timestamp_ms), day


@pytest.mark.parametrize('seed', [0, 1])
def test_counts_from_an_end_of_day_state_equal_counts_from_every_day(seed):
  """What the ingestion of a new day computes from the previous day's end state is what
  the ingestion of every day computes: n, d and o at every moment of the new day."""
  events, day = _random_events(seed)
  end = 2 * day  # the state at the end of day 2; day 3 is new
  old, new = [e for e in events if e.timestamp_ms < end], [e for e in events
                                                         if e.timestamp_ms >= end]
  full_clicks = records.ItemClicks(events, ['s', 't'], half_life_ms=day / 3)
  full_outcomes = records.ItemOutcomes(events, num_tasks=2)
  # The state is computed from the old days alone (as the previous day's ingestion did).
  old_clicks = records.ItemClicks(old, ['s', 't'], half_life_ms=day / 3)
  state = records.ItemState(end, tuple(old_clicks.counts(end)), tuple(old_clicks.decayed(end)),
                            tuple(records.ItemOutcomes(old, 2).counts(end)))
  clicks = records.ItemClicks(new, ['s', 't'], half_life_ms=day / 3, start=state)
  outcomes = records.ItemOutcomes(new, num_tasks=2, start=state)
  moments = [end, end + 1, 3 * day] + [e.timestamp_ms for e in new] + [
      e.timestamp_ms + 1 for e in new]
  for t in moments:
    assert clicks.counts(t) == full_clicks.counts(t)
    assert clicks.decayed(t) == pytest.approx(full_clicks.decayed(t), rel=1e-9, abs=1e-12)
    assert outcomes.counts(t) == full_outcomes.counts(t)
  ends = [e.timestamp_ms for e in new] + [end, None]
  [before] = records.histories(old, [None], length=5)
  assert records.histories(new, ends, 5, before=before) == records.histories(events, ends, 5)


def test_a_state_refuses_events_and_moments_before_it():
  events, day = _random_events(2)
  state = records.ItemState(2 * day, (0.0, 0.0), (0.0, 0.0), (0.0, 0.0, 0.0))
  with pytest.raises(ValueError, match=r'event\(s\) before the start state'):
    records.ItemClicks(events, ['s', 't'], day, start=state)
  clicks = records.ItemClicks([], ['s', 't'], day, start=state)
  with pytest.raises(ValueError, match='asked of a state that starts at'):
    clicks.decayed(2 * day - 1)
