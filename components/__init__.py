"""Custom TFX components of the pipeline: each a component.py (the interface: inputs,
outputs, parameters) and an executor.py (the run), over the libraries in ingestion/,
models/ and retrieval/. Components do not import each other (artifacts.py aside)."""

import core  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
