"""Artifact types of the project's custom components (beside TFX's standard ones)."""

import os

from tfx.types import artifact
from tfx.types import standard_artifacts
from tfx.utils import io_utils

from core import layout


class ScenarioMapping(artifact.Artifact):
  """Raw scenario value -> scenario index (scenario_mapping.json); see scenario_mapping.py."""
  TYPE_NAME = 'dsmoe.ScenarioMapping'


class IngestionReport(artifact.Artifact):
  """What the ingestion read, kept, dropped and defaulted (summary.json, summary.txt)."""
  TYPE_NAME = 'dsmoe.IngestionReport'


class TeacherModel(artifact.Artifact):
  """A trained, frozen-able teacher: weights, its config, and a raw-feature SavedModel."""
  TYPE_NAME = 'dsmoe.TeacherModel'


class RetrievalIndex(artifact.Artifact):
  """A ScaNN index of the item corpus, its item ids and embeddings, a TFRS ScaNN
  retrieval SavedModel, and index_manifest.json (parameters, model fingerprint, recall)."""
  TYPE_NAME = 'dsmoe.RetrievalIndex'


class ModelComparison(artifact.Artifact):
  """A model against the previous blessed one on the same test queries (comparison.json,
  summary.txt), with the regressions that stop a release."""
  TYPE_NAME = 'dsmoe.ModelComparison'


class RankerModel(standard_artifacts.Model):
  """A trained ranker: a SavedModel from raw features (one probability per task) with
  feature_space.json, tasks.json and training_summary.json, under Format-Serving. A Model
  for TFX's LatestBlessedModelStrategy, of its own type so that the retrieval model's
  resolver never picks a ranker."""
  TYPE_NAME = 'dsmoe.RankerModel'


class RankerBlessing(standard_artifacts.ModelBlessing):
  """The RankingEvaluator's verdict on a ranker (custom property blessed = 1 or 0,
  current_model_id): a ModelBlessing of its own type, apart from the retrieval model's."""
  TYPE_NAME = 'dsmoe.RankerBlessing'


def write_blessing(verdict: standard_artifacts.ModelBlessing, blessed: bool,
                   model: artifact.Artifact) -> None:
  """An evaluator's verdict on `model` as TFX's LatestBlessedModelStrategy reads it: custom
  properties blessed and current_model_id, and the BLESSED or NOT_BLESSED marker file."""
  verdict.set_int_custom_property('blessed', int(blessed))
  verdict.set_int_custom_property('current_model_id', model.id)
  verdict.set_string_custom_property('current_model', model.uri)
  io_utils.write_string_file(os.path.join(
      verdict.uri, layout.BLESSED_FILE if blessed else layout.NOT_BLESSED_FILE), '')
