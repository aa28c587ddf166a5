"""Training: the Trainer's run_fn (teacher, then the distilled student; early stopping on
validation; the refit) and its callbacks, over models/ and retrieval/ (validation
recall)."""

import core  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
