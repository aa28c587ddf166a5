"""Builds the configured student towers, teacher and two-tower model (pipeline/configs.py).

Every student shares the feature encoders and the item tower; only the user tower differs:

    dsmoe          SAP-MMOE user tower (use_sap, use_dsbn, num_experts K, rank R)
    mmoe           the same tower with use_sap=False and use_dsbn=False (plain MMOE)
    two_tower_dnn  MLP user tower (DSSM-style)
    adin, sass     the paper's baselines (models/towers/adin.py, sass.py)
"""

from typing import Optional

from models import features
from models.teachers import RankingTeacher
from models.teachers import TEACHERS
from models.towers.adin import ADINUserTower
from models.towers.base import ItemTower
from models.towers.base import UserTower
from models.towers.dnn import DNNUserTower
from models.towers.dsmoe import DSMOEUserTower
from models.towers.sass import SASSUserTower
from models.two_tower import TwoTowerModel
from pipeline import configs


def build_user_tower(config: configs.ModelConfig,
                     space: features.FeatureSpace) -> UserTower:
  common = dict(output_dim=config.output_dim, embedding_dim=config.embedding_dim,
                history_pooling=config.history_pooling,
                scenario_prior=config.scenario_popularity_prior, name='user_tower')
  if config.model in ('dsmoe', 'mmoe'):
    plain = config.model == 'mmoe'
    return DSMOEUserTower(space, num_experts=config.num_experts,
                          expert_units=config.expert_units, rank=config.rank,
                          use_sap=config.use_sap and not plain,
                          use_dsbn=config.use_dsbn and not plain, **common)
  tower = {'two_tower_dnn': DNNUserTower, 'adin': ADINUserTower,
           'sass': SASSUserTower}[config.model]
  return tower(space, hidden_units=config.hidden_units, **common)


def build_item_tower(config: configs.ModelConfig,
                     space: features.FeatureSpace) -> ItemTower:
  return ItemTower(space, config.output_dim, config.embedding_dim, config.hidden_units,
                   scenario_prior=config.scenario_popularity_prior, name='item_tower')


def build_teacher(config: configs.DistillationConfig, model: configs.ModelConfig,
                  space: features.FeatureSpace) -> RankingTeacher:
  return TEACHERS[config.teacher](
      space, embedding_dim=model.embedding_dim, cross_layers=config.cross_layers,
      projection_dim=config.cross_projection_dim, hidden_units=model.hidden_units,
      history_pooling=model.history_pooling, name='teacher')


def build_student(config: configs.ModelConfig, space: features.FeatureSpace,
                  teacher: Optional[RankingTeacher] = None,
                  distillation_weight: float = 1.0) -> TwoTowerModel:
  return TwoTowerModel(build_user_tower(config, space), build_item_tower(config, space),
                       teacher, distillation_weight, name='student')
