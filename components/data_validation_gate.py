"""DataValidationGate: stops the pipeline when ExampleValidator found an anomaly.

TFX's ExampleValidator records anomalies but lets the pipeline go on. Everything downstream
of the data depends on this gate, which fails with one line per anomaly: the split, the
feature, what was expected and what was found, and where the expectation is written.
"""

import os

from tensorflow_metadata.proto.v0 import anomalies_pb2
import tensorflow as tf
from tfx.components.example_validator import executor as example_validator_executor
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.annotations import Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from core import errors


class DataValidationError(errors.InputError):
  """The data does not match its curated schema."""


def anomaly_messages(anomalies: anomalies_pb2.Anomalies, split: str) -> list[str]:
  """One line per anomaly: split, feature, expected and found."""
  messages = []
  for feature, info in sorted(anomalies.anomaly_info.items()):
    reasons = '; '.join(r.description or r.short_description for r in info.reason)
    messages.append(f"split '{split}', feature '{feature}': "
                    f'{reasons or info.description}')
  if anomalies.HasField('dataset_anomaly_info'):
    info = anomalies.dataset_anomaly_info
    reasons = '; '.join(r.description or r.short_description for r in info.reason)
    messages.append(f"split '{split}', whole dataset: {reasons or info.description}")
  return messages


def read_anomalies(artifact: standard_artifacts.ExampleAnomalies,
                   split: str) -> anomalies_pb2.Anomalies:
  path = os.path.join(artifact_utils.get_split_uri([artifact], split),
                      example_validator_executor.DEFAULT_FILE_NAME)
  with tf.io.gfile.GFile(path, 'rb') as f:
    return anomalies_pb2.Anomalies.FromString(f.read())


@component
def DataValidationGate(  # pylint: disable=invalid-name
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
    schema_file: Parameter[str]):
  """Raises DataValidationError if any split of `anomalies` has an anomaly."""
  messages = []
  for split in artifact_utils.decode_split_names(anomalies.split_names):
    messages += anomaly_messages(read_anomalies(anomalies, split), split)
  if messages:
    raise DataValidationError(
        'the data does not match its schema:\n  ' + '\n  '.join(messages) +
        f'\nFix the input data; if the data is right and the expectation is wrong, edit '
        f'{schema_file}.')
