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
    ('distillation.teacher=mdl', "distillation.teacher is 'mdl'; use one of dcn_v2"),
])
def test_unregistered_student_or_teacher_is_refused_when_the_pipeline_is_defined(
    override, message, tmp_path, capsys):
  from pipeline import kubeflow_v2_runner
  assert kubeflow_v2_runner.main(['--image', 'x', '--output', str(tmp_path / 'p.json'),
                                  '--set', override]) == 1
  assert message in capsys.readouterr().err
  assert not (tmp_path / 'p.json').exists()
