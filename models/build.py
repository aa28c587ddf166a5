"""The registry of students and teachers, and building them from the config.

Every student shares the feature encoders and the item tower; only the user tower differs:

    dsmoe          SAP-MMOE user tower (use_sap, use_dsbn, num_experts K, rank R)
    mmoe           the same tower with use_sap=False and use_dsbn=False (plain MMOE)
    two_tower_dnn  MLP user tower (DSSM-style)
    adin, sass     the paper's baselines (models/towers/adin.py, sass.py)
    ican, m5,      the paper's other baselines (models/towers/ican.py, m5.py, perscen.py);
    perscen        m5 takes num_experts (shared experts) and expert_units

`model.model` and `distillation.teacher` name entries of STUDENTS and TEACHERS; `check`
refuses other names with a ConfigError naming the key (the pipeline calls it when it is
defined, before anything runs).

The ranking stage's models (models/rankers/) are in RANKERS, named by `ranker.model`
(core/config.RANKERS): shared_bottom, mmoe, rankmixer, mdl, mtmixatt; `build_ranker`
builds one from the ranker section for the given tasks. Each of them can also teach:
`distillation.teacher` naming a ranker builds it, with the ranker section's sizes, as a
single-task ('click') ranker behind models/rankers/teacher.RankerTeacher, trained as the
DCN-v2 teacher is (BCE on the clicks and random negatives of the Trainer's batches).
"""

import dataclasses
from typing import Optional

from core import config as configs
from models import features
from models.rankers.base import MultiTaskRanker
from models.rankers.mdl import MDLRanker
from models.rankers.mmoe import MMoERanker
from models.rankers.mtmixatt import MTmixAttRanker
from models.rankers.rankmixer import RankMixerRanker
from models.rankers.shared_bottom import SharedBottomRanker
from models.rankers.teacher import CLICK
from models.rankers.teacher import RankerTeacher
from models.teachers import DCNv2Teacher
from models.teachers import RankingTeacher
from models.towers.adin import ADINUserTower
from models.towers.base import ItemTower
from models.towers.base import UserTower
from models.towers.dnn import DNNUserTower
from models.towers.dsmoe import DSMOEUserTower
from models.towers.ican import ICANUserTower
from models.towers.m5 import M5UserTower
from models.towers.perscen import PERSCENUserTower
from models.towers.sass import SASSUserTower
from models.two_tower import TwoTowerModel


def _dsmoe(config: configs.ModelConfig, space: features.FeatureSpace,
           common: dict) -> UserTower:
  return DSMOEUserTower(space, num_experts=config.num_experts,
                        expert_units=config.expert_units, rank=config.rank,
                        use_sap=config.use_sap, use_dsbn=config.use_dsbn, **common)


def _mmoe(config: configs.ModelConfig, space: features.FeatureSpace,
          common: dict) -> UserTower:
  return _dsmoe(dataclasses.replace(config, use_sap=False, use_dsbn=False), space, common)


def _m5(config: configs.ModelConfig, space: features.FeatureSpace,
        common: dict) -> UserTower:
  return M5UserTower(space, num_experts=config.num_experts,
                     expert_units=config.expert_units, **common)


def _mlp_user_tower(tower_class: type[UserTower]):
  def build(config: configs.ModelConfig, space: features.FeatureSpace,
            common: dict) -> UserTower:
    return tower_class(space, hidden_units=config.hidden_units, **common)
  return build


# model.model -> f(ModelConfig, FeatureSpace, arguments every user tower takes) -> tower.
STUDENTS = {
    'dsmoe': _dsmoe,
    'mmoe': _mmoe,
    'two_tower_dnn': _mlp_user_tower(DNNUserTower),
    'adin': _mlp_user_tower(ADINUserTower),
    'sass': _mlp_user_tower(SASSUserTower),
    'ican': _mlp_user_tower(ICANUserTower),
    'm5': _m5,
    'perscen': _mlp_user_tower(PERSCENUserTower),
}
# distillation.teacher -> RankingTeacher subclass.
TEACHERS = {'dcn_v2': DCNv2Teacher}


def check(model: configs.ModelConfig, distillation: configs.DistillationConfig) -> None:
  """ConfigError unless the config names a registered student and teacher."""
  _registered(STUDENTS, model.model, 'model.model')
  _registered(dict(TEACHERS, **RANKERS), distillation.teacher, 'distillation.teacher')


def _registered(registry: dict, name: str, key: str):
  if name not in registry:
    raise configs.ConfigError(f'{key} is {name!r}; use one of {", ".join(registry)}')
  return registry[name]


def build_user_tower(config: configs.ModelConfig,
                     space: features.FeatureSpace) -> UserTower:
  common = dict(output_dim=config.output_dim, embedding_dim=config.embedding_dim,
                history_pooling=config.history_pooling,
                scenario_prior=config.scenario_popularity_prior, name='user_tower')
  return _registered(STUDENTS, config.model, 'model.model')(config, space, common)


def build_item_tower(config: configs.ModelConfig,
                     space: features.FeatureSpace) -> ItemTower:
  return ItemTower(space, config.output_dim, config.embedding_dim, config.hidden_units,
                   scenario_prior=config.scenario_popularity_prior, name='item_tower')


def build_teacher(config: configs.DistillationConfig, model: configs.ModelConfig,
                  ranker: configs.RankerConfig,
                  space: features.FeatureSpace) -> RankingTeacher:
  """The teacher `config.teacher`: one of TEACHERS (sizes from the distillation and model
  sections) or of RANKERS (sizes from the ranker section, one 'click' task)."""
  if config.teacher in RANKERS:
    return RankerTeacher(space, build_ranker(dataclasses.replace(ranker, model=config.teacher),
                                             space, (CLICK,)), name='teacher')
  return _registered(TEACHERS, config.teacher, 'distillation.teacher')(
      space, embedding_dim=model.embedding_dim, cross_layers=config.cross_layers,
      projection_dim=config.cross_projection_dim, hidden_units=model.hidden_units,
      history_pooling=model.history_pooling, name='teacher')


def build_student(config: configs.ModelConfig, space: features.FeatureSpace,
                  teacher: Optional[RankingTeacher] = None,
                  distillation_weight: float = 1.0, loss: str = 'bce') -> TwoTowerModel:
  return TwoTowerModel(build_user_tower(config, space), build_item_tower(config, space),
                       teacher, distillation_weight, loss=loss, name='student')


def _ranker(ranker_class: type[MultiTaskRanker], *fields: str):
  """A builder passing the ranker section's `fields` (embedding_dim, dropout and
  history_attention always)."""
  def build(config: configs.RankerConfig, space: features.FeatureSpace,
            tasks) -> MultiTaskRanker:
    arguments = {name: getattr(config, name)
                 for name in ('embedding_dim', 'dropout', 'history_attention') + fields}
    return ranker_class(space, tuple(tasks), name='ranker', **arguments)
  return build


# ranker.model -> f(RankerConfig, FeatureSpace, tasks) -> MultiTaskRanker.
RANKERS = {
    'shared_bottom': _ranker(SharedBottomRanker, 'hidden_units', 'tower_units'),
    'mmoe': _ranker(MMoERanker, 'num_experts', 'hidden_units', 'tower_units'),
    'rankmixer': _ranker(RankMixerRanker, 'token_dim', 'num_layers', 'ffn_expansion',
                         'tower_units'),
    'mdl': _ranker(MDLRanker, 'token_dim', 'num_layers', 'num_heads', 'ffn_expansion',
                   'tower_units', 'use_task_tokens', 'use_scenario_tokens',
                   'use_global_token', 'use_domain_attention'),
    'mtmixatt': _ranker(MTmixAttRanker, 'num_tokens', 'token_dim', 'num_layers',
                        'num_dense_experts', 'num_experts', 'top_k', 'ffn_expansion',
                        'tower_units'),
}


def build_ranker(config: configs.RankerConfig, space: features.FeatureSpace,
                 tasks) -> MultiTaskRanker:
  """The ranker `config.model` with one logit per task, in `tasks` order."""
  return _registered(RANKERS, config.model, 'ranker.model')(config, space, tasks)
