"""The shared-bottom ranker (Caruana 1997; MDL's SharedBottom baseline): one MLP over all
fields shared by the tasks, then a tower per task."""

from typing import Sequence

from models import features
from models.rankers.base import mlp
from models.rankers.base import MultiTaskRanker
from models.rankers.base import TaskTowers
from models.towers.encoders import flatten_fields


class SharedBottomRanker(MultiTaskRanker):
  """logit_t = Tower_t(MLP(x)),  x = [user fields; pooled history; e_s; item fields].

      x      = flatten(all fields)            [B, (F_u + 2 + F_i) e]
      h      = MLP_bottom(x)                  [B, hidden_units[-1]]   Dense + ReLU layers
      logits = [Tower_t(h)]_t                 [B, T]   tower_units Dense + ReLU, then 1

  The scenario enters as a feature (e_s), as in MDL's comparison.
  """

  def __init__(self, feature_space: features.FeatureSpace, tasks: Sequence[str],
               embedding_dim: int = 16, hidden_units: Sequence[int] = (256, 128),
               tower_units: Sequence[int] = (64,), dropout: float = 0.0, **kwargs):
    super().__init__(feature_space, tasks, embedding_dim, **kwargs)
    self.hidden_units = tuple(hidden_units)
    self.tower_units = tuple(tower_units)
    self.dropout = dropout
    self.bottom = mlp(self.hidden_units, dropout, 'bottom')
    self.towers = TaskTowers(self.num_tasks, self.tower_units, dropout, name='towers')

  def call(self, inputs, training=None):
    x = flatten_fields(self.all_fields(self.encode(inputs)))  # [B, F e]
    return self.towers(self.bottom(x, training=training), training=training)  # [B, T]

  def get_config(self):
    config = super().get_config()
    config.update({'hidden_units': list(self.hidden_units),
                   'tower_units': list(self.tower_units), 'dropout': self.dropout})
    return config
