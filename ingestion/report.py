"""The ingestion summary: what was read, kept, dropped (by reason) and defaulted.

`summarize` turns the Beam pipeline's raw counts into the summary written next to the
examples (summary.json, summary.txt) and printed by `make run`; `check` raises an
IngestionError when the input cannot make a usable dataset.
"""

import datetime
from typing import Any, Sequence

from core import config as configs
from core import dataset_spec as ds
from core import layout
from ingestion import counts as keys
from ingestion import days as log_days
from ingestion.errors import IngestionError
from ingestion.records import BadRow

WINDOWS = (layout.TRAIN, layout.VALIDATION, layout.TEST)  # the splits of distinct events


def summarize(raw: dict, spec: ds.DatasetSpec,
              days: Sequence[log_days.LogDay] = ()) -> dict[str, Any]:
  """The structured summary of one ingestion run; `days`: its daily log files, if any."""
  counts = raw['counts']

  def count(key):
    return counts.get(key, 0)

  def prefixed(prefix):
    return {k[len(prefix):]: v for k, v in sorted(counts.items()) if k.startswith(prefix)}

  scenarios = [dict(s, index=i) for i, s in enumerate(raw['scenarios'])]
  splits = {}
  for split in WINDOWS:
    per_scenario = {s['value']: {'events': count(keys.events(split, s['value'])),
                                 'positives': count(keys.positives(split, s['value']))}
                    for s in scenarios}
    for s in scenarios if spec.logs.tasks else ():  # the ranking tasks' positives
      per_scenario[s['value']]['task_positives'] = {
          t: count(keys.task_positives(split, s['value'], t)) for t in spec.logs.task_names}
    splits[split] = {
        'events': sum(v['events'] for v in per_scenario.values()),
        'positives': sum(v['positives'] for v in per_scenario.values()),
        'scenarios': per_scenario,
    }
  dropped_by_scenario = dict(sorted(prefixed(keys.DROPPED_SCENARIO_PREFIX).items(),
                                    key=lambda kv: (-kv[1], kv[0])))
  malformed_events = count(keys.bad_rows('logs'))
  tz = spec.split.tzinfo
  return {
      'dataset': spec.name,
      'validation_start': _iso(raw['validation_start_ms'], tz),
      'validation_start_ms': raw['validation_start_ms'],
      'test_start': _iso(raw['test_start_ms'], tz),
      'test_start_ms': raw['test_start_ms'],
      'last_event': _iso(raw['max_timestamp_ms'], tz),
      'last_event_ms': raw['max_timestamp_ms'],
      'rows_read': {t: count(keys.rows_read(t)) for t in keys.TABLES},
      'bad_rows': {t: count(keys.bad_rows(t)) for t in keys.TABLES},
      'bad_row_samples': raw['bad_rows'],
      'events': {
          'read': count(keys.rows_read('logs')),
          'kept': sum(splits[split]['events'] for split in WINDOWS),
          'dropped': {'malformed': malformed_events,
                      'scenario_not_selected': sum(dropped_by_scenario.values())},
          'dropped_by_scenario': dropped_by_scenario,
      },
      'scenarios': scenarios,
      'tasks': list(spec.logs.task_names),
      'splits': splits,
      'item_corpus': {'items': count(keys.CORPUS_ITEMS),
                      'without_features': count(keys.ITEMS_WITHOUT_FEATURES)},
      'user_snapshot': {'users': count(keys.SNAPSHOT_USERS)},
      'defaults': {name: count(name) for name in (
          keys.USERS_WITHOUT_FEATURES, keys.EVENTS_WITH_DEFAULT_USER_FEATURES,
          keys.ITEMS_WITHOUT_FEATURES, keys.EVENTS_WITH_DEFAULT_ITEM_FEATURES)},
      'missing_values': {table: prefixed(keys.missing_value(table, ''))
                         for table in ('users', 'items')},
      'timezone': spec.split.timezone,
      # A refresh (window_days): the train events before its window, in split history.
      'history': ({'before': _iso(raw['window_start_ms'], tz),
                   'events': count(keys.HISTORY_EVENTS)}
                  if raw.get('window_start_ms') else None),
      'log_days': [{'day': d.day.isoformat(), 'file': d.path,
                    'rows': count(keys.day_rows(d.path)),
                    'other_day_events': count(keys.other_day_events(d.path))}
                   for d in days],
  }


def check(summary: dict, config: configs.IngestionConfig, whole_log: bool = True) -> None:
  """Raises IngestionError when the data is unusable, too many rows are malformed, or a
  daily log file holds another day's events. Without `whole_log` (new days ingested from
  the end state before them: no training window of their own), only the last two."""
  log_days.check_days(summary)
  for table in keys.TABLES:
    read, bad = summary['rows_read'][table], summary['bad_rows'][table]
    if bad and bad > config.max_bad_row_fraction * read:
      samples = [BadRow(**r) for r in summary['bad_row_samples'] if r['table'] == table]
      lines = '\n'.join(f'  {r.describe()}' for r in samples)
      raise IngestionError(
          f'{bad} of {read} rows of the {table} table are malformed '
          f'(ingestion.max_bad_row_fraction is {config.max_bad_row_fraction}). '
          f'The first ones:\n{lines}\nFix these rows, or raise '
          f'ingestion.max_bad_row_fraction to drop them (they are counted in the report).')
  if not whole_log:
    return
  scenarios = summary['scenarios']
  if not scenarios:
    raise IngestionError(
        f'no event before the validation window ({summary["validation_start"]}) is a '
        f'positive, so no scenario can be selected (last event: {summary["last_event"]}); '
        f'check the label column and the split in the dataset spec')
  empty = [s['value'] for s in scenarios if s['train_events'] == 0]
  if empty:
    raise IngestionError(
        f'ingestion.scenarios lists {", ".join(map(repr, empty))}, which has no event in '
        f'the training split; list only scenario values that occur in the logs')
  for split in WINDOWS:
    if summary['splits'][split]['events'] == 0:
      raise IngestionError(
          f'the {split} split is empty: validation starts {summary["validation_start"]}, '
          f'test starts {summary["test_start"]} and the last event is at '
          f'{summary["last_event"]}; move the split in the dataset spec (validation_start '
          f'and test_start, or validation_days and test_days)')


def format_text(summary: dict) -> str:
  """A short, human-readable summary."""
  read = summary['rows_read']
  events = summary['events']
  dropped = events['dropped']
  by_scenario = ', '.join(f'{v}: {n:,}' for v, n in events['dropped_by_scenario'].items())
  lines = [
      f'Ingestion of {summary["dataset"]}: train < {summary["validation_start"]} <= '
      f'validation < {summary["test_start"]} <= test (last event {summary["last_event"]})',
      f'  rows read: logs {read["logs"]:,}, users {read["users"]:,}, '
      f'items {read["items"]:,}',
      f'  events kept: {events["kept"]:,}; dropped: malformed {dropped["malformed"]:,}, '
      f'scenario not selected {dropped["scenario_not_selected"]:,}'
      + (f' ({by_scenario})' if by_scenario else ''),
      f'  {"scenario":>8} {"index":>5} ' + ' '.join(
          f'{split + " events":>17} {"pos":>7}' for split in WINDOWS),
  ]
  splits = summary['splits']
  for s in summary['scenarios']:
    cells = ' '.join(f'{splits[w]["scenarios"][s["value"]]["events"]:>17,} '
                     f'{splits[w]["scenarios"][s["value"]]["positives"]:>7,}'
                     for w in WINDOWS)
    lines.append(f'  {s["value"]:>8} {s["index"]:>5} {cells}')
  cells = ' '.join(f'{splits[w]["events"]:>17,} {splits[w]["positives"]:>7,}'
                   for w in WINDOWS)
  lines.append(f'  {"all":>8} {"":>5} {cells}')
  lines += _task_rate_lines(summary)
  defaults = summary['defaults']
  missing = {t: sum(v.values()) for t, v in summary['missing_values'].items()}
  lines += [
      f'  item corpus: {summary["item_corpus"]["items"]:,} items; user snapshot: '
      f'{summary["user_snapshot"]["users"]:,} users (history as of the last event)',
      f'  defaults: {defaults[keys.USERS_WITHOUT_FEATURES]:,} users '
      f'({defaults[keys.EVENTS_WITH_DEFAULT_USER_FEATURES]:,} events) and '
      f'{defaults[keys.ITEMS_WITHOUT_FEATURES]:,} items '
      f'({defaults[keys.EVENTS_WITH_DEFAULT_ITEM_FEATURES]:,} events) had no feature row; '
      f'empty cells filled: users {missing["users"]:,}, items {missing["items"]:,}',
  ]
  if summary.get('history'):
    lines.append(f'  a refresh\'s window: the {summary["history"]["events"]:,} train events '
                 f'before {summary["history"]["before"]} are in split history only '
                 f'(vocabularies, popularity, clicks; no model trains on them)')
  if summary.get('log_days'):
    days = summary['log_days']
    lines.append(f'  daily log files: {len(days)}, {days[0]["day"]} .. {days[-1]["day"]} '
                 f'({summary["timezone"]})')
  bad = {t: n for t, n in summary['bad_rows'].items() if n}
  if bad:
    lines.append('  malformed rows dropped: '
                 + ', '.join(f'{t} {n:,}' for t, n in bad.items()))
  return '\n'.join(lines)


def task_positive_rates(summary: dict) -> dict[str, dict[str, float]]:
  """Scenario ('all' last) -> task -> share of exposures whose task label is 1, over the
  three splits (NaN for a scenario without events)."""
  tasks = summary.get('tasks', [])
  cells = {s['value']: [summary['splits'][w]['scenarios'][s['value']] for w in WINDOWS]
           for s in summary['scenarios']}
  cells['all'] = [c for scenario_cells in list(cells.values()) for c in scenario_cells]
  rates = {}
  for name, of_scenario in cells.items():
    events = sum(c['events'] for c in of_scenario)
    rates[name] = {t: (sum(c['task_positives'][t] for c in of_scenario) / events
                       if events else float('nan')) for t in tasks}
  return rates


def _task_rate_lines(summary: dict) -> list[str]:
  tasks = summary.get('tasks', [])
  if not tasks:
    return []
  lines = ['  ranking tasks: share of exposures with label 1, all splits',
           f'  {"scenario":>8} ' + ' '.join(f'{t:>10}' for t in tasks)]
  for scenario, rates in task_positive_rates(summary).items():
    lines.append(f'  {scenario:>8} ' + ' '.join(f'{rates[t]:>10.4f}' for t in tasks))
  return lines


def _iso(timestamp_ms, tz) -> str:
  if timestamp_ms is None:
    return 'none'
  return datetime.datetime.fromtimestamp(timestamp_ms / 1000, tz).isoformat(
      timespec='seconds')
