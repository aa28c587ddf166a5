"""The Beam ingestion on a hand-made log: join, time split, scenarios, histories, counts,
and every kind of bad input."""

import gzip
import os
import shutil

import pytest

from core import config as configs
from ingestion import report
from ingestion.errors import IngestionError
from tests import mini_dataset as mini


@pytest.fixture(scope='module')
def ingested(tmp_path_factory):
  """The default mini dataset, ingested once for the tests that only read outputs."""
  root = tmp_path_factory.mktemp('mini')
  spec = mini.write_dataset(str(root / 'data'), mini.DEFAULT_LOGS)
  summary = mini.run_ingestion(str(root / 'data'), spec, str(root / 'out'))
  read = lambda split: mini.read_examples(str(root / 'out' / split))
  return summary, read('train'), read('eval'), read('corpus'), read('users')


def _by_event(examples):
  return {(e['user_id'][0], e['item_id'][0], e['timestamp'][0], e['label'][0]): e
          for e in examples}


def test_scenarios_are_the_top_n_by_train_positives(ingested):
  summary, *_ = ingested
  assert [(s['value'], s['index'], s['train_positives']) for s in summary['scenarios']] == [
      ('s1', 0, 4), ('s2', 1, 2), ('s3', 2, 1)]  # s3 beats s5 (also 1) by value


def test_time_split_and_counts(ingested):
  summary, train, eval_, *_ = ingested
  assert all(e['timestamp'][0] < mini.CUTOFF for e in train)
  assert all(e['timestamp'][0] >= mini.CUTOFF for e in eval_)
  assert (len(train), len(eval_)) == (9, 4)
  events = summary['events']
  assert events['read'] == len(mini.DEFAULT_LOGS) == 15
  assert events['kept'] == 13
  assert events['dropped'] == {'malformed': 0, 'scenario_not_selected': 2}
  assert events['dropped_by_scenario'] == {'s4': 1, 's5': 1}
  assert events['read'] == events['kept'] + sum(events['dropped'].values())
  assert summary['splits']['train']['scenarios']['s1'] == {'events': 6, 'positives': 4}
  assert summary['splits']['eval']['scenarios'] == {
      's1': {'events': 2, 'positives': 1}, 's2': {'events': 1, 'positives': 0},
      's3': {'events': 1, 'positives': 0}}


def test_join_attaches_the_right_features(ingested):
  _, train, eval_, *_ = ingested
  events = _by_event(train + eval_)
  first = events[('u1', 'a', mini.t(0, 1), 1)]
  assert first['age'] == [30.0] and first['gender'] == ['f']
  assert first['cat'] == ['sport'] and first['tags'] == ['x', 'y']
  assert first['scenario'] == ['s1']
  u2 = events[('u2', 'b', mini.t(0, 10), 1)]
  assert u2['age'] == [41.0] and u2['cat'] == ['news'] and u2['tags'] == ['y']


def test_missing_feature_rows_get_defaults_and_are_counted(ingested):
  summary, train, eval_, *_ = ingested
  events = _by_event(train + eval_)
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
  _, train, eval_, *_ = ingested
  events = _by_event(train + eval_)
  history = lambda key: events[key]['history_item_id']
  assert history(('u1', 'a', mini.t(0, 1), 1)) == []
  assert history(('u1', 'c', mini.t(0, 3), 0)) == ['a', 'b']  # not c at the same ms
  assert history(('u1', 'c', mini.t(0, 3), 1)) == ['a', 'b']
  assert history(('u1', 'd', mini.t(1, 0), 1)) == ['a', 'b', 'c']
  # Eval events see the user as of the cutoff: u1's eval click on 'a' is not in there.
  assert history(('u1', 'a', mini.t(2, 5), 1)) == ['a', 'b', 'c', 'd']
  assert history(('u1', 'b', mini.t(2, 6), 0)) == ['a', 'b', 'c', 'd']
  assert history(('u2', 'a', mini.t(2, 2), 0)) == ['b', 'a', 'c']
  # Clicks of every scenario count, also of scenarios that are not served.
  u3 = events[('u3', 'x', mini.t(0, 30), 0)]
  assert u3['history_item_id'] == ['b'] and u3['history_scenario'] == ['s5']
  assert events[('u1', 'd', mini.t(1, 0), 1)]['history_scenario'] == ['s1', 's2', 's1']


def test_scenario_clicks_count_training_clicks_without_the_events_own(ingested):
  _, train, eval_, corpus, _ = ingested
  events = _by_event(train + eval_)
  clicks = lambda key: events[key]['scenario_clicks']
  # Item a: training clicks in s1 (u1) and s3 (u2); order s1, s2, s3 (the mapping).
  assert clicks(('u1', 'a', mini.t(0, 1), 1)) == [0.0, 0.0, 1.0]  # its own s1 click out
  assert clicks(('u2', 'a', mini.t(1, 10), 1)) == [1.0, 0.0, 0.0]  # its own s3 click out
  assert clicks(('u1', 'a', mini.t(2, 5), 1)) == [1.0, 0.0, 1.0]  # eval: as of the cutoff
  assert clicks(('u1', 'c', mini.t(0, 3), 0)) == [2.0, 0.0, 0.0]  # not a click: all count
  assert clicks(('u1', 'b', mini.t(0, 2), 1)) == [0.0, 1.0, 0.0]  # s5 is not served
  items = {e['item_id'][0]: e['scenario_clicks'] for e in corpus}
  assert items == {'a': [1.0, 0.0, 1.0], 'b': [0.0, 2.0, 0.0], 'c': [2.0, 0.0, 0.0],
                   'd': [1.0, 0.0, 0.0], 'x': [0.0, 0.0, 0.0]}


def test_scenario_click_features_can_be_turned_off(tmp_path):
  spec = mini.write_dataset(str(tmp_path / 'data'), mini.DEFAULT_LOGS)
  mini.run_ingestion(str(tmp_path / 'data'), spec, str(tmp_path / 'out'),
                     configs.IngestionConfig(num_scenarios=3, scenario_click_features=False))
  for split in ('train', 'corpus'):
    assert all('scenario_clicks' not in e
               for e in mini.read_examples(str(tmp_path / 'out' / split)))


def test_history_length_is_capped(tmp_path):
  spec = mini.write_dataset(str(tmp_path / 'data'), mini.DEFAULT_LOGS)
  mini.run_ingestion(str(tmp_path / 'data'), spec, str(tmp_path / 'out'),
                     configs.IngestionConfig(num_scenarios=3, history_length=2))
  events = _by_event(mini.read_examples(str(tmp_path / 'out' / 'eval')))
  assert events[('u1', 'a', mini.t(2, 5), 1)]['history_item_id'] == ['c', 'd']


def test_item_corpus_has_every_item(ingested):
  summary, _, _, corpus, _ = ingested
  items = {e['item_id'][0]: e for e in corpus}
  assert sorted(items) == ['a', 'b', 'c', 'd', 'x']  # x: only in the log
  assert items['a']['cat'] == ['sport'] and items['a']['tags'] == ['x', 'y']
  assert 'user_id' not in items['a'] and 'label' not in items['a']
  assert summary['item_corpus'] == {'items': 5, 'without_features': 1}


def test_user_snapshot_has_every_user_with_history_at_the_cutoff(ingested):
  summary, _, _, _, snapshot = ingested
  users = {e['user_id'][0]: e for e in snapshot}
  assert sorted(users) == ['u1', 'u2', 'u3', 'u4', 'u5']
  assert summary['user_snapshot'] == {'users': 5}
  # u1 clicked a, b, c, d before the cutoff and a again after it: not in the snapshot.
  assert users['u1']['history_item_id'] == ['a', 'b', 'c', 'd']
  assert users['u1']['history_scenario'] == ['s1', 's2', 's1', 's1']
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
  assert summary['rows_read']['logs'] == 15 and summary['events']['kept'] == 13


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
  assert '1 of 15 rows of the logs table are malformed' in message
  assert "logs.csv, line 4, column 'click': the label must be 0 or 1" in message
  assert "(found 'yes')" in message
  assert 'max_bad_row_fraction' in message


def test_bad_rows_within_the_tolerance_are_dropped_and_counted(tmp_path):
  logs = list(mini.DEFAULT_LOGS)
  logs[2] = ('u1', 'c', 's1', 'yes', mini.t(0, 3))
  summary = _ingest(tmp_path, logs, config=configs.IngestionConfig(
      num_scenarios=3, max_bad_row_fraction=0.1))
  events = summary['events']
  assert events['dropped']['malformed'] == 1 and events['kept'] == 12
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
  with pytest.raises(IngestionError, match=r'logs.csv, line 17: 3 fields where the header '
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


def test_empty_split_names_the_cutoff(tmp_path):
  logs = [row for row in mini.DEFAULT_LOGS if row[4] < mini.CUTOFF]
  with pytest.raises(IngestionError, match=r'the eval split is empty: the cutoff is '
                     r'2022-04-17T05:20:00\+00:00'):
    _ingest(tmp_path, logs)


def test_explicit_scenario_without_events(tmp_path):
  with pytest.raises(IngestionError, match=r"ingestion.scenarios lists 'nope'"):
    _ingest(tmp_path, config=configs.IngestionConfig(scenarios=('s1', 'nope')))
