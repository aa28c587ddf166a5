"""The ground floor: contracts every other package shares (see import_rules.yaml).

config (the typed pipeline config), dataset_spec (the YAML dataset spec), feature_names
(the tf.Example contract), scenario_mapping, layout (every artifact file, directory,
signature and custom_config name, and the fingerprints), examples (TFRecord and
tf.Example reading), release_format (the release directory), errors.

Importing any package of the project imports this one first, which sets
TF_USE_LEGACY_KERAS here, once: tf.keras must be Keras 2 (tf_keras) for TensorFlow
Recommenders, and the variable only counts before TensorFlow is first imported.
"""

import os

os.environ['TF_USE_LEGACY_KERAS'] = '1'
