"""The student's loss: BCE (or, beyond the paper, a sampled softmax) on labels plus
lambda * KL(p_teacher || p_student)."""

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


def sampled_softmax(labels: tf.Tensor, logits: tf.Tensor, groups: tf.Tensor,
                    sample_weight=None) -> tf.Tensor:
  """The (weighted) mean over positives of the softmax cross-entropy within each group.

  A training batch (models/data.py) groups each anchor with its negatives (`groups` [B]:
  features.USER_ROW, the anchor's row). For a positive row i of group g:

      loss_i = -z_i + log sum_{j in g, w_j > 0} exp(z_j)

  (rows of weight 0, accidental hits, leave the denominator), weighted by w_i. With the
  batch's logQ offsets in the logits (training_logits), this is the sampled softmax with
  logQ correction (Yi et al. 2019): the negatives' sampling distribution is divided out.
  Written here because tf.nn.sampled_softmax_loss draws its own negatives from a class
  vocabulary, while these negatives (and their point-in-time features) come with the batch.
  """
  weights = tf.ones_like(logits) if sample_weight is None else tf.cast(sample_weight,
                                                                       logits.dtype)
  groups = tf.cast(groups, tf.int32)
  num_groups = tf.reduce_max(groups) + 1
  masked = tf.where(weights > 0, logits, tf.fill(tf.shape(logits), logits.dtype.min))
  top = tf.stop_gradient(tf.math.unsorted_segment_max(masked, groups, num_groups))
  total = tf.math.unsorted_segment_sum(
      tf.where(weights > 0, tf.exp(masked - tf.gather(top, groups)), 0.0), groups, num_groups)
  log_normalizer = tf.gather(top + tf.math.log(total), groups)  # [B]
  positive = tf.cast(labels > 0, logits.dtype) * weights
  return tf.reduce_sum(positive * (log_normalizer - logits)) / tf.maximum(
      tf.reduce_sum(positive), 1e-9)


def distillation_loss(labels: tf.Tensor, student_logits: tf.Tensor,
                      teacher_logits: tf.Tensor, weight: float,
                      sample_weight=None, task=None) -> dict[str, tf.Tensor]:
  """{'loss', 'task_loss', 'distillation_loss'}: (weighted) batch means of the task loss
  (`task` if given, else BCE), KL and task + weight * KL."""
  if task is None:
    task = binary_cross_entropy(labels, student_logits, sample_weight)
  kl = _mean(bernoulli_kl_from_logits(teacher_logits, student_logits), sample_weight)
  return {'loss': task + weight * kl, 'task_loss': task, 'distillation_loss': kl}


def _mean(values: tf.Tensor, sample_weight=None) -> tf.Tensor:
  if sample_weight is None:
    return tf.reduce_mean(values)
  sample_weight = tf.cast(sample_weight, values.dtype)
  return tf.reduce_sum(values * sample_weight) / tf.reduce_sum(sample_weight)
