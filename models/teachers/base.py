"""The teacher interface: what distillation needs from a ranking model."""

import tensorflow as tf

from models import features
from models import losses


class RankingTeacher(tf.keras.Model):
  """An interaction-aware ranking model: joint user, item and scenario features -> logit.

  call(features, training) -> logits [B]; p_teacher = sigmoid(logits). The teacher sees
  the same features as the student's two towers together, so it can model user-item
  interactions the towers cannot. It is trained first (BCE on the student's own training
  data: clicks and random negatives), then frozen while the student learns from it; only
  the student is served. MDL or MTmixAtt-style teachers plug in by subclassing this.
  """

  def __init__(self, feature_space: features.FeatureSpace, **kwargs):
    super().__init__(**kwargs)
    self.feature_space = feature_space

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    config['feature_space'] = features.FeatureSpace.from_json(config['feature_space'])
    return cls(**config)

  def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None):
    """The compiled loss on the logits less the batch's losses.LOGIT_OFFSET, if any."""
    return super().compute_loss(x, y, losses.training_logits(y_pred, x), sample_weight)

  @property
  def feature_names(self) -> tuple[str, ...]:
    return (self.feature_space.user_tower_features +
            self.feature_space.item_tower_features)
