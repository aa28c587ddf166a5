"""The shared ranking library: offline metrics of the rankers (AUC and GAUC per scenario
and task), the popularity baseline they stand next to, Poisson-bootstrap intervals with
paired differences between systems, and the Markdown report. numpy only: scores come in
as arrays, however a ranker produced them; it may use retrieval's bootstrap."""

import core  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
