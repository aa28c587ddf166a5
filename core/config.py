"""The pipeline's configuration: one typed place for every knob.

Defaults run the bundled KuaiRand-Pure data. A run changes them with a YAML file
(`--config my.yaml`, same nesting as the dataclasses) and/or dotted overrides
(`--set ingestion.history_length=30`); unknown keys and wrong types are errors that name the
key. Dataset facts (columns, feature kinds, the time split) live in the dataset spec, not
here; see core/dataset_spec.py.

Components receive sections of it as JSON (exec properties, or Transform's and the
Trainer's custom_config); `section_to_json` / `section_from_json` and `to_custom_config` /
`from_custom_config` are the one way there and back.
"""

import dataclasses
import json
import os
import typing
from typing import Any, Mapping, Optional, Sequence, Union

import tensorflow as tf
import yaml

from core import dataset_spec as ds
from core import errors
from core import feature_names
from core import layout
from core import release_format

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ConfigError(errors.InputError):
  """A configuration value is invalid; the message names the key."""


@dataclasses.dataclass(frozen=True)
class IngestionConfig:
  """How raw logs become examples."""
  # The N scenario values with the most positives in the training split are served...
  num_scenarios: int = 4
  # ...unless this lists the raw scenario values to serve, in index order.
  scenarios: tuple[str, ...] = ()
  # Length L of the behaviour sequence (the user's last L clicks before the event).
  history_length: int = 20
  # Share of malformed rows per table that is dropped (and counted) instead of failing.
  max_bad_row_fraction: float = 0.0
  # Beyond the paper: add the item feature `scenario_clicks`, the item's clicks in each
  # served scenario strictly before the example's moment (a training event's own, an
  # evaluation window's start), so a training click never counts itself.
  # It lets the scenario-independent item tower carry per-scenario popularity.
  scenario_click_features: bool = True
  # Beyond the paper: add the item feature `scenario_recent_clicks`, the same clicks
  # exponentially decayed with this half-life, as of the example (recent popularity).
  # On by default: with point-in-time counts, the all-time clicks grow with the log's age
  # (small in the first training days, largest when serving), the decayed ones do not.
  recent_click_features: bool = True
  recent_clicks_half_life_days: float = 1.0
  # Beyond the papers: add the item feature `item_outcomes`, the item's exposures and the
  # positives of each ranking task strictly before the example's moment (all scenarios),
  # for the rankers (ranker.item_outcome_features). Needs logs.tasks in the dataset spec.
  item_outcome_features: bool = True

  def __post_init__(self):
    if self.num_scenarios < 1:
      raise ConfigError('ingestion.num_scenarios must be at least 1')
    if self.history_length < 1:
      raise ConfigError('ingestion.history_length must be at least 1')
    if not 0.0 <= self.max_bad_row_fraction < 1.0:
      raise ConfigError('ingestion.max_bad_row_fraction must be in [0, 1)')
    if len(set(self.scenarios)) != len(self.scenarios):
      raise ConfigError('ingestion.scenarios lists a value twice')
    if self.recent_clicks_half_life_days <= 0:
      raise ConfigError('ingestion.recent_clicks_half_life_days must be > 0')

  @property
  def popularity_features(self) -> tuple[str, ...]:
    """The item popularity features (beyond the paper) this ingestion writes."""
    on = {feature_names.SCENARIO_CLICKS: self.scenario_click_features,
          feature_names.SCENARIO_RECENT_CLICKS: self.recent_click_features}
    return tuple(name for name in feature_names.POPULARITY_FEATURES if on[name])

  @property
  def derived_features_left_out(self) -> tuple[str, ...]:
    """The derived item features (beyond the paper) this ingestion does not write."""
    left_out = tuple(name for name in feature_names.POPULARITY_FEATURES
                     if name not in self.popularity_features)
    return left_out + (() if self.item_outcome_features else (feature_names.ITEM_OUTCOMES,))


@dataclasses.dataclass(frozen=True)
class TransformConfig:
  """Vocabularies and scaling (models/preprocessing.py)."""
  # Extra vocabulary ids for values not in the vocabulary (unknown users, items, categories
  # at serving time still get an embedding).
  num_oov_buckets: int = 1
  # User and item ids seen fewer times than this in training share the OOV embedding, so
  # that embedding is trained and serves unknown ids well.
  id_min_frequency: int = 2

  def __post_init__(self):
    if self.num_oov_buckets < 1:
      raise ConfigError('transform.num_oov_buckets must be at least 1')
    if self.id_min_frequency < 1:
      raise ConfigError('transform.id_min_frequency must be at least 1')


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """The student (two-tower) architecture. Defaults: the DSMOE paper."""
  # A name of models/build.py's STUDENTS: dsmoe (SAP-MMOE user tower), mmoe (the same with
  # use_sap and use_dsbn off: plain MMOE), two_tower_dnn (DSSM-style MLP towers), adin,
  # sass, ican, m5, perscen (the baselines of the paper).
  model: str = 'dsmoe'
  embedding_dim: int = 16  # every feature field
  output_dim: int = 64  # user and item embeddings (the index dimension)
  num_experts: int = 3  # K
  expert_units: int = 128
  rank: int = 4  # R of the SAP low-rank correction
  use_sap: bool = True  # ablation "w/o SAP": plain Dense layers instead
  use_dsbn: bool = True  # ablation "w/o DSBN": one shared BatchNormalization
  history_pooling: str = 'mean'  # 'mean' or 'max' over the behaviour sequence
  hidden_units: tuple[int, ...] = (256, 128)  # MLP towers (item tower, DNN baseline)
  # Beyond the paper: the item popularity features (written by the ingestion flags of the
  # same names) the item tower reads; () for none, the paper's item tower.
  popularity_features: tuple[str, ...] = (feature_names.SCENARIO_CLICKS,
                                          feature_names.SCENARIO_RECENT_CLICKS)
  # Beyond the paper: a learned per-scenario popularity term inside the dot product
  # (models/layers/scenario_popularity_prior.py) over popularity_features. Embeddings get
  # S entries per popularity feature more than output_dim.
  scenario_popularity_prior: bool = True
  # Beyond the paper: post-hoc logit adjustment. After training (on the kept epoch's
  # model), a weight tau_s per scenario of the item's log(1 + clicks in s), chosen from
  # popularity_weight_grid on the validation window's Recall@training.early_stopping_k, is
  # added inside the dot product (retrieval/popularity_weights.py). It sits in the prior, on scenario_clicks: with
  # scenario_popularity_prior off or without scenario_clicks there is nothing to fit
  # (`fits_popularity_weight`); the paper preset turns it off explicitly.
  fitted_popularity_weight: bool = True
  popularity_weight_grid: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0,
                                               4.0, 6.0, 10.0, 20.0, 50.0)

  def __post_init__(self):
    if self.fitted_popularity_weight and (
        not self.popularity_weight_grid or min(self.popularity_weight_grid) < 0):
      raise ConfigError('model.popularity_weight_grid must list values >= 0')
    unknown = set(self.popularity_features) - set(feature_names.POPULARITY_FEATURES)
    if unknown:
      raise ConfigError(f'model.popularity_features lists {", ".join(sorted(unknown))}; use '
                        f'some of {", ".join(feature_names.POPULARITY_FEATURES)}')
    if self.history_pooling not in ('mean', 'max'):
      raise ConfigError("model.history_pooling must be 'mean' or 'max'")
    for name in ('embedding_dim', 'output_dim', 'num_experts', 'expert_units', 'rank'):
      if getattr(self, name) < 1:
        raise ConfigError(f'model.{name} must be at least 1')

  @property
  def fits_popularity_weight(self) -> bool:
    """Whether the Trainer fits tau_s: the flag, and the prior over scenario_clicks."""
    return (self.fitted_popularity_weight and self.scenario_popularity_prior and
            feature_names.SCENARIO_CLICKS in self.popularity_features)


@dataclasses.dataclass(frozen=True)
class DistillationConfig:
  """The interaction-aware teacher and the KL term of the student's loss."""
  enabled: bool = True  # ablation "w/o distillation": BCE only, no teacher
  weight: float = 1.0  # lambda in BCE + lambda * KL(p_teacher || p_student)
  teacher: str = 'dcn_v2'  # one of models/build.py's TEACHERS, or a ranker (RANKERS)
  # At most this many epochs; early stopping on the validation AUC keeps the best one.
  teacher_epochs: int = 20
  # 'train': train a teacher in this run; 'latest': reuse the newest teacher an earlier
  # run of this pipeline trained (train one if there is none); or the path of a teacher
  # artifact directory to import. A reused teacher must match this run's vocabularies.
  teacher_source: str = 'train'
  cross_layers: int = 3  # DCN-v2 teacher
  cross_projection_dim: int = 64  # low-rank cross layers (0: full rank)

  def __post_init__(self):
    if self.weight < 0:
      raise ConfigError('distillation.weight must be >= 0')
    if self.teacher_epochs < 1:
      raise ConfigError('distillation.teacher_epochs must be >= 1')
    if not self.teacher_source:
      raise ConfigError("distillation.teacher_source must be 'train', 'latest' or a path")


RANKERS = ('shared_bottom', 'mmoe', 'rankmixer', 'mdl', 'mtmixatt')


@dataclasses.dataclass(frozen=True)
class RankerConfig:
  """The ranking stage (models/rankers/): a multi-scenario, multi-task model trained on
  exposures (shown items with the dataset spec's task labels, logs.tasks), one logit per
  task. Sizes are for 2 CPU cores; the architectures are those of the MDL paper (mdl,
  rankmixer, and its baselines shared_bottom and mmoe) and of MTmixAtt (mtmixatt)."""
  # Train, evaluate and release a ranker in the pipeline (RankerTrainer, RankingEvaluator;
  # needs logs.tasks in the dataset spec). Beyond the DSMOE paper: the ranking stage is
  # MDL's and MTmixAtt's; turning it off leaves the retrieval pipeline as it was.
  enabled: bool = True
  # One of RANKERS. MMoE (the MDL paper's multi-task baseline) since 2026-12-02, chosen on
  # the validation window's mean GAUC (README, Ranking stage); MDL keeps its flags.
  model: str = 'mmoe'
  embedding_dim: int = 16  # every feature field
  # d of every token (feature, scenario, task). Token mixing needs the token count to
  # divide d: 42 fits the 6 feature tokens and, in MDL without domain-aware attention on
  # KuaiRand, the 6 + 5 scenario + 3 task tokens mixed together (otherwise that ablation
  # falls back to adding the mean feature token; models/rankers/layers/mdl_block.py).
  token_dim: int = 42
  num_layers: int = 2  # L stacked blocks (RankMixer, MDL, MTmixAtt)
  num_heads: int = 3  # domain-aware attention heads (MDL)
  ffn_expansion: int = 2  # hidden width of every per-token FFN = expansion * token_dim
  hidden_units: tuple[int, ...] = (256, 128)  # shared bottom; MMoE experts
  tower_units: tuple[int, ...] = (64,)  # per-task towers (all but MDL's task tokens)
  num_experts: int = 4  # MMoE experts; MTmixAtt scenario-aware sparse experts
  num_dense_experts: int = 1  # MTmixAtt shared dense experts
  top_k: int = 1  # MTmixAtt experts routed per token
  num_tokens: int = 8  # MTmixAtt AutoToken tokens
  # MDL ablations (the paper's Table 3): task towers instead of task tokens, scenario
  # towers instead of scenario tokens, no global scenario token, RankMixer interaction
  # instead of domain-aware attention.
  use_task_tokens: bool = True
  use_scenario_tokens: bool = True
  use_global_token: bool = True
  use_domain_attention: bool = True
  dropout: float = 0.0
  # Beyond the papers (which mean-pool the behaviour sequence): the candidate attends over
  # the user's last clicks (DIN's activation unit, models/rankers/layers/
  # target_attention.py), a candidate-aware history beside the pooled one.
  history_attention: bool = True
  # Beyond the papers: the rankers read the item's outcomes as of each exposure
  # (`item_outcomes`: exposures and each task's positives before it, log(1 + n); written
  # by ingestion.item_outcome_features), so they can weigh an item's rate of each task
  # against the user's own taste.
  item_outcome_features: bool = True
  learning_rate: float = 1e-3
  batch_size: int = 1024
  # At most this many epochs; early stopping on the validation split's mean AUC over the
  # tasks keeps the best epoch (patience epochs without a gain stop it).
  epochs: int = 20
  patience: int = 3

  def __post_init__(self):
    if self.model not in RANKERS:
      raise ConfigError(f'ranker.model is {self.model!r}; use one of {", ".join(RANKERS)}')
    for name in ('embedding_dim', 'token_dim', 'num_layers', 'num_heads', 'ffn_expansion',
                 'num_experts', 'num_dense_experts', 'top_k', 'num_tokens', 'batch_size',
                 'epochs', 'patience'):
      if getattr(self, name) < 1:
        raise ConfigError(f'ranker.{name} must be at least 1')
    if self.token_dim % self.num_heads:
      raise ConfigError(f'ranker.token_dim ({self.token_dim}) must be a multiple of '
                        f'ranker.num_heads ({self.num_heads})')
    if self.top_k > self.num_experts:
      raise ConfigError(f'ranker.top_k ({self.top_k}) must be at most ranker.num_experts '
                        f'({self.num_experts})')
    if not 0 <= self.dropout < 1:
      raise ConfigError('ranker.dropout must be in [0, 1)')

  def architecture(self) -> dict:
    """The fields that shape the network, without which one it is and how it trains:
    what a ranker teacher (distillation.teacher naming a ranker) takes from this section."""
    return {k: v for k, v in dataclasses.asdict(self).items()
            if k not in ('enabled', 'model', 'learning_rate', 'batch_size', 'epochs',
                         'patience', 'item_outcome_features')}


@dataclasses.dataclass(frozen=True)
class VertexTrainingConfig:
  """Beyond the paper: the DistillationTrainers (the trainer and the refit) of a Kubeflow
  run as a Vertex AI CustomJob of `workers` replicas (TFX's Vertex training extension):
  workerpool0 the chief, workerpool1 the other workers, each a container of `image` (empty:
  the pipeline's image) running the trainer's executor; Vertex sets TF_CONFIG on each.
  More than one worker needs training.strategy: multi_worker_mirrored. See
  docs/training/multi_worker.md."""
  enabled: bool = False
  project: str = ''  # the GCP project of the CustomJob
  region: str = ''  # e.g. us-central1
  workers: int = 2  # replicas in all, the chief included
  machine_type: str = 'n1-standard-8'
  image: str = ''

  def __post_init__(self):
    if self.workers < 1:
      raise ConfigError('training.vertex.workers must be >= 1')
    if self.enabled and not (self.project and self.region):
      raise ConfigError('training.vertex.enabled needs training.vertex.project and '
                        'training.vertex.region')


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
  """Optimisation and sampling: the DSMOE paper's (Adam, weight decay 1e-6), except the
  schedule (learning rate, batch size, epochs), sized for `make run` on 2 CPU cores.

  The paper trains up to 50 epochs at lr 1e-4 and batch 4096 on a GPU. At batch 4096
  KuaiRand-Pure's training clicks make about 12 steps an epoch; at 1e-4 a DSMOE reached
  Recall@50 0.008 after 5 epochs (measured), so the learning rate is 1e-3. The batch is
  1024, chosen on the validation window (experiments/tail_study.py, seed 42): 4096 kept
  epoch 8 at validation Recall@50 0.192, 1024 (four times the steps) epoch 17 at 0.228,
  against 0.196 for per-scenario popularity. Set learning_rate: 1e-4, batch_size: 4096
  and epochs: 50 for the paper's schedule.

  `epochs` (and distillation.teacher_epochs) are maxima: training stops when the
  validation metric (the student's Recall@early_stopping_k over the full corpus, the
  teacher's AUC) has not improved for `patience` validations, and keeps the best epoch's
  weights. A refit (the model a release serves, trained on all days) trains exactly the
  epochs kept here.
  """
  learning_rate: float = 1e-3
  weight_decay: float = 1e-6
  batch_size: int = 1024  # anchors per step, each with its negatives
  epochs: int = 30
  # 5, not 3: on KuaiRand-Pure the student's validation recall climbs slowly for 15-20
  # epochs with plateaus of 2-3 epochs early on; at 3 one run stopped at epoch 2 (0.195)
  # where runs that went on kept epochs 14-17 (0.216-0.234).
  patience: int = 5
  early_stopping_k: int = 50
  # Random negatives: items drawn from the item corpus, label 0, per anchor event.
  negative_ratio: int = 4
  # Their distribution: probability proportional to (training clicks + 1) ** power;
  # 0 = uniform over the corpus, 1 = as popular as items are, 0.75 = word2vec's choice.
  negative_sampling_power: float = 0.0
  # Loss weight of a scenario's examples: (anchors of the largest scenario / anchors of
  # this one) ** power, scaled to average 1 over the anchors; 0 = every example alike,
  # 0.5 = lifts small scenarios by the square root of the imbalance.
  scenario_balance_power: float = 0.0
  # Also train on exposures without a click as negatives (the paper: clicks + random only).
  exposure_negatives: bool = False
  # A random negative that is the anchor's own clicked item is no negative: weight 0.
  remove_accidental_hits: bool = True
  # Beyond the paper: per anchor, this many items of other anchors of the batch as extra
  # negatives (they follow the click distribution, as in-batch softmax negatives do).
  in_batch_negatives: int = 0
  # Beyond the paper: subtract log(N q(i)) from the logits in the loss, q the negatives'
  # sampling distribution, so the score does not learn it (models/data.py).
  logq_correction: bool = False
  # The student's task loss: 'bce' (the paper: BCE on each anchor and negative) or, beyond
  # the paper, 'sampled_softmax' (softmax over each anchor and its negatives; with
  # logq_correction, the sampled softmax with logQ correction; models/losses.py).
  loss: str = 'bce'
  # Validation (student: Recall@early_stopping_k; teacher: AUC) every N epochs.
  validation_every_epochs: int = 1
  # tf.distribute: 'default' (one device), 'mirrored' (all local GPUs/CPUs) or
  # 'multi_worker_mirrored' (workers described by TF_CONFIG, each a Trainer process of its
  # own; docs/training/multi_worker.md). With a strategy, batch_size is the global batch.
  strategy: str = 'default'
  seed: int = 42
  vertex: VertexTrainingConfig = VertexTrainingConfig()

  def __post_init__(self):
    if self.batch_size < 1 or self.epochs < 1 or self.negative_ratio < 0:
      raise ConfigError('training.batch_size and training.epochs must be >= 1, '
                        'training.negative_ratio >= 0')
    if self.in_batch_negatives < 0 or self.negative_ratio + self.in_batch_negatives < 1:
      raise ConfigError('training.in_batch_negatives must be >= 0, and there must be a '
                        'negative (negative_ratio + in_batch_negatives >= 1)')
    if self.patience < 1 or self.early_stopping_k < 1:
      raise ConfigError('training.patience and training.early_stopping_k must be >= 1')
    if self.learning_rate <= 0:
      raise ConfigError('training.learning_rate must be > 0')
    if self.negative_sampling_power < 0 or self.scenario_balance_power < 0:
      raise ConfigError('training.negative_sampling_power and '
                        'training.scenario_balance_power must be >= 0')
    if self.validation_every_epochs < 1:
      raise ConfigError('training.validation_every_epochs must be >= 1')
    if self.loss not in ('bce', 'sampled_softmax'):
      raise ConfigError(f"training.loss is {self.loss!r}; use 'bce' or 'sampled_softmax'")
    if self.strategy not in ('default', 'mirrored', 'multi_worker_mirrored'):
      raise ConfigError("training.strategy must be 'default', 'mirrored' or "
                        "'multi_worker_mirrored'")
    if self.vertex.enabled and self.vertex.workers > 1 and \
        self.strategy != 'multi_worker_mirrored':
      raise ConfigError(f'training.vertex.workers is {self.vertex.workers}: several '
                        f'workers need training.strategy: multi_worker_mirrored (with '
                        f'{self.strategy!r} each would train alone)')


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
  """Recall@K per scenario over the full item corpus on the test split, and the blessing.

  The blessing compares the model with the most popular items per scenario by a paired
  Poisson bootstrap over the test queries (retrieval/bootstrap.py, TFMA's method): for
  each scenario and K, an interval of recall(model) - recall(popular per scenario).
  """
  recall_ks: tuple[int, ...] = (50, 100)  # about 1% of the corpus, as in the paper
  # Not blessed when, on any scenario and K, the model is significantly worse than
  # per-scenario popularity by more than this (the interval's upper bound below -margin)...
  worse_margin: float = 0.0
  # ...or when, for any K, the query-weighted overall difference is not significantly
  # above this (the interval's lower bound at or below it).
  overall_min_gain: float = 0.0
  confidence: float = 0.95
  bootstrap_resamples: int = 1000
  bootstrap_seed: int = 0
  # If set, also not blessed when recall drops by more than this against the previous
  # blessed model on any scenario and K.
  max_drop_vs_blessed: Optional[float] = None
  # Beyond the paper (a refresh sets it): also not released when, on any scenario and K,
  # the model is significantly worse than the previous blessed model (or the release a
  # refresh started from) by more than worse_margin: the upper bound of the paired
  # difference's interval below -worse_margin.
  significant_drop_vs_blessed: bool = False

  def __post_init__(self):
    if not self.recall_ks or min(self.recall_ks) < 1:
      raise ConfigError('evaluation.recall_ks must list positive integers')
    if not 0 < self.confidence < 1:
      raise ConfigError('evaluation.confidence must be in (0, 1)')
    if self.bootstrap_resamples < 2:
      raise ConfigError('evaluation.bootstrap_resamples must be at least 2')


@dataclasses.dataclass(frozen=True)
class RankingEvaluationConfig:
  """The ranker's AUC and GAUC per scenario and task on the test split, and its blessing.

  The baseline is popularity: each item's positive rate per task on the train and
  validation windows, smoothed toward the task's rate (ranking/evaluation.py). Intervals
  and differences come from a paired Poisson bootstrap over the test users. As for
  retrieval (EvaluationConfig), the ranker is not blessed when, on any scenario, task and
  metric, it is significantly worse than popularity by more than `worse_margin` (the
  difference's upper bound below -worse_margin), or when, for any task of `gain_tasks` and
  any metric, its overall difference is not significantly above `overall_min_gain` (the
  other tasks must not be significantly worse overall either); with
  `max_drop_vs_blessed` set, also when a scenario's AUC or GAUC falls more than that below
  the previous blessed ranker's.
  """
  metrics: tuple[str, ...] = ('auc', 'gauc')  # what the blessing tests (both reported)
  worse_margin: float = 0.0
  overall_min_gain: float = 0.0
  confidence: float = 0.95
  bootstrap_resamples: int = 200
  bootstrap_seed: int = 0
  popularity_prior: float = 10.0  # pseudo-exposures of the popularity baseline's smoothing
  max_drop_vs_blessed: Optional[float] = None
  # A scenario's GAUC over fewer users with both classes tests nothing: resampling a
  # handful of users gives a degenerate interval (one user: [x, x]).
  min_gauc_users: int = 20
  # The tasks whose overall AUC and GAUC must be significantly above popularity (empty: every
  # task of logs.tasks). KuaiRand's click and long_view: like (about 2% of exposures, a few
  # hundred test users with both classes) is held to "not significantly worse" only, as
  # every task is on every scenario; a gain there is too rare to show on two test days.
  gain_tasks: tuple[str, ...] = ('click', 'long_view')

  def __post_init__(self):
    if not self.metrics or set(self.metrics) - {'auc', 'gauc'}:
      raise ConfigError("ranking_evaluation.metrics must list 'auc' and/or 'gauc'")
    if not 0 < self.confidence < 1:
      raise ConfigError('ranking_evaluation.confidence must be in (0, 1)')
    if self.bootstrap_resamples < 2:
      raise ConfigError('ranking_evaluation.bootstrap_resamples must be at least 2')
    if self.popularity_prior < 0:
      raise ConfigError('ranking_evaluation.popularity_prior must be >= 0')

  def gain_tasks_of(self, tasks: Sequence[str]) -> tuple[str, ...]:
    """The tasks that must gain overall, among the dataset spec's `tasks`; ConfigError
    names a task the spec does not have."""
    unknown = [t for t in self.gain_tasks if t not in tasks]
    if unknown:
      raise ConfigError(f'ranking_evaluation.gain_tasks lists {", ".join(unknown)}, not a '
                        f'task of the dataset spec (logs.tasks: {", ".join(tasks)}); name '
                        f'some of those, or [] for every task')
    return tuple(self.gain_tasks) or tuple(tasks)


# The blend's name for the retrieval model's logit <u, v> beside the ranker's tasks.
BLEND_RETRIEVAL = 'retrieval'


@dataclasses.dataclass(frozen=True)
class RecommendConfig:
  """Two-stage recommendation: retrieve `candidates` items with the index, score them with
  the release's ranker, return the top-k by a blended score (serving/recommender.py), and
  the offline evaluation of the two stages (ranking/system.py).

  Beyond the papers (a flag): DSMOE retrieves, MDL and MTmixAtt rank one exposure at a
  time; the blend and the candidate count are this project's. The blended score of an
  item is sum over tasks of weight[task] * p(task) + retrieval_weight * <u, v>, the
  retrieval model's logit: `weights` for every scenario (tasks left out weigh 0; empty: 1
  on the first task of logs.tasks, the retrieval's click), `scenario_weights` overrides
  them for a raw scenario value (its key `retrieval` overrides retrieval_weight). A
  request may override weights within [0, max_weight]. The release carries these as
  recommend.json.

  Why the retrieval logit: the rankers learn p(task | the item was shown); which items a
  user clicks also depends on which items get shown, which retrieval (clicks against
  random items) learns. On KuaiRand-Pure's validation window, ranking the 200 candidates
  by p(click) alone drops Recall@50 from 25.4% (retrieval's order) to 11.1%; with the
  logit at weight 1 it is 26.2% (weights 0.1, 0.3, 1, 3: 22.8, 25.1, 26.2, 25.7;
  docs/serving/two_stage.md).
  """
  candidates: int = 200  # N retrieved and ranked per request (a request may ask for more)
  max_candidates: int = 1000
  weights: dict[str, float] = dataclasses.field(default_factory=dict)
  scenario_weights: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
  retrieval_weight: float = 1.0
  max_weight: float = 10.0
  # The offline system evaluation (the SystemEvaluator, on the test split): Recall@k and
  # NDCG@k of retrieval alone, retrieval + ranker, and the ranker over the whole corpus.
  # Scoring the whole corpus costs queries x corpus ranker calls: at most
  # `max_queries_per_scenario` queries per scenario are drawn (seeded), for every stage.
  evaluation_ks: tuple[int, ...] = (10, 50)
  max_queries_per_scenario: int = 200
  evaluation_seed: int = 0

  def __post_init__(self):
    if not 1 <= self.candidates <= self.max_candidates:
      raise ConfigError('recommend.candidates must be from 1 to recommend.max_candidates '
                        f'({self.max_candidates}), got {self.candidates}')
    if not self.max_weight > 0:
      raise ConfigError('recommend.max_weight must be > 0')
    if not 0 <= self.retrieval_weight <= self.max_weight:
      raise ConfigError(f'recommend.retrieval_weight must be from 0 to recommend.max_weight '
                        f'({self.max_weight}), got {self.retrieval_weight}')
    for name, weights in [('recommend.weights', self.weights)] + [
        (f'recommend.scenario_weights.{s}', w) for s, w in self.scenario_weights.items()]:
      for task, weight in weights.items():
        if not 0 <= weight <= self.max_weight:
          raise ConfigError(f'{name}.{task} must be from 0 to recommend.max_weight '
                            f'({self.max_weight}), got {weight}')
      if weights and not any(weights.values()):
        raise ConfigError(f'{name}: at least one task needs a weight above 0')
    if not self.evaluation_ks or min(self.evaluation_ks) < 1:
      raise ConfigError('recommend.evaluation_ks must be positive integers')
    if max(self.evaluation_ks) > self.candidates:
      raise ConfigError(f'recommend.evaluation_ks ({max(self.evaluation_ks)}) cannot exceed '
                        f'recommend.candidates ({self.candidates})')
    if self.max_queries_per_scenario < 1:
      raise ConfigError('recommend.max_queries_per_scenario must be >= 1')

  def scenario_blend(self, tasks: Sequence[str]) -> dict[str, dict[str, float]]:
    """{'default': {task: weight, 'retrieval': weight}, scenario: {...}} over every task
    of `tasks` and the retrieval logit (BLEND_RETRIEVAL); ConfigError names a weight of a
    task the dataset spec does not have."""
    if not tasks:
      raise ConfigError('recommend needs tasks: the dataset spec has no logs.tasks')
    if BLEND_RETRIEVAL in tasks:
      raise ConfigError(f'logs.tasks: a task named {BLEND_RETRIEVAL!r} would clash with the '
                        'retrieval logit of recommend\'s blend; rename the task')
    unknown = {f'{name}.{task}' for name, w in [('recommend.weights', self.weights)] + [
        (f'recommend.scenario_weights.{s}', w) for s, w in self.scenario_weights.items()]
               for task in w if task not in tasks and not (
                   task == BLEND_RETRIEVAL and name != 'recommend.weights')}
    if unknown:
      raise ConfigError(f'{", ".join(sorted(unknown))}: not a task of the dataset spec '
                        f'(logs.tasks: {", ".join(tasks)})')
    full = lambda w: {**{task: float(w.get(task, 0.0)) for task in tasks},
                      BLEND_RETRIEVAL: float(w.get(BLEND_RETRIEVAL, self.retrieval_weight))}
    default = full(self.weights or {tasks[0]: 1.0})
    return {'default': default,
            **{str(s): full(w) for s, w in self.scenario_weights.items()}}


@dataclasses.dataclass(frozen=True)
class IndexConfig:
  """The ScaNN index (tree + asymmetric hashing + exact reordering). 0 = from corpus size."""
  k: int = 100  # neighbours the retrieval model returns at most
  num_leaves: int = 0  # auto: about sqrt(corpus size)
  num_leaves_to_search: int = 0  # auto: about a tenth of the leaves, at least 10
  reorder_candidates: int = 0  # auto: 15 * k, exactly rescored
  dims_per_block: int = 2
  anisotropic_quantization_threshold: float = 0.2

  def __post_init__(self):
    if self.k < 1:
      raise ConfigError('index.k must be >= 1')


@dataclasses.dataclass(frozen=True)
class RefreshConfig:
  """A daily refresh (beyond the paper; `make refresh`, pipeline/pipeline.py): the served
  release's model trained on the newest days instead of a full run.

  With `release` set, the pipeline's splits are the log's newest day (test: the gate) and
  the day before it (validation), every earlier day training; the teacher and the
  student start from the release's weights (models/warm_start.py) and train `epochs`
  epochs at `learning_rate` on the last `window_days` days of their split. The gated model
  trains on the days before the newest and is published only when it is not significantly
  worse than per-scenario popularity (the blessing) nor than the release itself on the
  newest day (paired intervals); the release then serves the same warm start on the days
  up to the newest (the refit). The ranker is not retrained: the release's is carried.
  The defaults are experiments/daily_refresh_backtest.py's choice on 05-02 (README).
  """
  release: str = ''  # a release directory; '' = a full run. make refresh: releases/latest
  window_days: int = 7
  epochs: int = 1
  learning_rate: float = 1e-4

  def __post_init__(self):
    if self.window_days < 1 or self.epochs < 1 or self.learning_rate <= 0:
      raise ConfigError('refresh.window_days and refresh.epochs must be >= 1, '
                        'refresh.learning_rate > 0')


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Everything a pipeline run needs; paths are relative to the repository root."""
  pipeline_name: str = 'dsmoe-kuairand-pure'  # KFP allows [a-z0-9-]
  # Where the repository is when components run: empty for this checkout; the container
  # image's /pipeline for Kubeflow (see pipeline/kubeflow_v2_runner.py and Dockerfile).
  runtime_root: str = ''
  data_dir: str = 'data/kuairand_pure'
  dataset_spec: str = 'schemas/kuairand_pure/dataset_spec.yaml'
  events_schema: str = 'schemas/kuairand_pure/events_schema.pbtxt'
  item_corpus_schema: str = 'schemas/kuairand_pure/item_corpus_schema.pbtxt'
  output_dir: str = 'outputs'
  enable_cache: bool = True
  # FnApiRunner: Beam's in-process batch runner. The default DirectRunner would first try
  # to download the Prism runner binary; nothing may download at run time. Several local
  # worker processes: components.beam_runner.LocalRunner; clusters: BUILD.md.
  beam_pipeline_args: tuple[str, ...] = ('--runner=FnApiRunner',)
  ingestion: IngestionConfig = IngestionConfig()
  transform: TransformConfig = TransformConfig()
  model: ModelConfig = ModelConfig()
  distillation: DistillationConfig = DistillationConfig()
  training: TrainingConfig = TrainingConfig()
  ranker: RankerConfig = RankerConfig()
  evaluation: EvaluationConfig = EvaluationConfig()
  ranking_evaluation: RankingEvaluationConfig = RankingEvaluationConfig()
  recommend: RecommendConfig = RecommendConfig()
  index: IndexConfig = IndexConfig()
  refresh: RefreshConfig = RefreshConfig()

  def __post_init__(self):
    if {'--runner=FnApiRunner', '--direct_running_mode=multi_processing'} <= set(
        self.beam_pipeline_args):
      raise ConfigError('beam_pipeline_args: --runner=FnApiRunner starts its worker '
                        'processes without the pipeline options, and they cannot run '
                        'StatisticsGen; with --direct_running_mode=multi_processing use '
                        '--runner=components.beam_runner.LocalRunner')
    missing = set(self.model.popularity_features) - set(self.ingestion.popularity_features)
    if missing:
      raise ConfigError(f'model.popularity_features reads {", ".join(sorted(missing))}, which '
                        f'the ingestion does not write: turn on its ingestion flag '
                        f'(ingestion.scenario_click_features, recent_click_features) or take '
                        f'it out of model.popularity_features')
    if (self.ranker.enabled and self.ranker.item_outcome_features and
        not self.ingestion.item_outcome_features):
      raise ConfigError('ranker.item_outcome_features reads item_outcomes, which the '
                        'ingestion does not write: set ingestion.item_outcome_features: '
                        'true, or ranker.item_outcome_features: false')
    if self.model.scenario_popularity_prior and not self.model.popularity_features:
      raise ConfigError('model.scenario_popularity_prior needs a popularity feature in '
                        'model.popularity_features (and its ingestion flag on: '
                        'ingestion.scenario_click_features or recent_click_features), or '
                        'set model.scenario_popularity_prior: false')

  def path(self, relative: str) -> str:
    """A path as components see it at run time (relative: from the repository root)."""
    if '://' in relative or os.path.isabs(relative):
      return relative
    return os.path.join(self.runtime_root or REPO_ROOT, relative)

  def local_path(self, relative: str) -> str:
    """A path in this checkout, for files read while the pipeline is being defined."""
    if '://' in relative or os.path.isabs(relative):
      return relative
    return os.path.join(REPO_ROOT, relative)

  @property
  def pipeline_root(self) -> str:
    return os.path.join(self.path(self.output_dir), 'pipeline_root', self.pipeline_name)

  @property
  def releases_dir(self) -> str:
    """Blessed releases: <releases_dir>/<version>/ and <releases_dir>/latest."""
    return os.path.join(self.path(self.output_dir), 'releases')

  @property
  def metadata_path(self) -> str:
    return os.path.join(self.path(self.output_dir), 'metadata', self.pipeline_name,
                        'metadata.db')


def weight_settings(model: ModelConfig, distillation: DistillationConfig,
                    ingestion: IngestionConfig, ranker: RankerConfig) -> dict:
  """The settings a retrieval model's weights are made by, as JSON values: the model
  section, the teacher's architecture and the item and user features the ingestion
  writes. The Trainer writes them into training_summary.json (WEIGHT_SETTINGS_KEY); a
  refresh warm-starts the release's weights, so it must use the same ones."""
  teacher = {'enabled': distillation.enabled}
  if distillation.enabled:
    teacher.update(teacher=distillation.teacher, cross_layers=distillation.cross_layers,
                   cross_projection_dim=distillation.cross_projection_dim)
    if distillation.teacher in RANKERS:
      teacher['ranker'] = ranker.architecture()
  return json.loads(json.dumps({
      'model': dataclasses.asdict(model), 'distillation': teacher,
      'ingestion': {'history_length': ingestion.history_length,
                    'scenario_click_features': ingestion.scenario_click_features,
                    'recent_click_features': ingestion.recent_click_features}}))


WEIGHT_SETTINGS_KEY = 'weight_settings'


def _settings_differences(saved: Mapping, now: Mapping, prefix: str = '') -> list[str]:
  """'key: saved -> now' for every leaf of two weight_settings dicts that differs."""
  differences = []
  for key in sorted(set(saved) | set(now)):
    a, b = saved.get(key), now.get(key)
    if isinstance(a, dict) and isinstance(b, dict):
      differences += _settings_differences(a, b, f'{prefix}{key}.')
    elif a != b:
      differences.append(f'{prefix}{key}: {json.dumps(a)} in the release, '
                         f'{json.dumps(b)} now')
  return differences


def for_refresh(config: PipelineConfig, release: str = '') -> PipelineConfig:
  """`config` as a refresh (RefreshConfig) of `release` (default: the latest release under
  its releases directory): the release's scenarios, the refresh's learning rate, no
  ranker trained (the release's is carried), no significant drop against the release."""
  release = release or release_format.latest_release(config.releases_dir)
  manifest = release_format.read_manifest(release)
  if manifest is None:
    raise ConfigError(f'no release to refresh: {release or config.releases_dir} holds '
                      f'none; publish one with make run first')
  for tower in (layout.USER_TOWER_DIR, layout.ITEM_TOWER_DIR):
    if not tf.io.gfile.exists(os.path.join(release, layout.WARM_START_DIR, tower)):
      raise ConfigError(f'the release {release} carries no {layout.WARM_START_DIR}/{tower} '
                        f'(releases made before refreshes existed do not): publish one '
                        f'with make run, then refresh it')
  scenarios = tuple(manifest['scenarios'])
  summary = os.path.join(release, layout.TRAINING_SUMMARY_FILE)
  if tf.io.gfile.exists(summary):
    with tf.io.gfile.GFile(summary) as f:
      saved = json.load(f).get(WEIGHT_SETTINGS_KEY)
    differences = saved and _settings_differences(saved, weight_settings(
        config.model, config.distillation, config.ingestion, config.ranker))
    if differences:
      raise ConfigError(
          f'the release {release} was trained with other model settings than this '
          f'refresh ({"; ".join(differences)}): refresh with the preset, YAML file and '
          f'--set overrides the release was made with, or publish a new release with '
          f'make run')
  if '://' not in release:  # releases/latest: the version it names, not the link
    release = os.path.realpath(release)
  return dataclasses.replace(
      config,
      refresh=dataclasses.replace(config.refresh, release=release),
      ingestion=dataclasses.replace(config.ingestion, scenarios=scenarios),
      training=dataclasses.replace(config.training,
                                   learning_rate=config.refresh.learning_rate),
      ranker=dataclasses.replace(config.ranker, enabled=False),
      evaluation=dataclasses.replace(config.evaluation, significant_drop_vs_blessed=True))


PRESETS_DIR = os.path.join(REPO_ROOT, 'presets')


def presets() -> tuple[str, ...]:
  """The names of the presets in presets/ (NAME.yaml)."""
  return tuple(sorted(name[:-5] for name in os.listdir(PRESETS_DIR)
                      if name.endswith('.yaml')))


def load_config(yaml_path: str = '', overrides: Sequence[str] = (),
                preset: str = '') -> PipelineConfig:
  """Defaults, then the preset (presets/NAME.yaml), then the YAML file, then `key.sub=value`
  overrides."""
  raw: dict = {}
  if preset:
    if preset not in presets():
      raise ConfigError(f'unknown preset {preset!r}; the presets are '
                        f'{", ".join(presets())} (files in {PRESETS_DIR})')
    raw = _read_yaml(os.path.join(PRESETS_DIR, f'{preset}.yaml'))
  if yaml_path:
    _merge(raw, _read_yaml(yaml_path))
  for override in overrides:
    key, sep, value = override.partition('=')
    if not sep:
      raise ConfigError(f'override {override!r} must look like key.sub=value')
    node = raw
    *parents, leaf = key.strip().split('.')
    for part in parents:
      node = node.setdefault(part, {})
      if not isinstance(node, dict):
        raise ConfigError(f'override {override!r}: {part!r} is not a section')
    node[leaf] = yaml.safe_load(value)
  config = from_dict(PipelineConfig, raw)
  # refresh.release set in a file or an override: the whole refresh, as --refresh makes it.
  return for_refresh(config, config.refresh.release) if config.refresh.release else config


def _read_yaml(path: str) -> dict:
  try:
    with open(path, encoding='utf-8') as f:
      raw = yaml.safe_load(f) or {}
  except (OSError, yaml.YAMLError) as e:
    raise ConfigError(f'cannot read the config file {path!r}: {e}') from None
  if not isinstance(raw, dict):
    raise ConfigError(f'{path}: the config must be a mapping')
  return raw


def _merge(base: dict, update: dict) -> None:
  """Nested update: sections merge key by key, values replace."""
  for key, value in update.items():
    if isinstance(value, dict) and isinstance(base.get(key), dict):
      _merge(base[key], value)
    else:
      base[key] = value


def from_dict(cls, raw: Mapping[str, Any], prefix: str = ''):
  """A config dataclass from a (YAML- or JSON-shaped) mapping, with type checks."""
  fields = {f.name: f for f in dataclasses.fields(cls)}
  hints = typing.get_type_hints(cls)
  kwargs = {}
  for key, value in raw.items():
    name = f'{prefix}{key}'
    if key not in fields:
      raise ConfigError(f'unknown config key {name!r}; known keys: '
                        f'{", ".join(prefix + k for k in fields)}')
    kwargs[key] = _coerce(hints[key], value, name)
  try:
    return cls(**kwargs)
  except TypeError as e:
    raise ConfigError(f'{prefix or "config"}: {e}') from None


def _coerce(hint, value, name: str):
  if dataclasses.is_dataclass(hint):
    if not isinstance(value, dict):
      raise ConfigError(f'{name} must be a mapping')
    return from_dict(hint, value, name + '.')
  origin = typing.get_origin(hint)
  if origin is Union:  # Optional[X]
    if value is None:
      return None
    return _coerce([a for a in typing.get_args(hint) if a is not type(None)][0], value,
                   name)
  if origin is tuple:
    if not isinstance(value, (list, tuple)):
      raise ConfigError(f'{name} must be a list')
    item_type = typing.get_args(hint)[0]
    return tuple(_coerce(item_type, v, f'{name}[{i}]') for i, v in enumerate(value))
  if origin is dict:
    if not isinstance(value, dict):
      raise ConfigError(f'{name} must be a mapping')
    key_type, value_type = typing.get_args(hint)
    return {_coerce(key_type, k, name): _coerce(value_type, v, f'{name}.{k}')
            for k, v in value.items()}
  if hint is bool:
    if not isinstance(value, bool):
      raise ConfigError(f'{name} must be true or false, got {value!r}')
    return value
  if hint is float and isinstance(value, int) and not isinstance(value, bool):
    return float(value)
  if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
    return str(value)
  if not isinstance(value, hint) or isinstance(value, bool) and hint is not bool:
    raise ConfigError(f'{name} must be of type {hint.__name__}, got {value!r}')
  return value


# ----------------------------------------------------------------------------------------
# Config sections as JSON: exec properties and custom_config of the components.

DATASET_SPEC_KEY = 'dataset_spec'  # custom_config: the DatasetSpec as JSON
CODE_FINGERPRINT_KEY = 'code_fingerprint'  # custom_config: only there to key TFX's cache

# Section class -> its field name in PipelineConfig ('ingestion', 'model', ...).
SECTIONS = {hint: name for name, hint in typing.get_type_hints(PipelineConfig).items()
            if dataclasses.is_dataclass(hint)}


def section_to_json(section) -> str:
  """A config section (IngestionConfig, ModelConfig, ...) as JSON."""
  return json.dumps(dataclasses.asdict(section))


def section_from_json(cls, text: str):
  """The section of type `cls` from `section_to_json`'s JSON, type-checked."""
  return from_dict(cls, json.loads(text), prefix=f'{SECTIONS[cls]}.')


def to_custom_config(spec: ds.DatasetSpec, *sections,
                     code_fingerprint: str = '') -> dict[str, str]:
  """A custom_config for Transform or the Trainer: the dataset spec and each section as
  JSON under its PipelineConfig name, and the fingerprint of the code that reads it (TFX
  does not fingerprint a module named by its import path; with this an edit of the code
  reruns the component instead of reusing a cached result)."""
  result = {DATASET_SPEC_KEY: spec.to_json(), CODE_FINGERPRINT_KEY: code_fingerprint}
  for section in sections:
    result[SECTIONS[type(section)]] = section_to_json(section)
  return result


def trainer_sections(config: 'PipelineConfig') -> tuple:
  """The sections the retrieval Trainer's run_fn reads (training/trainer.py): transform,
  model, distillation, training, ingestion (the recent clicks' half-life of the
  point-in-time negatives) and, only when the teacher is a ranker, that ranker's
  architecture (RankerConfig.architecture(); the ranker section's other fields at their
  defaults), so that no other ranker setting retrains the retrieval model."""
  sections = (config.transform, config.model, config.distillation, config.training,
              config.ingestion)
  if config.distillation.enabled and config.distillation.teacher in RANKERS:
    sections += (RankerConfig(**config.ranker.architecture()),)
  return sections


def spec_from_custom_config(custom_config: Mapping[str, str]) -> ds.DatasetSpec:
  return ds.DatasetSpec.from_json(custom_config[DATASET_SPEC_KEY])


def from_custom_config(custom_config: Mapping[str, str], cls):
  """The section of type `cls` that `to_custom_config` wrote."""
  return section_from_json(cls, custom_config[SECTIONS[cls]])
