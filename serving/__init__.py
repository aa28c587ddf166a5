"""Serving a release: a query library, a CLI (`python -m serving`) and an HTTP service."""

import core  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
