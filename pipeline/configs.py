"""The pipeline's configuration: one typed place for every knob.

Defaults run the bundled KuaiRand-Pure data. A run changes them with a YAML file
(`--config my.yaml`, same nesting as the dataclasses) and/or dotted overrides
(`--set ingestion.history_length=30`); unknown keys and wrong types are errors that name the
key. Dataset facts (columns, feature kinds, the time split) live in the dataset spec, not
here; see pipeline/dataset_spec.py.
"""

import dataclasses
import os
import typing
from typing import Any, Mapping, Sequence

import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ConfigError(ValueError):
  """A configuration value is invalid; the message names the key."""


@dataclasses.dataclass(frozen=True)
class IngestionConfig:
  """How raw logs become examples."""
  # The N scenario values with the most positives in the training split are served...
  num_scenarios: int = 4
  # ...unless this lists the raw scenario values to serve, in index order.
  scenarios: tuple[str, ...] = ()
  # Length L of the behaviour sequence (the user's last L clicks before the event).
  history_length: int = 20
  # Share of malformed rows per table that is dropped (and counted) instead of failing.
  max_bad_row_fraction: float = 0.0

  def __post_init__(self):
    if self.num_scenarios < 1:
      raise ConfigError('ingestion.num_scenarios must be at least 1')
    if self.history_length < 1:
      raise ConfigError('ingestion.history_length must be at least 1')
    if not 0.0 <= self.max_bad_row_fraction < 1.0:
      raise ConfigError('ingestion.max_bad_row_fraction must be in [0, 1)')
    if len(set(self.scenarios)) != len(self.scenarios):
      raise ConfigError('ingestion.scenarios lists a value twice')


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Everything a pipeline run needs; paths are relative to the repository root."""
  pipeline_name: str = 'dsmoe-kuairand-pure'  # KFP allows [a-z0-9-]
  # Where the repository is when components run: empty for this checkout; the container
  # image's /pipeline for Kubeflow (see pipeline/kubeflow_v2_runner.py and Dockerfile).
  runtime_root: str = ''
  data_dir: str = 'data/kuairand_pure'
  dataset_spec: str = 'schemas/kuairand_pure/dataset_spec.yaml'
  events_schema: str = 'schemas/kuairand_pure/events_schema.pbtxt'
  item_corpus_schema: str = 'schemas/kuairand_pure/item_corpus_schema.pbtxt'
  output_dir: str = 'outputs'
  enable_cache: bool = True
  # FnApiRunner: Beam's in-process batch runner. The default DirectRunner would first try
  # to download the Prism runner binary; nothing may download at run time.
  beam_pipeline_args: tuple[str, ...] = ('--runner=FnApiRunner',)
  ingestion: IngestionConfig = IngestionConfig()

  def path(self, relative: str) -> str:
    """A path as components see it at run time (relative: from the repository root)."""
    if '://' in relative or os.path.isabs(relative):
      return relative
    return os.path.join(self.runtime_root or REPO_ROOT, relative)

  def local_path(self, relative: str) -> str:
    """A path in this checkout, for files read while the pipeline is being defined."""
    if '://' in relative or os.path.isabs(relative):
      return relative
    return os.path.join(REPO_ROOT, relative)

  @property
  def pipeline_root(self) -> str:
    return os.path.join(self.path(self.output_dir), 'pipeline_root', self.pipeline_name)

  @property
  def metadata_path(self) -> str:
    return os.path.join(self.path(self.output_dir), 'metadata', self.pipeline_name,
                        'metadata.db')


def load_config(yaml_path: str = '', overrides: Sequence[str] = ()) -> PipelineConfig:
  """Defaults, then the YAML file, then `key.sub=value` overrides."""
  raw: dict = {}
  if yaml_path:
    try:
      with open(yaml_path, encoding='utf-8') as f:
        raw = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as e:
      raise ConfigError(f'cannot read the config file {yaml_path!r}: {e}') from None
    if not isinstance(raw, dict):
      raise ConfigError(f'{yaml_path}: the config must be a mapping')
  for override in overrides:
    key, sep, value = override.partition('=')
    if not sep:
      raise ConfigError(f'override {override!r} must look like key.sub=value')
    node = raw
    *parents, leaf = key.strip().split('.')
    for part in parents:
      node = node.setdefault(part, {})
      if not isinstance(node, dict):
        raise ConfigError(f'override {override!r}: {part!r} is not a section')
    node[leaf] = yaml.safe_load(value)
  return from_dict(PipelineConfig, raw)


def from_dict(cls, raw: Mapping[str, Any], prefix: str = ''):
  """A config dataclass from a (YAML- or JSON-shaped) mapping, with type checks."""
  fields = {f.name: f for f in dataclasses.fields(cls)}
  hints = typing.get_type_hints(cls)
  kwargs = {}
  for key, value in raw.items():
    name = f'{prefix}{key}'
    if key not in fields:
      raise ConfigError(f'unknown config key {name!r}; known keys: '
                        f'{", ".join(prefix + k for k in fields)}')
    kwargs[key] = _coerce(hints[key], value, name)
  try:
    return cls(**kwargs)
  except TypeError as e:
    raise ConfigError(f'{prefix or "config"}: {e}') from None


def _coerce(hint, value, name: str):
  if dataclasses.is_dataclass(hint):
    if not isinstance(value, dict):
      raise ConfigError(f'{name} must be a mapping')
    return from_dict(hint, value, name + '.')
  origin = typing.get_origin(hint)
  if origin is tuple:
    if not isinstance(value, (list, tuple)):
      raise ConfigError(f'{name} must be a list')
    item_type = typing.get_args(hint)[0]
    return tuple(_coerce(item_type, v, f'{name}[{i}]') for i, v in enumerate(value))
  if hint is bool:
    if not isinstance(value, bool):
      raise ConfigError(f'{name} must be true or false, got {value!r}')
    return value
  if hint is float and isinstance(value, int) and not isinstance(value, bool):
    return float(value)
  if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
    return str(value)
  if not isinstance(value, hint) or isinstance(value, bool) and hint is not bool:
    raise ConfigError(f'{name} must be of type {hint.__name__}, got {value!r}')
  return value
