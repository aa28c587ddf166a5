"""The mapping from raw scenario values to scenario indices.

The ingestion chooses the scenarios (by default the N values with the most training
positives) and writes this mapping as an artifact; training, evaluation and serving all read
the same file, so index 0 means the same scenario everywhere.
"""

import dataclasses
import json
import os

import tensorflow as tf

from core import layout


@dataclasses.dataclass(frozen=True)
class Scenario:
  value: str  # the raw value in the logs, e.g. tab '1'
  index: int
  train_events: int
  train_positives: int


@dataclasses.dataclass(frozen=True)
class ScenarioMapping:
  scenarios: tuple[Scenario, ...]
  selected_by: str  # how the scenarios were chosen, for people reading the file

  @property
  def values(self) -> tuple[str, ...]:
    return tuple(s.value for s in self.scenarios)

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2)

  @classmethod
  def from_json(cls, text: str) -> 'ScenarioMapping':
    raw = json.loads(text)
    return cls(tuple(Scenario(**s) for s in raw['scenarios']), raw['selected_by'])

  def save(self, directory: str) -> None:
    tf.io.gfile.makedirs(directory)
    with tf.io.gfile.GFile(os.path.join(directory, layout.SCENARIO_MAPPING_FILE), 'w') as f:
      f.write(self.to_json())

  @classmethod
  def load(cls, directory: str) -> 'ScenarioMapping':
    with tf.io.gfile.GFile(os.path.join(directory, layout.SCENARIO_MAPPING_FILE)) as f:
      return cls.from_json(f.read())
