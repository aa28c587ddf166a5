"""Reading the raw CSV tables: file matching, header checks and rows with line numbers.

Files are opened through Beam's FileSystems, so local paths and gs:// both work; files
ending in .gz are decompressed. Rows keep their file and 1-based line
number, so every later error can point at the row.
"""

import csv
import gzip
import io
from typing import Iterator, Mapping, NamedTuple, Sequence

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from ingestion.errors import IngestionError
from ingestion.records import BadRow


class CsvRow(NamedTuple):
  file: str
  line: int
  cells: dict  # column -> raw string, for the columns the spec uses


def match_files(data_dir: str, pattern: str, table: str, spec_field: str) -> list[str]:
  """The files of one table, sorted; IngestionError when nothing matches."""
  full_pattern = FileSystems.join(data_dir, pattern)
  matches = FileSystems.match([full_pattern])[0].metadata_list
  files = sorted(m.path for m in matches)
  if not files:
    raise IngestionError(
        f'no file of the {table} table matches {full_pattern!r}; put the files there or '
        f'change {spec_field} in the dataset spec')
  return files


def check_header(path: str, table: str, required: Mapping[str, str]) -> None:
  """Fails fast, before any pipeline runs, on an empty file or a missing column.

  Args:
    path: the CSV file.
    table: 'logs', 'users' or 'items', for the message.
    required: column name -> the dataset-spec field that names it.
  """
  try:
    with _open_text(path) as text:
      reader = csv.reader(text)
      header = next(reader, None)
      first_row = next(reader, None)
  except (UnicodeDecodeError, csv.Error, OSError, EOFError) as e:
    raise IngestionError(f'{path}: cannot read the {table} table as UTF-8 CSV: {e}') from None
  if not header:
    raise IngestionError(f'{path}: the file is empty; the {table} table needs a header '
                         f'row and at least one data row')
  duplicated = sorted({c for c in header if header.count(c) > 1})
  if duplicated:
    raise IngestionError(f'{path}: the header names {", ".join(map(repr, duplicated))} '
                         f'more than once; column names must be unique')
  missing = [c for c in required if c not in header]
  if missing:
    details = ', '.join(f'{c!r} (named by {required[c]})' for c in missing)
    raise IngestionError(
        f'{path}: the {table} table has no column {details}. Its columns are: '
        f'{", ".join(header)}. Rename the column in the file or change the dataset spec.')
  if first_row is None:
    raise IngestionError(f'{path}: the file has a header but no data rows')


class ReadCsvRows(beam.DoFn):
  """File path -> CsvRow per data line; rows of the wrong width go to the 'bad' output."""

  BAD = 'bad'

  def __init__(self, table: str, columns: Sequence[str]):
    self._table = table
    self._columns = tuple(columns)

  def process(self, path: str) -> Iterator:
    with _open_text(path) as text:
      reader = csv.reader(text)
      header = next(reader)
      positions = [header.index(c) for c in self._columns]
      line = 1
      try:
        for values in reader:
          line = reader.line_num
          if not values:  # a blank line is not a row
            continue
          if len(values) != len(header):
            yield beam.pvalue.TaggedOutput(self.BAD, BadRow(
                self._table, path, line, '', ','.join(values),
                f'{len(values)} fields where the header has {len(header)}'))
            continue
          yield CsvRow(path, line, {c: values[i] for c, i in zip(self._columns, positions)})
      except (UnicodeDecodeError, csv.Error) as e:
        # The rest of the file cannot be read; report where it stopped.
        yield beam.pvalue.TaggedOutput(self.BAD, BadRow(
            self._table, path, line + 1, '', '', f'unreadable from here on ({e}); the file '
            'must be UTF-8 CSV'))


def _open_text(path: str) -> io.TextIOWrapper:
  raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
  if CompressionTypes.detect_compression_type(path) == CompressionTypes.GZIP:
    raw = gzip.GzipFile(fileobj=raw, mode='rb')
  return io.TextIOWrapper(raw, encoding='utf-8', newline='')
