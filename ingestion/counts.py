"""The keys of the ingestion's counters: the Beam pipeline (ingest.py) counts under these,
the report (report.py) reads them. Keys with a "/" end in a table, split, scenario or
column; the PREFIX constants select all of one kind."""

TABLES = ('logs', 'users', 'items')

CORPUS_ITEMS = 'corpus/items'
SNAPSHOT_USERS = 'snapshot/users'
HISTORY_EVENTS = 'history/events'  # a refresh's train events before its window (HISTORY)
USERS_WITHOUT_FEATURES = 'users_without_features'
EVENTS_WITH_DEFAULT_USER_FEATURES = 'events_with_default_user_features'
ITEMS_WITHOUT_FEATURES = 'items_without_features'
EVENTS_WITH_DEFAULT_ITEM_FEATURES = 'events_with_default_item_features'
DROPPED_SCENARIO_PREFIX = 'dropped/scenario_not_selected/'
MISSING_VALUES_PREFIX = 'missing_values/'


def rows_read(table: str) -> str:
  return f'rows_read/{table}'


def bad_rows(table: str) -> str:
  return f'bad_rows/{table}'


def events(split: str, scenario: str) -> str:
  return f'events/{split}/{scenario}'


def positives(split: str, scenario: str) -> str:
  return f'positives/{split}/{scenario}'


def task_positives(split: str, scenario: str, task: str) -> str:
  """Exposures of a scenario whose ranking task's label is 1."""
  return f'task_positives/{split}/{scenario}/{task}'


def dropped_scenario(scenario: str) -> str:
  """An event of a scenario that was not selected."""
  return f'{DROPPED_SCENARIO_PREFIX}{scenario}'


def missing_value(table: str, column: str) -> str:
  """An empty cell that got the spec's default."""
  return f'{MISSING_VALUES_PREFIX}{table}/{column}'


def day_rows(path: str) -> str:
  """The events read from a daily log file (logs.day_format)."""
  return f'day_rows/{path}'


def other_day_events(path: str) -> str:
  """The events of a daily log file that are not of the file's day."""
  return f'other_day_events/{path}'
