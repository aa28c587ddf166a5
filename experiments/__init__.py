"""Experiments on the bundled data: training variants scored by the Evaluator's code,
reusing a pipeline run's ingestion and Transform outputs (harness.py)."""

import core  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
