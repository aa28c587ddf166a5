"""Daily log files: the day in each file's name, one file per day, no day left out.

With `logs.day_format` in the dataset spec (e.g. '%Y%m%d'), the log is a series of daily
files such as log_20220502.csv.gz. Before any Beam work, `log_days` reads the day of every
file from its name and refuses a name without a day, two files of one day and a day
missing between the first and the last; during the ingestion, an event whose day (in
split.timezone) is not its file's day is a bad row that `check_days` turns into an error
naming the file. The days a run read (day, file, events) go into the ingestion summary,
and so into the release, which says what it saw.
"""

import datetime
import os
import re
from typing import Mapping, NamedTuple, Sequence

from core import dataset_spec as ds
from ingestion.errors import IngestionError

HOW_TO_NAME = ("one file per day, its day in the name as logs.day_format says (e.g. "
               "'%Y%m%d' for log_20220502.csv.gz)")


class LogDay(NamedTuple):
  day: datetime.date
  path: str


def day_of_file(path: str, day_format: str) -> datetime.date:
  """The day in the name of `path`; IngestionError when the name holds none or several."""
  name = os.path.basename(path)
  # Overlapping: a date right after other digits (log_020220502) is found too.
  lookahead = re.compile(f'(?=({ds.day_pattern(day_format).pattern}))')
  matches = list(lookahead.finditer(name))
  days = []
  for match in matches:
    try:
      days.append(datetime.date(int(match['Y']), int(match['m']), int(match['d'])))
    except ValueError:
      continue  # digits that are not a date, e.g. a sequence number
  if len(days) != 1:
    found = 'no day' if not days else f'{len(days)} days ({", ".join(map(str, days))})'
    raise IngestionError(
        f'{path}: the name holds {found} in the format {day_format!r} '
        f'(logs.day_format); daily logs need {HOW_TO_NAME}. Rename the file, or remove '
        f'logs.day_format from the dataset spec to read the files as one log.')
  return days[0]


def log_days(paths: Sequence[str], day_format: str) -> tuple[LogDay, ...]:
  """The daily files in day order; IngestionError names the files of a day that has
  two, and the days missing between the first and the last file."""
  by_day = {}
  for path in paths:
    by_day.setdefault(day_of_file(path, day_format), []).append(path)
  for day, files in sorted(by_day.items()):
    if len(files) > 1:
      raise IngestionError(
          f'{day} has {len(files)} log files: {", ".join(sorted(files))}; a day is read '
          f'once, from one file. Merge them into one file or remove the extra ones.')
  days = sorted(by_day)
  missing = [days[0] + datetime.timedelta(n) for n in range((days[-1] - days[0]).days + 1)
             if days[0] + datetime.timedelta(n) not in by_day]
  if missing:
    shown = ', '.join(map(str, missing[:10])) + (' ...' if len(missing) > 10 else '')
    raise IngestionError(
        f'the daily log files from {days[0]} to {days[-1]} leave out {len(missing)} '
        f'day(s): {shown}; add each missing day\'s file')
  return tuple(LogDay(day, by_day[day][0]) for day in days)


def check_days(summary: dict) -> None:
  """IngestionError naming every daily file that holds events of another day."""
  wrong = {d['file']: d for d in summary.get('log_days', ()) if d['other_day_events']}
  if wrong:
    details = '; '.join(f'{file}: {d["other_day_events"]:,} of {d["rows"]:,} rows are not '
                        f'of {d["day"]}' for file, d in sorted(wrong.items()))
    raise IngestionError(
        f'daily log files hold events of another day ({details}) in the time zone '
        f'{summary["timezone"]} (split.timezone). Move each event to the file of its day; '
        f'nothing was written to a release.')


def new_days(ingested: Sequence[Mapping], days: Sequence[LogDay],
             where: str) -> tuple[LogDay, ...]:
  """The days of `days` (log_days: in order, none missing) after those `ingested` (the
  manifest's data.log_days: day, file), in order. IngestionError names the file of a day
  ingested already from another file (a day twice), of a day before the last ingested one
  that was never ingested (out of order), and the days missing between the last ingested
  day and the first new one. A file ingested already, by the same name, is skipped."""
  if not ingested:
    raise IngestionError(
        f'{where} lists no daily log files (data.log_days): it was built from logs without '
        f'logs.day_format. Build a release from daily files first (make run with '
        f'logs.day_format in the dataset spec), then add days after it.')
  by_day = {datetime.date.fromisoformat(d['day']): d['file'] for d in ingested}
  last = max(by_day)
  new = []
  for day in days:
    if day.day in by_day:
      if os.path.basename(by_day[day.day]) != os.path.basename(day.path):
        raise IngestionError(
            f'{day.path}: {day.day} was ingested already, from {by_day[day.day]} ({where}); '
            f'a day is read once. Remove this file, or rebuild from every day (make run).')
    elif day.day < last:
      raise IngestionError(
          f'{day.path}: {day.day} is before {last}, the last day of {where}, and was never '
          f'ingested; days are ingested in order, each once. Remove this file, or rebuild '
          f'from every day (make run).')
    else:
      new.append(day)
  if new and new[0].day != last + datetime.timedelta(days=1):
    missing = (new[0].day - last).days - 1
    raise IngestionError(
        f'{new[0].path}: {new[0].day} does not follow {last}, the last day of {where}; '
        f'{missing} day(s) from {last + datetime.timedelta(days=1)} are missing. Add their '
        f'files first.')
  return tuple(new)
