"""The experiment harness's bookkeeping: which trained variant a configuration reuses, and
how the test report aggregates seeds."""

from core import config as configs
from experiments import harness
from experiments import test_report


def test_a_variant_is_reused_only_for_the_same_training_configuration():
  config = configs.load_config('', ['training.seed=7'])
  same = configs.load_config('', ['training.seed=7', 'output_dir=elsewhere',
                                  'evaluation.bootstrap_resamples=50'])
  directory = harness.variant_directory('/runs', config, 'default')
  assert directory.startswith('/runs/variants/seed7/default-')
  # Scoring and output options do not change what is trained.
  assert harness.variant_directory('/runs', same, 'default') == directory
  # Any training-relevant change does, even under the same name (a changed default).
  for override in ('training.batch_size=4096', 'training.seed=8', 'model.rank=2',
                   'distillation.weight=0.5', 'transform.id_min_frequency=3'):
    changed = configs.load_config('', ['training.seed=7', override])
    assert harness.variant_directory('/runs', changed, 'default') != directory, override


def test_report_cell_is_the_mean_and_sample_std_over_seeds():
  runs = [{'point': 0.1, 'lower': 0.05, 'upper': 0.15},
          {'point': 0.2, 'lower': 0.12, 'upper': 0.28},
          {'point': 0.3, 'lower': 0.22, 'upper': 0.38}]
  # mean 0.2; sample std sqrt(((-0.1)^2 + 0 + 0.1^2) / 2) = 0.1; bounds averaged.
  assert test_report._cell(runs, signed=False) == '0.2000 ± 0.1000 [0.1300, 0.2700]'
  assert test_report._cell(runs[:1], signed=True) == '+0.1000 ± 0.0000 [+0.0500, +0.1500]'
