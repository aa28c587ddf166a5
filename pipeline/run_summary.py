"""What a finished local run prints: each component's state and wall time, and reports.

Read from ML Metadata after LocalDagRunner returns, so it shows cached components too.
"""

import os
from typing import Optional

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
import tensorflow as tf

from core import layout

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


def format_component_times(rows: list[tuple[str, str, float]]) -> str:
  lines = [f'  {"component":<32} {"state":<7} {"seconds":>8}']
  lines += [f'  {name:<32} {state:<7} {seconds:>8.1f}' for name, state, seconds in rows]
  return '\n'.join(lines)


def node_outputs(store: metadata_store.MetadataStore, node: str) -> dict:
  """{output key: artifact} of a component's execution in the latest pipeline run (ran or
  cached); {} when the component did not run (e.g. skipped by a condition)."""
  runs = store.get_contexts_by_type('pipeline_run')
  if not runs:
    return {}
  latest = max(runs, key=lambda c: c.create_time_since_epoch)
  for execution in store.get_executions_by_context(latest.id):
    nodes = [c.name for c in store.get_contexts_by_execution(execution.id)
             if store.get_context_types_by_id([c.type_id])[0].name == 'node']
    if nodes and nodes[0].split('.', 1)[-1] == node:
      events = [e for e in store.get_events_by_execution_ids([execution.id])
                if e.type == metadata_store_pb2.Event.OUTPUT]
      found = store.get_artifacts_by_id([e.artifact_id for e in events])
      by_id = {a.id: a for a in found}
      return {e.path.steps[0].key: by_id[e.artifact_id] for e in events
              if e.artifact_id in by_id}
  return {}


def output_file(store: metadata_store.MetadataStore, node: str, key: str,
                *path: str) -> Optional[str]:
  """A file inside a component's output artifact of the latest run, if it exists."""
  artifact = node_outputs(store, node).get(key)
  if artifact is None:
    return None
  full = os.path.join(artifact.uri, *path)
  return full if tf.io.gfile.exists(full) else None


def training_lines(gate_summary: Optional[dict], refit_summary: Optional[dict],
                   ranker_summary: Optional[dict] = None,
                   ranker_refit_summary: Optional[dict] = None) -> str:
  """The epochs each phase ran and kept (early stopping), what the refit trained, and the
  ranker's epochs."""
  lines = []
  if gate_summary:
    for phase in ('teacher', 'student'):
      part = gate_summary.get(phase)
      if not part:
        continue
      monitor = part.get('monitor') or {}
      best = (f', validation {monitor["metric"]} {monitor["best"]:.4f}'
              if monitor.get('best') is not None else '')
      lines.append(f'  {phase}: kept epoch {part["epoch_kept"]} of {part["epochs_run"]} run '
                   f'(at most {part["epochs_max"]}){best}')
    weights = gate_summary.get(layout.POPULARITY_WEIGHTS_KEY)
    if weights:
      lines.append('  popularity weight tau_s fitted on validation (served with the model): ' +
                   ', '.join(f'{s} {tau:g}' for s, tau in weights.items()))
  if refit_summary:
    epochs = ', '.join(f'{phase} {refit_summary[phase]["epoch_kept"]} epochs'
                       for phase in ('teacher', 'student') if refit_summary.get(phase))
    lines.append(f'  refit on every day for the release: {epochs}, '
                 f'{refit_summary["anchors"]:,} anchors')
  if ranker_summary:
    monitor = ranker_summary['monitor']
    lines.append(f'  ranker {ranker_summary["model"]}: kept epoch '
                 f'{ranker_summary["epoch_kept"]} of {ranker_summary["epochs_run"]} run (at '
                 f'most {ranker_summary["epochs_max"]}), validation {monitor["metric"]} '
                 f'{monitor["best"]:.4f}, {ranker_summary["train_examples"]:,} exposures')
  if ranker_refit_summary:
    lines.append(f'  ranker refit on every day for the release: '
                 f'{ranker_refit_summary["epoch_kept"]} epochs, '
                 f'{ranker_refit_summary["train_examples"]:,} exposures')
  return 'Training (early stopping on the validation window)\n' + '\n'.join(lines)


def release_line(store: metadata_store.MetadataStore, releases_dir: str) -> str:
  """Where the release of the latest run is, or why there is none."""
  pushed = node_outputs(store, 'ReleasePusher').get('pushed_model')
  properties = pushed.custom_properties if pushed is not None else {}
  if pushed is not None and properties['pushed'].int_value:
    return (f'release: {properties["pushed_destination"].string_value}\n'
            f'         ({os.path.join(releases_dir, "latest")} points at the newest; it '
            f'serves the refit on every day, users and items as of the last event)')
  if 'refusal' in properties:
    return f'no release: {properties["refusal"].string_value}'
  return ('no release: the model was not blessed (see NOT BLESSED above). To publish it '
          'anyway, accept\n            the loss explicitly: --set evaluation.worse_margin=1 '
          '--set evaluation.overall_min_gain=-1')
