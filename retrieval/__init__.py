"""The shared retrieval library: offline evaluation (queries, exact top-K, Recall@K per
scenario, popularity baselines, the blessing rule and its report), the ScaNN index and
the TFRS retrieval model. Used by the pipeline's components and by serving; it reads
models only through their exported SavedModels, never through models/."""

import core  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
