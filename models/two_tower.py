"""The student: two towers scored by a dot product, trained with BCE and distillation."""

from typing import Optional

import tensorflow as tf

from core import feature_names as fnames
from models import features
from models import losses
from models.teachers import RankingTeacher
from models.towers.base import ItemTower
from models.towers.base import UserTower

USER_ROW_KEY = features.USER_ROW  # (_loss_terms' argument `features` hides the module)


class TwoTowerModel(tf.keras.Model):
  """score = <u, v>, p_student = sigmoid(score)   (section 3.4 of the DSMOE paper).

  Loss: BCE(label, p_student) (or, with loss='sampled_softmax', beyond the paper, the
  softmax over each anchor and its negatives: losses.sampled_softmax), plus weight *
  KL(p_teacher || p_student) when a teacher is given; batches may carry per-example loss weights (features, labels, weights) and a
  logit offset both logits lose in the loss (losses.LOGIT_OFFSET). The
  teacher is frozen (not trainable, run in inference mode); only the towers learn, and only
  the towers are exported and served.
  """

  def __init__(self, user_tower: UserTower, item_tower: ItemTower,
               teacher: Optional[RankingTeacher] = None, distillation_weight: float = 1.0,
               loss: str = 'bce', **kwargs):
    super().__init__(**kwargs)
    self.loss_name = loss
    self.user_tower = user_tower
    self.item_tower = item_tower
    self.teacher = teacher
    if teacher is not None:
      teacher.trainable = False
    self.distillation_weight = distillation_weight
    self._trackers = {name: tf.keras.metrics.Mean(name=name) for name in (
        'loss', 'task_loss', 'distillation_loss')}
    self._auc = tf.keras.metrics.AUC(from_logits=True, name='auc')

  @property
  def distills(self) -> bool:
    return self.teacher is not None and self.distillation_weight > 0

  @property
  def metrics(self):
    trackers = [self._trackers['loss'], self._trackers['task_loss']]
    if self.distills:
      trackers.append(self._trackers['distillation_loss'])
    return trackers + [self._auc]

  def call(self, inputs, training=None):
    v = self.item_tower(inputs, training=training)  # [B, dim]
    return tf.reduce_sum(self._user_embeddings(inputs, training) * v, axis=1)  # logits [B]

  def _user_embeddings(self, inputs, training) -> tf.Tensor:
    """u [B, dim] of every row.

    A training batch (models/data.py) repeats each anchor's user features on the rows of
    its negatives and says which anchor a row repeats (features.USER_ROW, anchors first):
    the user tower then runs on the anchors only and each row takes its anchor's
    embedding, the same values and gradients at a fraction of the cost. Batch statistics
    (DSBN) are unchanged too: every anchor is repeated equally often, so the anchors have
    the mean and variance of the full batch.
    """
    rows = inputs.get(features.USER_ROW) if isinstance(inputs, dict) else None
    if rows is None:
      return self.user_tower(inputs, training=training)
    anchors = tf.reduce_max(rows) + 1
    user_inputs = {name: inputs[name][:anchors] for name in self.user_tower.feature_names}
    tf.debugging.assert_equal(  # a batch re-cut after USER_ROW was set would fail here
        tf.gather(user_inputs[fnames.USER_ID], rows), inputs[fnames.USER_ID],
        message=f'{features.USER_ROW} does not match the batch: re-batching a training '
                f'batch must drop it')
    return tf.gather(self.user_tower(user_inputs, training=training), rows)  # [B, dim]

  def _loss_terms(self, features, labels, sample_weight,
                  training: bool) -> tuple[dict, tf.Tensor]:
    logits = self(features, training=training)
    student = losses.training_logits(logits, features)
    if self.loss_name == 'sampled_softmax':
      groups = features.get(USER_ROW_KEY) if isinstance(features, dict) else None
      if groups is None:
        raise ValueError(f'the sampled softmax needs training batches that group each '
                         f'anchor with its negatives ({USER_ROW_KEY}, models/data.py)')
      task = losses.sampled_softmax(labels, student, groups, sample_weight)
    else:
      task = losses.binary_cross_entropy(labels, student, sample_weight)
    if self.distills:
      teacher_logits = tf.stop_gradient(self.teacher(features, training=False))
      terms = losses.distillation_loss(labels, student,
                                       losses.training_logits(teacher_logits, features),
                                       self.distillation_weight, sample_weight, task=task)
    else:
      terms = {'loss': task, 'task_loss': task}
    if self.losses:
      terms['loss'] = terms['loss'] + tf.add_n(self.losses)
    return terms, logits

  def _update_metrics(self, terms, labels, logits) -> dict:
    for name, value in terms.items():
      self._trackers[name].update_state(value)
    self._auc.update_state(labels, logits)
    return {m.name: m.result() for m in self.metrics}

  def train_step(self, data):
    features, labels, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
    with tf.GradientTape() as tape:
      terms, logits = self._loss_terms(features, labels, sample_weight, training=True)
    variables = self.trainable_variables  # the teacher's are not trainable
    self.optimizer.apply_gradients(zip(tape.gradient(terms['loss'], variables), variables))
    return self._update_metrics(terms, labels, logits)

  def test_step(self, data):
    features, labels, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
    terms, logits = self._loss_terms(features, labels, sample_weight, training=False)
    return self._update_metrics(terms, labels, logits)
