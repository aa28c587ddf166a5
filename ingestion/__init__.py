"""The ingestion library: raw interaction logs and feature tables -> tf.Example TFRecords.

A Beam pipeline (ingest.py) over parsed rows (records.py, csv_tables.py) that joins,
builds behaviour sequences, selects scenarios and splits by time, with a report of every
count (counts.py, report.py). The InteractionExampleGen component and the TFDS builder
both run it.
"""

import core  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
