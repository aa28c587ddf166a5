"""experiments/ranker_figures.py on tiny MDL and MTmixAtt rankers (the hand-made feature
space of test_rankers.py): a job directory as experiments/rankers.py leaves it, the
averaged attention and routing matrices, and the figures."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from core import config as configs
from experiments import ranker_figures as figures
from experiments import rankers
from models import build
from tests.test_rankers import CONFIG
from tests.test_rankers import random_inputs
from tests.test_rankers import SPACE
from tests.test_rankers import TASKS

SEED = 42
# 16 exposures: scenario '2' has none, '9' is not served (MDL: its own token is the
# global one; MTmixAtt: the 'other' row).
SCENARIOS = np.array(['0', '1', '0', '9', '1', '0', '1', '0'])


def _inputs() -> dict:
  parts = [random_inputs(seed=s, scenarios=SCENARIOS) for s in (0, 1)]
  return {name: tf.concat([p[name] for p in parts], axis=0) for name in parts[0]}


def _overrides(model: str) -> list[str]:
  """The ranker.* overrides that rebuild test_rankers.CONFIG with `model`."""
  overrides = [f'ranker.model={model}']
  default = configs.RankerConfig()
  for field in dataclasses.fields(CONFIG):
    value = getattr(CONFIG, field.name)
    if field.name != 'model' and value != getattr(default, field.name):
      overrides.append(f'ranker.{field.name}='
                       f'{json.dumps(list(value) if isinstance(value, tuple) else value)}')
  return overrides


def _job(results_dir: str, name: str, model: str, inputs: dict):
  """A trained-looking job directory (summary.json with overrides, weights/ranker) of a
  tiny ranker; returns (directory, the ranker)."""
  tf.keras.utils.set_random_seed(0)
  net = build.build_ranker(dataclasses.replace(CONFIG, model=model), SPACE, TASKS)
  net(inputs, training=False)
  directory = os.path.join(results_dir, 'runs', f'seed{SEED}', f'{name}-0123456789')
  net.save_weights(os.path.join(directory, rankers.WEIGHTS))
  with open(os.path.join(directory, 'summary.json'), 'w') as f:
    json.dump({'model': model, 'tasks': list(TASKS), 'epoch_kept': 1,
               'overrides': ['output_dir=unused'] + _overrides(model), 'data': {}}, f)
  return directory, net


@pytest.fixture(scope='module')
def jobs(tmp_path_factory):
  results_dir = str(tmp_path_factory.mktemp('rankers'))
  inputs = _inputs()
  made = {name: _job(results_dir, name, model, inputs)
          for name, model in ((figures.MDL_JOB, 'mdl'), (figures.MTMIXATT_JOB, 'mtmixatt'))}
  loaded = {}
  for name, (directory, _) in made.items():
    assert figures.find_job(results_dir, SEED, name) == directory
    loaded[name] = figures.load_ranker(directory, SPACE, TASKS, inputs)
  return made, loaded, inputs


def test_the_job_model_is_rebuilt_with_its_weights(jobs):
  made, loaded, inputs = jobs
  for name, (_, original) in made.items():
    np.testing.assert_allclose(loaded[name](inputs, training=False).numpy(),
                               original(inputs, training=False).numpy(), rtol=1e-5,
                               atol=1e-6)
  with pytest.raises(SystemExit, match='no finished'):
    figures.find_job(os.path.dirname(os.path.dirname(os.path.dirname(
        made[figures.MDL_JOB][0]))), SEED + 1, figures.MDL_JOB)


def test_mdl_attention_is_averaged_over_heads_and_each_scenarios_exposures(jobs):
  _, loaded, inputs = jobs
  net = loaded[figures.MDL_JOB]
  result = figures.mdl_attention(net, inputs, batch_size=5)  # 16 rows in 4 batches
  assert result['feature_tokens'] == list(net.group_names()) and len(result['layers']) == 2
  assert result['scenario_tokens'] == ['0', '1', '2', 'global']
  assert result['exposures'] == 16
  assert result['exposures_per_scenario'] == {'0': 8, '1': 6, '2': 0, 'other': 2}
  scores = net.attention_scores(inputs)
  own = np.array([{'0': 0, '1': 1}.get(s, -1) for s in np.tile(SCENARIOS, 2)])
  for layer, expected in zip(result['layers'], scores):
    task, scenario = (expected[k].numpy().mean(axis=1) for k in ('task', 'scenario'))
    assert layer['task'].shape == (len(TASKS), 6)
    np.testing.assert_allclose(layer['task'].sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(layer['task'], task.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(layer['scenario_all'], scenario.mean(axis=0), rtol=1e-5)
    for s in (0, 1):
      np.testing.assert_allclose(layer['scenario'][s], scenario[own == s, s].mean(axis=0),
                                 rtol=1e-5)
    np.testing.assert_allclose(layer['scenario'][3], scenario[:, 3].mean(axis=0), rtol=1e-5)
    assert np.isnan(layer['scenario'][2]).all()  # no exposure of scenario '2'
    finite = layer['scenario'][[0, 1, 3]]
    np.testing.assert_allclose(finite.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(layer['scenario_all'].sum(axis=1), 1.0, rtol=1e-5)
  whole = figures.mdl_attention(net, inputs)
  np.testing.assert_allclose(whole['layers'][1]['task'], result['layers'][1]['task'],
                             rtol=1e-5)


def test_mtmixatt_routing_rows_are_distributions_over_the_experts(jobs):
  _, loaded, inputs = jobs
  net = loaded[figures.MTMIXATT_JOB]
  result = figures.mtmixatt_routing(net, inputs, batch_size=5)
  assert result['scenarios'] == ['0', '1', '2', 'other', 'all']
  assert result['experts'] == CONFIG.num_experts and len(result['layers']) == 2
  routing = net.routing_choices(inputs)
  per_exposure = [c.numpy().mean(axis=1) / net.top_k for c in routing]  # [16, E] per block
  scenarios = np.tile(SCENARIOS, 2)
  for layer, expected in zip(result['layers'], per_exposure):
    assert layer.shape == (5, CONFIG.num_experts)
    assert np.isnan(layer[2]).all()
    np.testing.assert_allclose(layer[[0, 1, 3, 4]].sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(layer[0], expected[scenarios == '0'].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(layer[3], expected[scenarios == '9'].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(layer[4], expected.mean(axis=0), rtol=1e-5)


def test_the_figures_and_their_numbers_are_written(jobs, tmp_path):
  _, loaded, inputs = jobs
  attention = figures.mdl_attention(loaded[figures.MDL_JOB], inputs)
  routing = figures.mtmixatt_routing(loaded[figures.MTMIXATT_JOB], inputs)
  figures.plot_mdl_attention(attention, str(tmp_path / 'mdl_attention.png'))
  figures.plot_mtmixatt_routing(routing, str(tmp_path / 'mtmixatt_routing.png'))
  for name in ('mdl_attention.png', 'mtmixatt_routing.png'):
    with open(tmp_path / name, 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  text = json.dumps(figures.to_json({'mdl_attention': attention,
                                     'mtmixatt_routing': routing}))
  back = json.loads(text)
  assert back['mdl_attention']['layers'][0]['scenario'][2] == [None] * 6
  assert len(back['mtmixatt_routing']['layers'][0]) == 5
