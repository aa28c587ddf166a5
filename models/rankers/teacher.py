"""A trained ranker as a distillation teacher: its click head's logit."""

from typing import Optional

from models import features
from models.rankers.base import MultiTaskRanker
from models.rankers.mdl import MDLRanker
from models.rankers.mmoe import MMoERanker
from models.rankers.mtmixatt import MTmixAttRanker
from models.rankers.rankmixer import RankMixerRanker
from models.rankers.shared_bottom import SharedBottomRanker
from models.teachers.base import RankingTeacher

CLICK = 'click'
RANKER_CLASSES = {cls.__name__: cls for cls in (SharedBottomRanker, MMoERanker,
                                                RankMixerRanker, MDLRanker, MTmixAttRanker)}


class RankerTeacher(RankingTeacher):
  """logit = ranker(features)[:, c]   [B],   c = the ranker's task `task`

  `task` defaults to 'click' when the ranker has it, else its first task. The teacher
  reads the ranker's features (RankingTeacher.feature_names: the same joint user, item
  and scenario features), so a ranker trained on exposures can stand in for the DCN-v2
  teacher; as a RankingTeacher it also trains as one (single-logit BCE on [B] labels,
  the batch's logit offset taken off in the loss), which trains the ranker's shared
  layers and its chosen head only. Its config holds the ranker's class and config.

  `distillation.teacher` naming a ranker (models/build.build_teacher) builds one with the
  ranker section's sizes and the single task 'click'.
  """

  def __init__(self, feature_space: features.FeatureSpace, ranker: MultiTaskRanker,
               task: Optional[str] = None, **kwargs):
    super().__init__(feature_space, **kwargs)
    if isinstance(ranker, dict):  # from get_config
      config = dict(ranker['config'])
      config['feature_space'] = feature_space.to_json()
      ranker = RANKER_CLASSES[ranker['class_name']].from_config(config)
    if ranker.feature_space != feature_space:
      raise ValueError('the ranker was built for another feature space')
    self.ranker = ranker
    self.task = task or (CLICK if CLICK in ranker.tasks else ranker.tasks[0])
    self.head = ranker.task_index(self.task)

  def call(self, inputs, training=None):
    return self.ranker(inputs, training=training)[:, self.head]  # [B]

  def get_config(self):
    ranker = self.ranker.get_config()
    del ranker['feature_space']  # the teacher's own
    return {'name': self.name, 'feature_space': self.feature_space.to_json(),
            'ranker': {'class_name': type(self.ranker).__name__, 'config': ranker},
            'task': self.task}
