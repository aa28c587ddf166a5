"""Benchmarks: scripts that print cost and speed figures (python -m benchmarks.NAME)."""

import core  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
