"""The DSMOE paper's experiments as configurations: what `experiments.reproduce` trains.

Every experiment is a set of named variants, each a list of config overrides on a preset
('paper': presets/paper.yaml, everything beyond the paper off; 'default': the project's
defaults). A variant is trained once per seed and shared by every table it appears in
(the harness keys a trained model by name and by a fingerprint of its configuration).

    table2   the paper's Table 2: the baselines and DSMOE, Recall@50/100 per scenario
    table4   the paper's Table 4: DSMOE without SAP, without distillation, without DSBN,
             without all three; and the distillation weight lambda in {0, .1, .5, 1, 2}
    experts  Figure 2: K in {1, 2, 3, 4, 5}
    rank     Figure 3: R in {1, 2, 4, 8, 16}
    teachers beyond the paper: DSMOE distilled from each teacher, the DCN-v2 default and
             the rankers RankMixer, MDL and MTmixAtt (their click head, trained as the
             DCN-v2 teacher is), next to DSMOE without distillation

The baselines are trained as their papers train them, without a teacher
(distillation.enabled=false); DSMOE and its ablations (except "w/o distillation") distil
from the teacher of their (preset, seed), trained once and shared. Variants that are the
same configuration under two names are written once, under the first name (lambda 0 is
"w/o distillation", lambda 1, K=3 and R=4 are DSMOE; "w/o SAP, DSBN and distillation"
is the MMOE baseline).
"""

import dataclasses

PRESETS = {'paper': 'paper', 'default': ''}  # label -> presets/ name ('' = defaults)

NO_TEACHER = 'distillation.enabled=false'
DSMOE = 'DSMOE'


@dataclasses.dataclass(frozen=True)
class Variant:
  name: str  # the label in tables (unique per experiment run)
  overrides: tuple[str, ...] = ()


# The paper's Table 2 rows, in its order, then the project's own reference baselines.
TABLE2 = (
    Variant('two-tower DNN', ('model.model=two_tower_dnn', NO_TEACHER)),
    Variant('MMOE', ('model.model=mmoe', NO_TEACHER)),
    Variant('ICAN', ('model.model=ican', NO_TEACHER)),
    Variant('ADIN', ('model.model=adin', NO_TEACHER)),
    Variant('SASS', ('model.model=sass', NO_TEACHER)),
    Variant('M5', ('model.model=m5', NO_TEACHER)),
    Variant('PERSCEN', ('model.model=perscen', NO_TEACHER)),
    Variant(DSMOE),
)
BASELINES = tuple(v.name for v in TABLE2 if v.name != DSMOE)

ABLATIONS = (
    Variant('w/o SAP', ('model.use_sap=false',)),
    Variant('w/o distillation', (NO_TEACHER,)),
    Variant('w/o DSBN', ('model.use_dsbn=false',)),
    # The same network as the MMOE baseline (plain Dense experts, shared BN, no teacher).
    Variant('w/o SAP, DSBN, distillation', ('model.model=mmoe', NO_TEACHER)),
)
# DSMOE (the DCN-v2 teacher) and DSMOE with each ranker as its teacher.
TEACHER_VARIANTS = (
    Variant(DSMOE),
    Variant('DSMOE, RankMixer teacher', ('distillation.teacher=rankmixer',)),
    Variant('DSMOE, MDL teacher', ('distillation.teacher=mdl',)),
    Variant('DSMOE, MTmixAtt teacher', ('distillation.teacher=mtmixatt',)),
    Variant('w/o distillation', (NO_TEACHER,)),
)
LAMBDAS = (0.0, 0.1, 0.5, 1.0, 2.0)
EXPERTS = (1, 2, 3, 4, 5)
RANKS = (1, 2, 4, 8, 16)


def lambda_variant(weight: float) -> Variant:
  if weight == 0:
    return Variant('w/o distillation', (NO_TEACHER,))
  return Variant(f'lambda {weight:g}', (f'distillation.weight={weight:g}',))


def experts_variant(k: int) -> Variant:
  return Variant(f'K={k}', (f'model.num_experts={k}',))


def rank_variant(r: int) -> Variant:
  return Variant(f'R={r}', (f'model.rank={r}',))


def experiment_variants(quick: bool = False) -> dict[str, tuple[Variant, ...]]:
  """experiment -> its variants. `quick` keeps one baseline, lambda 0 and 1 and the
  default K and R: a fast check that every table and figure is produced, not a result."""
  lambdas = (0.0, 1.0) if quick else LAMBDAS
  experts = (3,) if quick else EXPERTS
  ranks = (4,) if quick else RANKS
  return {
      'table2': (TABLE2[0], TABLE2[-1]) if quick else TABLE2,
      'table4': ((Variant(DSMOE),) + (() if quick else ABLATIONS) +
                 tuple(lambda_variant(w) for w in lambdas)),
      'experts': tuple(experts_variant(k) for k in experts),
      'rank': tuple(rank_variant(r) for r in ranks),
      'teachers': TEACHER_VARIANTS[:3] if quick else TEACHER_VARIANTS,
  }


# The paper's numbers on KuaiRand-Pure (Recall in %, mean (std) of 5 runs, its split and
# schedule), scenarios K1..K4 ordered by data share (84%, 9%, 4%, 3%).
PAPER_TABLE2 = {
    'ICAN': ((18.06, 28.93), (21.63, 31.99), (17.64, 28.19), (3.47, 6.98)),
    'ADIN': ((18.46, 29.29), (29.50, 40.83), (18.88, 29.82), (19.12, 29.72)),
    'SASS': ((17.70, 28.28), (30.10, 41.25), (17.99, 28.03), (18.95, 28.17)),
    'M5': ((17.91, 28.62), (28.06, 39.55), (18.57, 27.98), (15.81, 24.51)),
    'PERSCEN': ((18.74, 29.95), (30.69, 42.62), (19.60, 30.50), (21.39, 31.68)),
    DSMOE: ((18.86, 30.06), (31.04, 42.66), (20.26, 30.61), (21.87, 32.60)),
}
PAPER_TABLE4 = {
    'w/o SAP': ((18.08, 29.05), (29.05, 40.68), (19.63, 29.93), (18.46, 27.60)),
    'w/o distillation': ((18.74, 29.65), (29.04, 40.27), (19.27, 29.28), (18.80, 28.52)),
    'w/o DSBN': ((18.53, 29.49), (30.50, 41.55), (18.66, 29.88), (20.27, 30.55)),
    DSMOE: PAPER_TABLE2[DSMOE],
}
