"""What a finished local run prints: each component's state and wall time, and reports.

Read from ML Metadata after LocalDagRunner returns, so it shows cached components too.
"""

import os
from typing import Optional

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
import tensorflow as tf

_STATES = {metadata_store_pb2.Execution.COMPLETE: 'ran',
           metadata_store_pb2.Execution.CACHED: 'cached',
           metadata_store_pb2.Execution.FAILED: 'FAILED',
           metadata_store_pb2.Execution.RUNNING: 'running'}


def open_store(metadata_path: str) -> metadata_store.MetadataStore:
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = metadata_path
  config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
  return metadata_store.MetadataStore(config)


def component_times(store: metadata_store.MetadataStore) -> list[tuple[str, str, float]]:
  """(component id, state, seconds) for each execution of the latest pipeline run."""
  runs = store.get_contexts_by_type('pipeline_run')
  if not runs:
    return []
  latest = max(runs, key=lambda c: c.create_time_since_epoch)
  rows = []
  for execution in sorted(store.get_executions_by_context(latest.id),
                          key=lambda e: e.create_time_since_epoch):
    nodes = [c.name for c in store.get_contexts_by_execution(execution.id)
             if store.get_context_types_by_id([c.type_id])[0].name == 'node']
    name = nodes[0].split('.', 1)[-1] if nodes else str(execution.id)
    seconds = (execution.last_update_time_since_epoch -
               execution.create_time_since_epoch) / 1000
    rows.append((name, _STATES.get(execution.last_known_state, 'unknown'), seconds))
  return rows


def latest_artifact_file(store: metadata_store.MetadataStore, type_name: str,
                         file_name: str) -> Optional[str]:
  """The path of `file_name` inside the newest live artifact of a type, if any."""
  artifacts = [a for a in store.get_artifacts_by_type(type_name)
               if a.state == metadata_store_pb2.Artifact.LIVE]
  if not artifacts:
    return None
  newest = max(artifacts, key=lambda a: a.id)
  path = os.path.join(newest.uri, file_name)
  return path if tf.io.gfile.exists(path) else None


def format_component_times(rows: list[tuple[str, str, float]]) -> str:
  lines = [f'  {"component":<32} {"state":<7} {"seconds":>8}']
  lines += [f'  {name:<32} {state:<7} {seconds:>8.1f}' for name, state, seconds in rows]
  return '\n'.join(lines)


def release_line(store: metadata_store.MetadataStore, releases_dir: str) -> str:
  """Where the newest release of the latest run is, or why there is none."""
  pushed = [a for a in store.get_artifacts_by_type('PushedModel')
            if a.state == metadata_store_pb2.Artifact.LIVE]
  if not pushed:
    return 'no release: the pipeline did not reach the pusher'
  newest = max(pushed, key=lambda a: a.id)
  properties = newest.custom_properties
  if properties['pushed'].int_value:
    return (f'release: {properties["pushed_destination"].string_value}\n'
            f'         ({os.path.join(releases_dir, "latest")} points at the newest)')
  return ('no release: the model was not blessed (see NOT BLESSED above). To publish it '
          'anyway, accept\n            the loss explicitly, e.g. --set '
          'evaluation.bless_margin=-0.1 (only the Evaluator and the\n            Pusher '
          'run again)')
