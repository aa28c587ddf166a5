"""Curated TFMD schemas (schemas/<dataset>/*.pbtxt): reading, writing, leaving features out.

A curated schema lists every feature the ingestion can write. A run that writes fewer
(a flag beyond the paper turned off, or a dataset spec reduced with
DatasetSpec.with_features) validates and trains with the schema without them.
"""

from typing import Sequence

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from core import errors
from core import feature_names


def read(path: str) -> schema_pb2.Schema:
  with open(path, encoding='utf-8') as f:
    return text_format.Parse(f.read(), schema_pb2.Schema())


def write(schema: schema_pb2.Schema, path: str) -> None:
  with open(path, 'w', encoding='utf-8') as f:
    f.write(text_format.MessageToString(schema))


def without_features(schema: schema_pb2.Schema,
                     names: Sequence[str]) -> schema_pb2.Schema:
  """A copy of `schema` without the named features."""
  result = schema_pb2.Schema()
  result.CopyFrom(schema)
  kept = [feature for feature in result.feature if feature.name not in set(names)]
  del result.feature[:]
  result.feature.extend(kept)
  return result


def task_labels_left_out(schema: schema_pb2.Schema, task_names: Sequence[str],
                         source: str) -> tuple[str, ...]:
  """The curated schema's ranking-task labels (task_*) that the dataset spec does not name,
  which a run leaves out; an InputError when the spec names a task the schema lacks."""
  in_schema = [f.name for f in schema.feature
               if f.name.startswith(feature_names.TASK_PREFIX)]
  wanted = [feature_names.task_label(t) for t in task_names]
  missing = [name for name in wanted if name not in in_schema]
  if missing:
    raise errors.InputError(
        f'{source} has no feature {", ".join(missing)} for the ranking tasks of the dataset '
        f'spec (logs.tasks); add an INT feature with int_domain {{ min: 0 max: 1 }} for each, '
        f'or remove the task from the spec')
  return tuple(name for name in in_schema if name not in wanted)
