"""The student's loss: BCE on labels plus lambda * KL(p_teacher || p_student)."""

import tensorflow as tf

# A batch may carry, under this feature name, a per-example offset to subtract from the
# logits in the loss (the logQ correction of models/data.py); it is not a model input.
LOGIT_OFFSET = '__logit_offset'


def training_logits(logits: tf.Tensor, features: dict) -> tf.Tensor:
  """The logits the loss sees: minus the batch's LOGIT_OFFSET when it has one."""
  offset = features.get(LOGIT_OFFSET) if isinstance(features, dict) else None
  return logits if offset is None else logits - tf.cast(offset, logits.dtype)


def bernoulli_kl_from_logits(teacher_logits: tf.Tensor,
                             student_logits: tf.Tensor) -> tf.Tensor:
  """KL(Bernoulli(p_t) || Bernoulli(p_s)) per example, from logits, numerically stable.

      KL = p_t (log p_t - log p_s) + (1 - p_t) (log(1 - p_t) - log(1 - p_s))
  with log p = -softplus(-z) and log(1 - p) = -softplus(z).
  """
  p_t = tf.sigmoid(teacher_logits)
  log_p_t, log_q_t = -tf.nn.softplus(-teacher_logits), -tf.nn.softplus(teacher_logits)
  log_p_s, log_q_s = -tf.nn.softplus(-student_logits), -tf.nn.softplus(student_logits)
  return p_t * (log_p_t - log_p_s) + (1.0 - p_t) * (log_q_t - log_q_s)


def per_example_binary_cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
  """BCE from logits for each example [B]: a Keras loss that takes sample weights for
  models whose logits are [B] (Keras' BinaryCrossentropy averages the last axis)."""
  return tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(labels, logits.dtype),
                                                 logits=logits)


def binary_cross_entropy(labels: tf.Tensor, logits: tf.Tensor,
                         sample_weight=None) -> tf.Tensor:
  """The (weighted) batch mean of BCE from logits."""
  return _mean(tf.nn.sigmoid_cross_entropy_with_logits(
      labels=tf.cast(labels, logits.dtype), logits=logits), sample_weight)


def distillation_loss(labels: tf.Tensor, student_logits: tf.Tensor,
                      teacher_logits: tf.Tensor, weight: float,
                      sample_weight=None) -> dict[str, tf.Tensor]:
  """{'loss', 'task_loss', 'distillation_loss'}: (weighted) batch means of BCE, KL and
  BCE + weight * KL."""
  task = binary_cross_entropy(labels, student_logits, sample_weight)
  kl = _mean(bernoulli_kl_from_logits(teacher_logits, student_logits), sample_weight)
  return {'loss': task + weight * kl, 'task_loss': task, 'distillation_loss': kl}


def _mean(values: tf.Tensor, sample_weight=None) -> tf.Tensor:
  if sample_weight is None:
    return tf.reduce_mean(values)
  sample_weight = tf.cast(sample_weight, values.dtype)
  return tf.reduce_sum(values * sample_weight) / tf.reduce_sum(sample_weight)
