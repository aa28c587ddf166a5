"""The typed pipeline config: defaults, YAML, dotted overrides, and errors naming the key."""

import pytest

from core import config as configs


def test_defaults_run_the_bundled_data():
  config = configs.load_config()
  assert config.ingestion == configs.IngestionConfig()
  assert config.ingestion.num_scenarios == 4 and config.ingestion.history_length == 20
  assert config.path(config.data_dir).endswith('data/kuairand_pure')
  assert '--runner=FnApiRunner' in config.beam_pipeline_args


def test_yaml_then_overrides(tmp_path):
  path = tmp_path / 'c.yaml'
  path.write_text('ingestion:\n  history_length: 10\n  scenarios: [1, "4"]\n'
                  'output_dir: /tmp/x\n')
  config = configs.load_config(str(path), ['ingestion.history_length=30',
                                           'ingestion.max_bad_row_fraction=0.01'])
  assert config.ingestion.history_length == 30
  assert config.ingestion.scenarios == ('1', '4')
  assert config.ingestion.max_bad_row_fraction == 0.01
  assert config.pipeline_root == '/tmp/x/pipeline_root/dsmoe-kuairand-pure'


def test_runtime_root_moves_runtime_paths_only():
  config = configs.PipelineConfig(runtime_root='/pipeline')
  assert config.path('schemas/x.pbtxt') == '/pipeline/schemas/x.pbtxt'
  assert config.local_path('schemas/x.pbtxt') == f'{configs.REPO_ROOT}/schemas/x.pbtxt'
  assert config.path('gs://bucket/data') == 'gs://bucket/data'


@pytest.mark.parametrize('override,message', [
    ('ingestion.history_lenght=3', "unknown config key 'ingestion.history_lenght'"),
    ('ingestion.history_length=ten', 'ingestion.history_length must be of type int'),
    ('ingestion.history_length=0', 'history_length must be at least 1'),
    ('ingestion.max_bad_row_fraction=1.5', 'max_bad_row_fraction must be in'),
    ('enable_cache=maybe', 'enable_cache must be true or false'),
    ('ingestion=3', 'ingestion must be a mapping'),
    ('history_length', 'must look like key.sub=value'),
])
def test_bad_values_name_the_key(override, message):
  with pytest.raises(configs.ConfigError, match=message):
    configs.load_config('', [override])


@pytest.mark.parametrize('override,message', [
    ('model.model=dsmo', "model.model is 'dsmo'; use one of dsmoe, mmoe, two_tower_dnn"),
    ('distillation.teacher=mdn',
     "distillation.teacher is 'mdn'; use one of dcn_v2, shared_bottom, mmoe, rankmixer, mdl, "
     'mtmixatt'),
])
def test_unregistered_student_or_teacher_is_refused_when_the_pipeline_is_defined(
    override, message, tmp_path, capsys):
  from pipeline import kubeflow_v2_runner
  assert kubeflow_v2_runner.main(['--image', 'x', '--output', str(tmp_path / 'p.json'),
                                  '--set', override]) == 1
  assert message in capsys.readouterr().err
  assert not (tmp_path / 'p.json').exists()


def test_paper_preset_turns_off_everything_beyond_the_paper():
  paper = configs.load_config(preset='paper')
  assert paper.model.popularity_features == () and not paper.model.scenario_popularity_prior
  assert not paper.model.fitted_popularity_weight and not paper.model.fits_popularity_weight
  assert configs.load_config('', []).model.fits_popularity_weight  # on by default
  assert paper.training.in_batch_negatives == 0 and not paper.training.logq_correction
  assert paper.training.negative_sampling_power == 0 == paper.training.scenario_balance_power
  assert paper.output_dir == 'outputs/paper'
  # The preset is under the config file and the overrides.
  assert configs.load_config('', ['output_dir=/tmp/x'], preset='paper').output_dir == '/tmp/x'
  with pytest.raises(configs.ConfigError, match="unknown preset 'papr'; the presets are "
                     'paper'):
    configs.load_config(preset='papr')


@pytest.mark.parametrize('overrides,message', [
    (['model.popularity_features=[clicks]'], 'model.popularity_features lists clicks'),
    (['model.popularity_features=[scenario_recent_clicks]',
      'ingestion.recent_click_features=false'],
     'reads scenario_recent_clicks, which the ingestion does not write'),
    (['model.popularity_features=[]'], 'scenario_popularity_prior needs a popularity'),
    (['model.popularity_weight_grid=[0,-1]'], 'popularity_weight_grid must list values >= 0'),
])
def test_popularity_features_must_be_known_and_written(overrides, message):
  with pytest.raises(configs.ConfigError, match=message):
    configs.load_config('', overrides)


def test_a_refresh_serves_the_release_scenarios_and_retrains_no_ranker(tmp_path):
  """for_refresh: the latest release of the output dir (resolved), its scenarios, the
  refresh's learning rate, no ranker trained, a significant drop against the release
  refused; without a release, a clear error."""
  import json
  import os
  config = configs.load_config('', [f'output_dir={tmp_path}'])
  with pytest.raises(configs.ConfigError, match='no release to refresh.*make run first'):
    configs.for_refresh(config)
  release = tmp_path / 'releases' / 'v1'
  release.mkdir(parents=True)
  (release / 'manifest.json').write_text(json.dumps({'scenarios': ['1', '4', '2', '6']}))
  (tmp_path / 'releases' / 'LATEST').write_text('v1')
  with pytest.raises(configs.ConfigError, match='carries no warm_start/user_tower'):
    configs.for_refresh(config)  # a release made before refreshes existed
  for tower in ('user_tower', 'item_tower'):
    (release / 'warm_start' / tower).mkdir(parents=True)
  refresh = configs.for_refresh(config)
  assert refresh.refresh.release == os.path.realpath(release)
  assert refresh.ingestion.scenarios == ('1', '4', '2', '6')
  assert refresh.training.learning_rate == 1e-4 != config.training.learning_rate
  assert not refresh.ranker.enabled and config.ranker.enabled
  assert refresh.evaluation.significant_drop_vs_blessed
  assert configs.for_refresh(config, str(release)) == refresh
  # refresh.release in a file or an override makes the same refresh as --refresh.
  assert configs.load_config('', [f'output_dir={tmp_path}',
                                  f'refresh.release={release}']) == refresh


def test_a_refresh_keeps_the_weight_settings_of_the_release(tmp_path):
  """A release trained with other model settings (the paper preset's, an ablation's) is
  refused up front, naming each setting that differs; the same settings pass."""
  import json
  paper = configs.load_config('', [f'output_dir={tmp_path}'], preset='paper')
  release = tmp_path / 'releases' / 'v1'
  for tower in ('user_tower', 'item_tower'):
    (release / 'warm_start' / tower).mkdir(parents=True)
  (release / 'manifest.json').write_text(json.dumps({'scenarios': ['1', '4']}))
  (tmp_path / 'releases' / 'LATEST').write_text('v1')
  saved = configs.weight_settings(paper.model, paper.distillation, paper.ingestion,
                                  paper.ranker)
  # What training/trainer.py writes, through JSON: tuples are lists.
  assert saved['model']['hidden_units'] == list(paper.model.hidden_units)
  (release / 'training_summary.json').write_text(json.dumps({'weight_settings': saved}))
  assert configs.for_refresh(paper).refresh.release.endswith('v1')
  default = configs.load_config('', [f'output_dir={tmp_path}'])
  with pytest.raises(configs.ConfigError) as refused:
    configs.for_refresh(default)
  message = str(refused.value)
  assert 'model.popularity_features: [] in the release, ["scenario_clicks", ' in message
  assert 'model.scenario_popularity_prior: false in the release, true now' in message
  assert 'refresh with the preset, YAML file and --set overrides' in message
  ablation = configs.load_config('', [f'output_dir={tmp_path}', 'model.use_sap=false'],
                                 preset='paper')
  with pytest.raises(configs.ConfigError, match=r'model\.use_sap: true in the release, '
                     r'false now'):
    configs.for_refresh(ablation)
  # A setting the weights do not depend on may change.
  assert configs.for_refresh(configs.load_config(
      '', [f'output_dir={tmp_path}', 'distillation.weight=0.5'], preset='paper'))
