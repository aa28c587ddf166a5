"""CuratedSchemaGen: TFX's ImportSchemaGen for a curated schema whose optional features a
run may turn off.

The curated schema lists every feature the ingestion can write, those beyond the paper
included (core/feature_names.py POPULARITY_FEATURES and ITEM_OUTCOMES, each behind an
ingestion flag). A run
that turns a flag off (the paper preset) does not write that feature; this component
leaves it out of the schema the run validates and trains with, so one curated file serves
every preset. `schema_sha256` (the file's content hash) is a parameter so that an edit of
the file reruns everything that depends on it (ImportSchemaGen keys its cache on the path).
"""

import hashlib
import os

from tfx.components.schema_gen import executor as schema_gen_executor
from tfx.dsl.component.experimental.annotations import OutputArtifact
from tfx.dsl.component.experimental.annotations import Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.utils import io_utils

from core import schemas


def file_sha256(path: str) -> str:
  with open(path, 'rb') as f:
    return hashlib.sha256(f.read()).hexdigest()


@component
def CuratedSchemaGen(  # pylint: disable=invalid-name
    schema: OutputArtifact[standard_artifacts.Schema],
    schema_file: Parameter[str],
    leave_out: Parameter[str],
    schema_sha256: Parameter[str]):
  """Copies the curated schema without the features named in `leave_out` (comma-separated)."""
  del schema_sha256  # only part of the cache key
  curated = schemas.without_features(io_utils.SchemaReader().read(schema_file),
                                     [name for name in leave_out.split(',') if name])
  io_utils.write_pbtxt_file(os.path.join(schema.uri, schema_gen_executor.DEFAULT_FILE_NAME),
                            curated)
