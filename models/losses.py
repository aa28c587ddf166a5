"""The student's loss: BCE on labels plus lambda * KL(p_teacher || p_student)."""

import tensorflow as tf


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


def distillation_loss(labels: tf.Tensor, student_logits: tf.Tensor,
                      teacher_logits: tf.Tensor, weight: float) -> dict[str, tf.Tensor]:
  """{'loss', 'task_loss', 'distillation_loss'}: batch means of BCE, KL and their sum."""
  task = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
      labels=tf.cast(labels, student_logits.dtype), logits=student_logits))
  kl = tf.reduce_mean(bernoulli_kl_from_logits(teacher_logits, student_logits))
  return {'loss': task + weight * kl, 'task_loss': task, 'distillation_loss': kl}
