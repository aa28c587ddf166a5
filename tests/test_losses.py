"""The distillation loss: Bernoulli KL from logits, checked by hand."""

import math

import numpy as np
import tensorflow as tf

from models import losses


def logit(p):
  return math.log(p / (1 - p))


def test_kl_is_zero_when_student_equals_teacher():
  z = tf.constant([-3.0, -0.2, 0.0, 1.5, 8.0])
  np.testing.assert_allclose(losses.bernoulli_kl_from_logits(z, z).numpy(), 0.0, atol=1e-7)


def test_kl_matches_a_hand_computed_value():
  # KL(0.8 || 0.6) = 0.8 ln(0.8/0.6) + 0.2 ln(0.2/0.4) = 0.2301457 - 0.1386294 = 0.0915163
  kl = losses.bernoulli_kl_from_logits(tf.constant([logit(0.8)]), tf.constant([logit(0.6)]))
  np.testing.assert_allclose(kl.numpy(), [0.0915163], rtol=1e-5)
  # and it is not symmetric: KL(0.6 || 0.8) = 0.6 ln(0.6/0.8) + 0.4 ln(0.4/0.2) = 0.1046496
  kl_reverse = losses.bernoulli_kl_from_logits(tf.constant([logit(0.6)]),
                                               tf.constant([logit(0.8)]))
  np.testing.assert_allclose(kl_reverse.numpy(), [0.1046496], rtol=1e-5)


def test_kl_is_finite_for_confident_logits():
  kl = losses.bernoulli_kl_from_logits(tf.constant([40.0, -40.0]), tf.constant([-40.0, 40.0]))
  assert np.all(np.isfinite(kl.numpy())) and np.all(kl.numpy() > 30)


def test_distillation_loss_is_bce_plus_weighted_kl():
  labels = tf.constant([1.0, 0.0])
  student = tf.constant([logit(0.6), logit(0.3)])
  teacher = tf.constant([logit(0.8), logit(0.1)])
  terms = losses.distillation_loss(labels, student, teacher, weight=0.5)
  bce = -(math.log(0.6) + math.log(0.7)) / 2
  kl = (0.0915163 + (0.1 * math.log(0.1 / 0.3) + 0.9 * math.log(0.9 / 0.7))) / 2
  np.testing.assert_allclose(terms['task_loss'].numpy(), bce, rtol=1e-5)
  np.testing.assert_allclose(terms['distillation_loss'].numpy(), kl, rtol=1e-5)
  np.testing.assert_allclose(terms['loss'].numpy(), bce + 0.5 * kl, rtol=1e-5)


def test_sample_weights_weight_each_example():
  labels = tf.constant([1.0, 0.0, 1.0])
  student = tf.constant([logit(0.6), logit(0.3), logit(0.9)])
  teacher = tf.constant([logit(0.8), logit(0.1), logit(0.9)])
  weights = tf.constant([2.0, 1.0, 0.0])
  terms = losses.distillation_loss(labels, student, teacher, 1.0, weights)
  bce = (2 * -math.log(0.6) + 1 * -math.log(0.7)) / 3
  kl = (2 * 0.0915163 + (0.1 * math.log(0.1 / 0.3) + 0.9 * math.log(0.9 / 0.7))) / 3
  np.testing.assert_allclose(terms['task_loss'].numpy(), bce, rtol=1e-5)
  np.testing.assert_allclose(terms['distillation_loss'].numpy(), kl, rtol=1e-5)


class _Column(tf.keras.Model):
  """A stand-in tower or teacher: returns one input column, so logits are chosen by hand."""

  def __init__(self, key):
    super().__init__()
    self.key = key

  def call(self, inputs, training=None):
    return inputs[self.key]


def _distilled_terms(student_p, teacher_p, weight=0.5):
  """The TwoTowerModel's loss terms when its towers score `student_p` and its teacher
  `teacher_p` (probabilities), labels all 1."""
  from models.two_tower import TwoTowerModel  # pylint: disable=g-import-not-at-top
  model = TwoTowerModel(_Column('u'), _Column('v'), _Column('t'), distillation_weight=weight)
  model.compile(tf.keras.optimizers.SGD(0.0))
  n = len(student_p)
  inputs = {'u': np.array([[logit(p)] for p in student_p], np.float32),  # <u, v> = logit
            'v': np.ones((n, 1), np.float32),
            't': np.array([logit(p) for p in teacher_p], np.float32)}
  return model.evaluate(inputs, np.ones(n, np.float32), batch_size=n, verbose=0,
                        return_dict=True)


def test_two_tower_model_distils_kl_teacher_to_student_in_that_order():
  """KL(p_teacher || p_student): swapping the two changes the KL by the hand-computed
  KL(0.6 || 0.8) - KL(0.8 || 0.6) = 0.1046496 - 0.0915163."""
  right = _distilled_terms(student_p=[0.6], teacher_p=[0.8])
  swapped = _distilled_terms(student_p=[0.8], teacher_p=[0.6])
  np.testing.assert_allclose(right['distillation_loss'], 0.0915163, rtol=1e-4)
  np.testing.assert_allclose(swapped['distillation_loss'] - right['distillation_loss'],
                             0.1046496 - 0.0915163, rtol=1e-3)
  # The total is BCE + weight * KL: -ln 0.6 + 0.5 * 0.0915163.
  np.testing.assert_allclose(right['loss'], -math.log(0.6) + 0.5 * 0.0915163, rtol=1e-4)


def test_sampled_softmax_by_hand():
  # Two anchors (rows 0, 1) with two negatives each; row 4 is an accidental hit (weight 0)
  # and leaves anchor 1's denominator; anchor 1 weighs 2 (a scenario weight).
  logits = np.array([2.0, 0.5, 1.0, -1.0, 3.0, 0.0], np.float32)
  labels = np.array([1, 1, 0, 0, 0, 0], np.float32)
  groups = np.array([0, 1, 0, 0, 1, 1], np.int32)
  weights = np.array([1.0, 2.0, 1.0, 1.0, 0.0, 1.0], np.float32)
  first = np.log(np.exp(2.0) + np.exp(1.0) + np.exp(-1.0)) - 2.0
  second = np.log(np.exp(0.5) + np.exp(0.0)) - 0.5
  expected = (1.0 * first + 2.0 * second) / 3.0
  got = losses.sampled_softmax(tf.constant(labels), tf.constant(logits), tf.constant(groups),
                               tf.constant(weights))
  np.testing.assert_allclose(float(got), expected, rtol=1e-6)
