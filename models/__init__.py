"""Model code: tf.Transform preprocessing, Keras layers, towers, teachers, training, export."""

import core  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
