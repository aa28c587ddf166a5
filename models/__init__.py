"""Model code: tf.Transform preprocessing, Keras layers, towers, teachers, training."""

import os

# tf.keras must be Keras 2 (tf_keras) for TensorFlow Recommenders; this has to happen
# before TensorFlow is first imported, so every package of the project sets it.
os.environ['TF_USE_LEGACY_KERAS'] = '1'
