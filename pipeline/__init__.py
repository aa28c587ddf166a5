"""The pipeline: which components run and how they are wired (pipeline.py), and the
runners (local_runner.py, kubeflow_v2_runner.py) with the end-of-run report."""

import core  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
