"""Curated TFMD schemas (schemas/<dataset>/*.pbtxt): reading, writing, leaving features out.

A curated schema lists every feature the ingestion can write. A run that writes fewer
(a flag beyond the paper turned off, or a dataset spec reduced with
DatasetSpec.with_features) validates and trains with the schema without them.
"""

from typing import Sequence

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2


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
