"""The Beam ingestion on a hand-made log: join, time split, scenarios, histories, counts,
and every kind of bad input."""

import glob
import gzip
import os
import shutil

import pytest

from typing import NamedTuple

from core import config as configs
from core import layout
from ingestion import report
from ingestion.errors import IngestionError
from tests import mini_dataset as mini


class Ingested(NamedTuple):
  summary: dict
  splits: dict  # split -> examples
  corpus: dict  # corpus split -> {item id: example}
  snapshot: list


@pytest.fixture(scope='module')
def ingested(tmp_path_factory):
  """The default mini dataset, ingested once for the tests that only read outputs."""
  root = tmp_path_factory.mktemp('mini')
  spec = mini.write_dataset(str(root / 'data'), mini.DEFAULT_LOGS)
  out = str(root / 'out')
  summary = mini.run_ingestion(str(root / 'data'), spec, out)
  return Ingested(
      summary, {s: mini.read_output(out, 'examples', s) for s in layout.EXAMPLE_SPLITS},
      {s: {e['item_id'][0]: e for e in mini.read_output(out, 'item_corpus', s)}
       for s in layout.CORPUS_SPLITS},
      mini.read_output(out, 'user_snapshot'))


def _by_event(examples):
  return {(e['user_id'][0], e['item_id'][0], e['timestamp'][0], e['label'][0]): e
          for e in examples}


def _events(ingested, *splits):
  return _by_event([e for s in splits or WINDOWS for e in ingested.splits[s]])


WINDOWS = ('train', 'validation', 'test')


def test_scenarios_are_the_top_n_by_train_positives(ingested):
  assert [(s['value'], s['index'], s['train_positives'])
          for s in ingested.summary['scenarios']] == [
              ('s1', 0, 4), ('s2', 1, 2), ('s3', 2, 1)]  # s3 beats s5 (also 1) by value


def test_time_split_boundaries_and_counts(ingested):
  summary, splits = ingested.summary, ingested.splits
  assert all(e['timestamp'][0] < mini.VALIDATION_START for e in splits['train'])
  assert all(mini.VALIDATION_START <= e['timestamp'][0] < mini.TEST_START
             for e in splits['validation'])
  assert all(e['timestamp'][0] >= mini.TEST_START for e in splits['test'])
  assert [len(splits[s]) for s in WINDOWS] == [9, 2, 3]
  # 'all' repeats every kept event as a training example.
  assert sorted(_by_event(splits['all'])) == sorted(_events(ingested))
  events = summary['events']
  assert events['read'] == len(mini.DEFAULT_LOGS) == 16
  assert events['kept'] == 14
  assert events['dropped'] == {'malformed': 0, 'scenario_not_selected': 2}
  assert events['dropped_by_scenario'] == {'s4': 1, 's5': 1}
  assert events['read'] == events['kept'] + sum(events['dropped'].values())
  assert summary['splits']['train']['scenarios']['s1'] == {'events': 6, 'positives': 4}
  assert summary['splits']['validation']['scenarios'] == {
      's1': {'events': 0, 'positives': 0}, 's2': {'events': 2, 'positives': 1},
      's3': {'events': 0, 'positives': 0}}
  assert summary['splits']['test']['scenarios'] == {
      's1': {'events': 2, 'positives': 1}, 's2': {'events': 0, 'positives': 0},
      's3': {'events': 1, 'positives': 0}}
  assert (summary['validation_start_ms'], summary['test_start_ms']) == (
      mini.VALIDATION_START, mini.TEST_START)


def test_join_attaches_the_right_features(ingested):
  events = _events(ingested)
  first = events[('u1', 'a', mini.t(0, 1), 1)]
  assert first['age'] == [30.0] and first['gender'] == ['f']
  assert first['cat'] == ['sport'] and first['tags'] == ['x', 'y']
  assert first['scenario'] == ['s1']
  u2 = events[('u2', 'b', mini.t(0, 10), 1)]
  assert u2['age'] == [41.0] and u2['cat'] == ['news'] and u2['tags'] == ['y']


def test_missing_feature_rows_get_defaults_and_are_counted(ingested):
  summary = ingested.summary
  events = _events(ingested)
  no_item_row = events[('u3', 'x', mini.t(0, 30), 0)]
  assert no_item_row['cat'] == [''] and no_item_row['tags'] == []
  assert no_item_row['age'] == [0.0]  # u3's age cell is empty: numeric default
  no_user_row = events[('u4', 'a', mini.t(2, 30), 0)]
  assert no_user_row['age'] == [0.0] and no_user_row['gender'] == ['']
  assert summary['defaults'] == {
      'users_without_features': 1, 'events_with_default_user_features': 1,
      'items_without_features': 1, 'events_with_default_item_features': 1}
  assert summary['missing_values'] == {'users': {'age': 1}, 'items': {'tags': 1}}


def test_histories_known_answers_and_no_leakage(ingested):
  events = _events(ingested)
  history = lambda key: events[key]['history_item_id']
  assert history(('u1', 'a', mini.t(0, 1), 1)) == []
  assert history(('u1', 'c', mini.t(0, 3), 0)) == ['a', 'b']  # not c at the same ms
  assert history(('u1', 'c', mini.t(0, 3), 1)) == ['a', 'b']
  assert history(('u1', 'd', mini.t(1, 0), 1)) == ['a', 'b', 'c']
  # A validation event sees the user as of the validation window's start: u1's own
  # validation click on c is not in there.
  assert history(('u1', 'c', mini.t(2, 3), 1)) == ['a', 'b', 'c', 'd']
  # Test events see the user as of the test window's start: the validation click on c
  # is in, u1's test click on a is not.
  assert history(('u1', 'a', mini.t(2, 5), 1)) == ['a', 'b', 'c', 'd', 'c']
  assert history(('u1', 'b', mini.t(2, 6), 0)) == ['a', 'b', 'c', 'd', 'c']
  assert history(('u2', 'a', mini.t(2, 2), 0)) == ['b', 'a', 'c']
  # Clicks of every scenario count, also of scenarios that are not served.
  u3 = events[('u3', 'x', mini.t(0, 30), 0)]
  assert u3['history_item_id'] == ['b'] and u3['history_scenario'] == ['s5']
  assert events[('u1', 'd', mini.t(1, 0), 1)]['history_scenario'] == ['s1', 's2', 's1']
  # The refit view: every event as of its own time.
  refit = _by_event(ingested.splits['all'])
  assert refit[('u1', 'b', mini.t(2, 6), 0)]['history_item_id'] == [
      'a', 'b', 'c', 'd', 'c', 'a']


def test_scenario_clicks_are_point_in_time(ingested):
  events = _events(ingested)
  clicks = lambda key, view=events: view[key]['scenario_clicks']
  # A training example counts the clicks strictly before its own moment: never its own
  # click, never a later one. Item a: clicks in s1 at t(0, 1) and s3 at t(1, 10); order
  # s1, s2, s3 (the mapping).
  assert clicks(('u1', 'a', mini.t(0, 1), 1)) == [0.0, 0.0, 0.0]
  assert clicks(('u2', 'a', mini.t(1, 10), 1)) == [1.0, 0.0, 0.0]
  # c: u1's click at the same millisecond does not count; u2's later click neither.
  assert clicks(('u1', 'c', mini.t(0, 3), 0)) == [0.0, 0.0, 0.0]
  assert clicks(('u2', 'c', mini.t(1, 11), 1)) == [1.0, 0.0, 0.0]
  assert clicks(('u1', 'b', mini.t(0, 2), 1)) == [0.0, 0.0, 0.0]  # b's s2 click is later
  assert clicks(('u2', 'b', mini.t(0, 10), 1)) == [0.0, 1.0, 0.0]  # s5 is not served
  # Validation: the training period's clicks (its own window's click on c is later).
  assert clicks(('u1', 'c', mini.t(2, 3), 1)) == [2.0, 0.0, 0.0]
  # Test: every click before the test window, the validation click on c included.
  assert clicks(('u1', 'a', mini.t(2, 5), 1)) == [1.0, 0.0, 1.0]
  assert clicks(('u4', 'a', mini.t(2, 30), 0)) == [1.0, 0.0, 1.0]
  # The refit view: every event as of its own moment.
  refit = _by_event(ingested.splits['all'])
  assert clicks(('u1', 'a', mini.t(2, 5), 1), refit) == [1.0, 0.0, 1.0]  # a@0 in s1, a@1 s3
  assert clicks(('u1', 'c', mini.t(2, 3), 1), refit) == [2.0, 0.0, 0.0]
  corpus = {split: {item: e['scenario_clicks'] for item, e in items.items()}
            for split, items in ingested.corpus.items()}
  assert corpus['train'] == {'a': [1.0, 0.0, 1.0], 'b': [0.0, 2.0, 0.0],
                             'c': [2.0, 0.0, 0.0], 'd': [1.0, 0.0, 0.0],
                             'x': [0.0, 0.0, 0.0]}
  assert corpus['test']['c'] == [2.0, 1.0, 0.0]  # + the validation click
  assert corpus['all']['a'] == [2.0, 0.0, 1.0]  # + the test click


def test_recent_clicks_are_decayed_as_of_each_example(tmp_path):
  spec = mini.write_dataset(str(tmp_path / 'data'), mini.DEFAULT_LOGS)
  out = str(tmp_path / 'out')
  mini.run_ingestion(str(tmp_path / 'data'), spec, out, configs.IngestionConfig(
      num_scenarios=3, recent_click_features=True, recent_clicks_half_life_days=1.0))
  decay = lambda days: 2.0 ** -days
  minute = 1 / 1440
  events = _by_event(mini.read_output(out, 'examples', 'validation') +
                     mini.read_output(out, 'examples', 'train'))
  # Item c in s1: clicks at t(0, 3) (u1) and t(1, 11) (u2), as of the validation start.
  recent = events[('u1', 'c', mini.t(2, 3), 1)]['scenario_recent_clicks']
  assert recent == pytest.approx([decay(2 - 3 * minute) + decay(1 - 11 * minute), 0, 0],
                                 rel=1e-5)
  # A training example is as of its own event: u2's click on c sees u1's only.
  recent = events[('u2', 'c', mini.t(1, 11), 1)]['scenario_recent_clicks']
  assert recent == pytest.approx([decay(1 + 8 * minute), 0, 0], rel=1e-5)
  corpus = {e['item_id'][0]: e for e in mini.read_output(out, 'item_corpus', 'all')}
  assert corpus['x']['scenario_recent_clicks'] == [0.0, 0.0, 0.0]


def test_popularity_features_can_be_turned_off(tmp_path):
  spec = mini.write_dataset(str(tmp_path / 'data'), mini.DEFAULT_LOGS)
  mini.run_ingestion(str(tmp_path / 'data'), spec, str(tmp_path / 'out'),
                     configs.IngestionConfig(num_scenarios=3, scenario_click_features=False,
                                             recent_click_features=False))
  for output, split in (('examples', 'train'), ('examples', 'all'), ('item_corpus', 'test')):
    assert all('scenario_clicks' not in e and 'scenario_recent_clicks' not in e
               for e in mini.read_output(str(tmp_path / 'out'), output, split))


def test_history_length_is_capped(tmp_path):
  spec = mini.write_dataset(str(tmp_path / 'data'), mini.DEFAULT_LOGS)
  mini.run_ingestion(str(tmp_path / 'data'), spec, str(tmp_path / 'out'),
                     configs.IngestionConfig(num_scenarios=3, history_length=2))
  events = _by_event(mini.read_output(str(tmp_path / 'out'), 'examples', 'test'))
  assert events[('u1', 'a', mini.t(2, 5), 1)]['history_item_id'] == ['d', 'c']


def test_a_refresh_window_writes_earlier_train_events_once_to_history(ingested, tmp_path):
  """window_days (a refresh): the train events before the window's first day go to split
  history only, each the same example as in an ingestion without a window; train and all
  keep the window's; every count, corpus and snapshot is unchanged."""
  import apache_beam as beam
  from ingestion import ingest
  spec = mini.write_dataset(str(tmp_path / 'data'), mini.DEFAULT_LOGS)
  out = str(tmp_path / 'out')
  beam_args = list(configs.PipelineConfig().beam_pipeline_args)
  summary = ingest.ingest_and_summarize(
      lambda: beam.Pipeline(argv=beam_args), spec, str(tmp_path / 'data'),
      configs.IngestionConfig(num_scenarios=3), ingest.OutputPaths.under(out, history=True),
      window_days=1)
  window_start = mini.TEST_START - mini.TEST_START % mini.DAY_MS - mini.DAY_MS  # 04-16 UTC
  read = lambda split: _by_event(mini.read_output(out, 'examples', split))
  history, train = read('history'), read('train')
  assert history and train
  assert all(key[2] < window_start for key in history)
  assert all(key[2] >= window_start for key in train)
  assert {**history, **train} == _events(ingested, 'train')  # the same examples
  assert read('all') == {key: e for key, e in _events(ingested, 'all').items()
                         if key[2] >= window_start}
  for split in ('validation', 'test'):
    assert read(split) == _events(ingested, split)
  assert summary['history'] == {'before': '2022-04-16T00:00:00+00:00',
                                'events': len(history)}
  assert ingested.summary['history'] is None
  assert {k: v for k, v in summary.items() if k != 'history'} == {
      k: v for k, v in ingested.summary.items() if k != 'history'}
  assert 'train events before 2022-04-16T00:00:00+00:00 are in split history' in (
      report.format_text(summary))
  assert {e['item_id'][0]: e for e in mini.read_output(out, 'item_corpus', 'all')} == (
      ingested.corpus['all'])
  with pytest.raises(ValueError, match='HISTORY output split'):
    ingest.ingest_and_summarize(
        lambda: beam.Pipeline(argv=beam_args), spec, str(tmp_path / 'data'),
        configs.IngestionConfig(num_scenarios=3),
        ingest.OutputPaths.under(str(tmp_path / 'no_history')), window_days=1)


def test_item_corpus_has_every_item_in_every_split(ingested):
  for items in ingested.corpus.values():
    assert sorted(items) == ['a', 'b', 'c', 'd', 'x']  # x: only in the log
    assert items['a']['cat'] == ['sport'] and items['a']['tags'] == ['x', 'y']
    assert 'user_id' not in items['a'] and 'label' not in items['a']
  assert ingested.summary['item_corpus'] == {'items': 5, 'without_features': 1}


def test_user_snapshot_has_every_user_as_of_the_last_event(ingested):
  users = {e['user_id'][0]: e for e in ingested.snapshot}
  assert sorted(users) == ['u1', 'u2', 'u3', 'u4', 'u5']
  assert ingested.summary['user_snapshot'] == {'users': 5}
  # u1's clicks up to the last event, the test window's included.
  assert users['u1']['history_item_id'] == ['a', 'b', 'c', 'd', 'c', 'a']
  assert users['u1']['history_scenario'] == ['s1', 's2', 's1', 's1', 's2', 's1']
  assert users['u1']['age'] == [30.0] and users['u1']['gender'] == ['f']
  assert users['u3']['history_item_id'] == ['b']  # a click in an unserved scenario
  assert users['u4']['history_item_id'] == [] and users['u4']['gender'] == ['']  # defaults
  assert users['u5']['history_item_id'] == [] and users['u5']['age'] == [25.0]  # no events
  assert set(users['u1']) == {'user_id', 'history_item_id', 'history_scenario', 'age',
                              'gender'}


def test_explicit_scenarios_keep_their_order(tmp_path):
  spec = mini.write_dataset(str(tmp_path / 'data'), mini.DEFAULT_LOGS)
  summary = mini.run_ingestion(str(tmp_path / 'data'), spec, str(tmp_path / 'out'),
                               configs.IngestionConfig(scenarios=('s5', 's1')))
  assert [(s['value'], s['index']) for s in summary['scenarios']] == [('s5', 0), ('s1', 1)]
  assert summary['events']['kept'] == 9  # 8 s1 events and 1 s5 event


def test_gzip_and_several_log_files(tmp_path):
  data = tmp_path / 'data'
  spec = mini.write_dataset(str(data), mini.DEFAULT_LOGS[:8])
  mini.write_csv(str(data / 'logs_2.csv'), mini.LOG_HEADER, mini.DEFAULT_LOGS[8:])
  with open(data / 'logs_2.csv', 'rb') as src, gzip.open(data / 'logs_2.csv.gz', 'wb') as dst:
    shutil.copyfileobj(src, dst)
  os.remove(data / 'logs_2.csv')
  summary = mini.run_ingestion(str(data), spec, str(tmp_path / 'out'))
  assert summary['rows_read']['logs'] == 16 and summary['events']['kept'] == 14


# ---- bad input: a clear error naming file, column and row, raised outside Beam ----


def _ingest(tmp_path, logs=mini.DEFAULT_LOGS, users=None, items=None,
            config=configs.IngestionConfig(num_scenarios=3)):
  spec = mini.write_dataset(str(tmp_path / 'data'), logs, users, items)
  summary = mini.run_ingestion(str(tmp_path / 'data'), spec, str(tmp_path / 'out'), config)
  report.check(summary, config)
  return summary


def test_missing_columns_name_file_columns_and_spec_fields(tmp_path):
  spec = mini.write_dataset(str(tmp_path / 'data'), mini.DEFAULT_LOGS)
  mini.write_csv(str(tmp_path / 'data' / 'items.csv'), ('iid', 'category', 'tag'),
                 mini.DEFAULT_ITEMS)
  with pytest.raises(IngestionError) as e:
    mini.run_ingestion(str(tmp_path / 'data'), spec, str(tmp_path / 'out'))
  message = str(e.value)
  assert 'items.csv' in message
  assert ("no column 'cat' (named by items.features.cat), 'tags' (named by "
          "items.features.tags)") in message
  assert 'Its columns are: iid, category, tag' in message
  assert not os.path.exists(tmp_path / 'out')  # failed before writing anything


def test_wrong_label_type_names_file_line_column(tmp_path):
  logs = list(mini.DEFAULT_LOGS)
  logs[2] = ('u1', 'c', 's1', 'yes', mini.t(0, 3))
  with pytest.raises(IngestionError) as e:
    _ingest(tmp_path, logs)
  message = str(e.value)
  assert '1 of 16 rows of the logs table are malformed' in message
  assert "logs.csv, line 4, column 'click': the label must be 0 or 1" in message
  assert "(found 'yes')" in message
  assert 'max_bad_row_fraction' in message


def test_bad_rows_within_the_tolerance_are_dropped_and_counted(tmp_path):
  logs = list(mini.DEFAULT_LOGS)
  logs[2] = ('u1', 'c', 's1', 'yes', mini.t(0, 3))
  summary = _ingest(tmp_path, logs, config=configs.IngestionConfig(
      num_scenarios=3, max_bad_row_fraction=0.1))
  events = summary['events']
  assert events['dropped']['malformed'] == 1 and events['kept'] == 13
  assert events['read'] == events['kept'] + sum(events['dropped'].values())
  assert summary['bad_row_samples'][0]['line'] == 4


def test_unparsable_timestamp_names_file_line_column(tmp_path):
  logs = list(mini.DEFAULT_LOGS)
  logs[5] = ('u1', 'a', 's1', 1, '2022-04-17 05:25')
  with pytest.raises(IngestionError, match=r"logs.csv, line 7, column 'ts': expected a "
                     r'timestamp in epoch milliseconds'):
    _ingest(tmp_path, logs)


def test_row_with_wrong_number_of_fields(tmp_path):
  spec = mini.write_dataset(str(tmp_path / 'data'), mini.DEFAULT_LOGS)
  with open(tmp_path / 'data' / 'logs.csv', 'a', encoding='utf-8') as f:
    f.write('u1,a,s1\n')
  with pytest.raises(IngestionError, match=r'logs.csv, line 18: 3 fields where the header '
                     r'has 5'):
    report.check(mini.run_ingestion(str(tmp_path / 'data'), spec, str(tmp_path / 'out')),
                 configs.IngestionConfig())


@pytest.mark.parametrize('content,message', [
    ('', 'the file is empty'),
    ('uid,age,gender\n', 'has a header but no data rows'),
])
def test_empty_file(tmp_path, content, message):
  spec = mini.write_dataset(str(tmp_path / 'data'), mini.DEFAULT_LOGS)
  (tmp_path / 'data' / 'users.csv').write_text(content)
  with pytest.raises(IngestionError, match=message) as e:
    mini.run_ingestion(str(tmp_path / 'data'), spec, str(tmp_path / 'out'))
  assert 'users.csv' in str(e.value)


def test_no_file_matches(tmp_path):
  spec = mini.write_dataset(str(tmp_path / 'data'), mini.DEFAULT_LOGS)
  os.remove(tmp_path / 'data' / 'logs.csv')
  with pytest.raises(IngestionError, match=r"no file of the logs table matches .*logs\*"
                     r"\.csv\*'; put the files there or change logs.path"):
    mini.run_ingestion(str(tmp_path / 'data'), spec, str(tmp_path / 'out'))


def test_text_in_numeric_feature_column(tmp_path):
  users = [('u1', 'thirty', 'f')] + mini.DEFAULT_USERS[1:]
  with pytest.raises(IngestionError, match=r"users.csv, line 2, column 'age': expected a "
                     r'finite number'):
    _ingest(tmp_path, users=users)


def test_duplicate_feature_row(tmp_path):
  items = mini.DEFAULT_ITEMS + [('b', 'sport', '')]
  with pytest.raises(IngestionError, match=r"items.csv, line 6, column 'iid': duplicate "
                     r'id: .*items.csv line 3 has the same id'):
    _ingest(tmp_path, items=items)


def test_empty_split_names_the_window_boundaries(tmp_path):
  logs = [row for row in mini.DEFAULT_LOGS if row[4] < mini.VALIDATION_START]
  with pytest.raises(IngestionError, match=r'the validation split is empty: validation '
                     r'starts 2022-04-17T05:20:00\+00:00, test starts '
                     r'2022-04-17T05:24:00\+00:00'):
    _ingest(tmp_path, logs)


def test_explicit_scenario_without_events(tmp_path):
  with pytest.raises(IngestionError, match=r"ingestion.scenarios lists 'nope'"):
    _ingest(tmp_path, config=configs.IngestionConfig(scenarios=('s1', 'nope')))


def test_fixture_task_labels_and_rates_match_the_raw_log(fixture_ingestion, kuairand_spec):
  """Every exposure carries its tasks' labels as in the CSV; the report's positive rate per
  scenario and task is the share counted straight from the CSV."""
  import csv
  from tests.conftest import FIXTURE_DIR
  summary, out = fixture_ingestion
  tasks = kuairand_spec.logs.tasks
  with open(os.path.join(FIXTURE_DIR, 'log_standard_fixture.csv')) as f:
    rows = list(csv.DictReader(f))
  kept = {s['value'] for s in summary['scenarios']}
  rows = [r for r in rows if r['tab'] in kept]
  raw = {(r['user_id'], r['video_id'], int(r['time_ms'])): tuple(int(r[t.column]) for t in tasks)
         for r in rows}
  written = {}
  for split in WINDOWS:
    for e in mini.read_output(out, 'examples', split):
      written[(e['user_id'][0], e['item_id'][0], e['timestamp'][0])] = tuple(
          e[f'task_{t.name}'][0] for t in tasks)
  assert written == raw and len(written) == summary['events']['kept']
  rates = report.task_positive_rates(summary)
  for scenario in sorted(kept) + ['all']:
    mine = [r for r in rows if scenario in ('all', r['tab'])]
    for t in tasks:
      assert rates[scenario][t.name] == pytest.approx(
          sum(int(r[t.column]) for r in mine) / len(mine))
  assert 'ranking tasks: share of exposures with label 1' in report.format_text(summary)


# ---- daily log files (logs.day_format) ----


# Every time-dependent count on, for the daily tests.
DAILY_CONFIG = configs.IngestionConfig(num_scenarios=3, scenario_click_features=True,
                                       item_outcome_features=True)


def _daily_dataset(tmp_path, files: dict, name: str = 'data'):
  """The mini dataset in tmp_path/name with its log split into `files` (name -> rows)
  and logs.day_format '%Y%m%d'; the mini spec's time zone is UTC."""
  import dataclasses
  data = tmp_path / name
  spec = mini.write_dataset(str(data), mini.DEFAULT_LOGS)
  os.remove(data / 'logs.csv')
  for name, rows in files.items():
    mini.write_csv(str(data / name), mini.LOG_HEADER, rows)
  return dataclasses.replace(spec, logs=dataclasses.replace(spec.logs, day_format='%Y%m%d'))


def _by_day(rows):
  """2022-04-15, -16, -17 (UTC) are the mini log's days 0, 1, 2."""
  days = {}
  for row in rows:
    days.setdefault(int((row[4] - mini.T0) // mini.DAY_MS), []).append(row)
  return days


def test_a_daily_file_with_another_days_event_is_refused_naming_it(tmp_path):
  by_day = _by_day(mini.DEFAULT_LOGS)
  moved = by_day[1].pop()  # an event of 04-16 in the file of 04-15
  by_day[0].append(moved)
  spec = _daily_dataset(tmp_path, {f'logs_2022041{5 + d}.csv': rows
                                   for d, rows in by_day.items()})
  config = configs.IngestionConfig(num_scenarios=3, max_bad_row_fraction=0.5)
  summary = mini.run_ingestion(str(tmp_path / 'data'), spec, str(tmp_path / 'out'), config)
  assert summary['bad_rows']['logs'] == 1  # counted as a dropped row too
  with pytest.raises(IngestionError) as e:
    report.check(summary, config)
  message = str(e.value)
  assert 'logs_20220415.csv: 1 of 8 rows are not of 2022-04-15' in message
  assert 'split.timezone' in message and 'Move each event to the file of its day' in message
  assert 'logs_20220416.csv' not in message


def test_a_day_is_found_after_other_digits_of_a_name():
  import datetime
  from ingestion import days
  assert days.day_of_file('/d/log_020220502.csv', '%Y%m%d') == datetime.date(2022, 5, 2)


@pytest.mark.parametrize('names, message', [
    (('logs_20220415.csv', 'logs_20220415b.csv', 'logs_20220416.csv'),
     r'2022-04-15 has 2 log files: .*logs_20220415.csv, .*logs_20220415b.csv'),
    (('logs_20220415.csv', 'logs_20220417.csv'),
     r'from 2022-04-15 to 2022-04-17 leave out 1 day\(s\): 2022-04-16'),
    (('logs_20220415.csv', 'logs_latest.csv'),
     r"logs_latest.csv: the name holds no day in the format '%Y%m%d'"),
])
def test_daily_files_of_one_day_twice_a_gap_or_no_day_are_refused_first(tmp_path, names,
                                                                         message):
  spec = _daily_dataset(tmp_path, {name: mini.DEFAULT_LOGS for name in names})
  with pytest.raises(IngestionError, match=message):
    mini.run_ingestion(str(tmp_path / 'data'), spec, str(tmp_path / 'out'))
  assert not os.path.exists(tmp_path / 'out')  # refused before anything was written


# ---- a new day from the previous days' end state (ingest.PreviousDays) ----


def _approx_examples(examples):
  """Examples keyed by (user, item, time, label) with float values approximate: the
  decayed clicks are float32, summed in another order from a state."""
  return {key: {name: (pytest.approx(values, rel=1e-6) if values and
                       isinstance(values[0], float) else values)
                for name, values in example.items()}
          for key, example in _by_event(examples).items()}


def test_a_new_day_from_the_end_state_equals_ingesting_every_day(built_release, tmp_path):
  """Ingesting every day from daily files reports the days; the day after the release
  ingested alone from its end state gives what ingesting every day gives."""
  import apache_beam as beam
  from core import dataset_spec as ds
  from ingestion import ingest
  day_start = mini.T0 - mini.T0 % mini.DAY_MS + 2 * mini.DAY_MS  # 2022-04-17T00:00Z
  by_day = _by_day(mini.DEFAULT_LOGS)
  assert len(by_day[2]) == 6 and min(r[4] for r in by_day[2]) >= day_start
  shutil.copytree(built_release / 'data', tmp_path / 'all_days')
  mini.write_csv(str(tmp_path / 'all_days' / 'logs_20220417.csv'), mini.LOG_HEADER, by_day[2])
  spec = ds.DatasetSpec.from_yaml(str(tmp_path / 'all_days' / 'spec.yaml'))
  every = mini.run_ingestion(str(tmp_path / 'all_days'), spec, str(tmp_path / 'full'),
                             DAILY_CONFIG)
  report.check(every, DAILY_CONFIG)
  assert [(d['day'], os.path.basename(d['file']), d['rows'], d['other_day_events'])
          for d in every['log_days']] == [
              ('2022-04-15', 'logs_20220415.csv', 7, 0),
              ('2022-04-16', 'logs_20220416.csv', 3, 0),
              ('2022-04-17', 'logs_20220417.csv', 6, 0)]
  assert every['events']['kept'] == 14  # as from one file
  assert 'daily log files: 3, 2022-04-15 .. 2022-04-17 (UTC)' in report.format_text(every)

  previous = ingest.PreviousDays.of_release(str(built_release / 'release'), day_start)
  beam_args = list(configs.PipelineConfig().beam_pipeline_args)
  # The data directory of every day: only the day from day_start on is read.
  summary = ingest.ingest_and_summarize(
      lambda: beam.Pipeline(argv=beam_args), spec, str(tmp_path / 'all_days'), DAILY_CONFIG,
      ingest.OutputPaths.under(str(tmp_path / 'day')), previous)
  assert [os.path.basename(d['file']) for d in summary['log_days']] == ['logs_20220417.csv']
  full = lambda output, split='': mini.read_output(str(tmp_path / 'full'), output, split)
  day = lambda output, split='': mini.read_output(str(tmp_path / 'day'), output, split)

  # Training examples of the new day: history, counts and features as of each event.
  assert _by_event(day('examples', 'all')) == _approx_examples(
      [e for e in full('examples', 'all') if e['timestamp'][0] >= day_start])
  assert summary['splits']['test']['events'] == 5  # s4 is not served: dropped, counted
  # The end state (and so the next day's start), the corpus and the snapshot.
  by_id = lambda examples, key: {e[key][0]: {k: (pytest.approx(v, rel=1e-6) if v and
                                                  isinstance(v[0], float) else v)
                                              for k, v in e.items()} for e in examples}
  exact = lambda examples, key: {e[key][0]: e for e in examples}
  assert exact(day('item_state'), 'item_id') == by_id(full('item_state'), 'item_id')
  assert exact(day('item_corpus', 'all'), 'item_id') == by_id(full('item_corpus', 'all'),
                                                               'item_id')
  assert exact(day('user_snapshot'), 'user_id') == by_id(full('user_snapshot'), 'user_id')
  # The evaluation view: as of the day's start, so no click of the day is in a history.
  for example in day('examples', 'test'):
    user = example['user_id'][0]
    assert example['history_item_id'] == [
        e['history_item_id'] for e in mini.read_output(str(built_release / 'built'),
                                                        'user_snapshot')
        if e['user_id'][0] == user][0] if user != 'u4' else example['history_item_id'] == []


@pytest.fixture(scope='module')
def built_release(tmp_path_factory):
  """A release-like directory built once from the mini log's first two days as daily
  files (manifest, item_state/, user_snapshot/), beside its data directory."""
  import json
  root = tmp_path_factory.mktemp('daily_release')
  by_day = _by_day(mini.DEFAULT_LOGS)
  spec = _daily_dataset(root, {'logs_20220415.csv': by_day[0],
                               'logs_20220416.csv': by_day[1]})
  (root / 'data' / 'spec.yaml').write_text(mini.SPEC_YAML.replace(
      'timestamp_format: epoch_ms}', 'timestamp_format: epoch_ms, day_format: "%Y%m%d"}'))
  summary = mini.run_ingestion(str(root / 'data'), spec, str(root / 'built'), DAILY_CONFIG)
  release = root / 'release'
  release.mkdir()
  for part in ('item_state', 'user_snapshot'):
    shutil.copytree(root / 'built' / part, release / part)
  (release / 'manifest.json').write_text(json.dumps({
      'version': 'v1', 'scenarios': [s['value'] for s in summary['scenarios']],
      'data': {'windows': {'last_event': summary['last_event']},
               'log_days': [{k: d[k] for k in ('day', 'file', 'rows')}
                            for d in summary['log_days']]}}))
  return root


def _daily_release(built, tmp_path):
  """This test's copy of the built release and its data directory: (config, release,
  the mini log's rows by day, the release's checksums, the config overrides)."""
  from core import layout as core_layout
  for part in ('data', 'release'):
    shutil.copytree(built / part, tmp_path / part)
  data = tmp_path / 'data'
  overrides = [f'data_dir={data}', f'dataset_spec={data}/spec.yaml',
               f'output_dir={tmp_path}/outputs', 'ingestion.num_scenarios=3']
  release = str(tmp_path / 'release')
  return (configs.load_config('', overrides), release, _by_day(mini.DEFAULT_LOGS),
          core_layout.file_checksums(release), overrides)


def test_new_days_after_a_release_are_ingested_alone(built_release, tmp_path, capsys):
  import json
  from ingestion import new_days
  _, release, by_day, _, overrides = _daily_release(built_release, tmp_path)
  mini.write_csv(str(tmp_path / 'data' / 'logs_20220417.csv'), mini.LOG_HEADER, by_day[2])
  # As the README runs it.
  assert new_days.main([f'--set={o}' for o in overrides] + ['--release', release]) == 0
  out = capsys.readouterr().out.splitlines()[-1].removeprefix('new days written to ')
  assert out.endswith('new_days/v1/2022-04-17_2022-04-17')
  with open(os.path.join(out, 'summary.json')) as f:
    summary = json.load(f)
  assert [(d['day'], os.path.basename(d['file'])) for d in summary['log_days']] == [
      ('2022-04-17', 'logs_20220417.csv')]  # the release's days are not read again
  assert summary['rows_read']['logs'] == 6
  examples = mini.read_output(out, 'examples', 'all')
  assert len(examples) == 5  # the s4 event is not a served scenario: dropped, counted
  assert summary['events']['dropped']['scenario_not_selected'] == 1
  u1 = [e for e in examples if e['user_id'] == ['u1'] and e['item_id'] == ['b']][0]
  # u1's history starts with the release's clicks: a, b, c, d before the day, then c, a.
  assert u1['history_item_id'] == ['a', 'b', 'c', 'd', 'c', 'a']


@pytest.mark.parametrize('change, message', [
    ('rename', r"logs_20220416_v2.csv: 2022-04-16 was ingested already, from .*"
               r"logs_20220416.csv \(release .*\); a day is read once"),
    ('earlier', r'logs_20220414.csv: 2022-04-14 is before 2022-04-16, the last day of '
                r'release .*, and was never ingested; days are ingested in order'),
    ('other_day', r'logs_20220417.csv: 1 of 7 rows are not of 2022-04-17'),
    ('nothing', r'no daily log file .* after the last day of release'),
    ('gap', r'logs_20220418.csv: 2022-04-18 does not follow 2022-04-16, the last day of '
            r'release .*; 1 day\(s\) from 2022-04-17 are missing'),
    ('only_other_day', r'logs_20220417.csv: 1 of 1 rows are not of 2022-04-17'),
    ('spec_changed', r'counts 0 ranking tasks and 3 scenarios; this ingestion has 1 tasks '
                     r'\(logs.tasks\) and 3 scenarios. The dataset spec changed'),
])
def test_new_days_refused_name_the_file_and_leave_the_release(built_release, tmp_path,
                                                              change, message):
  from core import layout as core_layout
  from ingestion import new_days
  config, release, by_day, checksums, _ = _daily_release(built_release, tmp_path)
  data = tmp_path / 'data'
  if change == 'rename':
    os.rename(data / 'logs_20220416.csv', data / 'logs_20220416_v2.csv')
  elif change == 'earlier':
    mini.write_csv(str(data / 'logs_20220414.csv'), mini.LOG_HEADER, by_day[0][:1])
  elif change == 'gap':  # the release's files archived; the next file is not 04-17's
    for name in ('logs_20220415.csv', 'logs_20220416.csv'):
      os.remove(data / name)
    mini.write_csv(str(data / 'logs_20220418.csv'), mini.LOG_HEADER,
                   [('u1', 'a', 's1', 1, mini.t(3, 0))])
  elif change == 'only_other_day':  # no valid event of the day at all
    mini.write_csv(str(data / 'logs_20220417.csv'), mini.LOG_HEADER,
                   [('u1', 'a', 's1', 1, mini.t(3, 0))])
  elif change == 'spec_changed':  # a ranking task added since the release
    mini.write_csv(str(data / 'logs_20220417.csv'), mini.LOG_HEADER, by_day[2])
    spec_text = (data / 'spec.yaml').read_text()
    (data / 'spec.yaml').write_text(spec_text.replace(
        'timestamp_format: epoch_ms,', 'timestamp_format: epoch_ms, tasks: {click: click},'))
  elif change == 'other_day':
    mini.write_csv(str(data / 'logs_20220417.csv'), mini.LOG_HEADER,
                   by_day[2] + [('u1', 'a', 's1', 1, mini.t(3, 0))])  # an event of 04-18
  with pytest.raises(IngestionError, match=message):
    new_days.ingest_new_days(config, release)
  assert core_layout.file_checksums(release) == checksums  # the release is unchanged
  assert not glob.glob(str(tmp_path / 'outputs' / 'new_days' / '*' / '*'))  # nothing kept
