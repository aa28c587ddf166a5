"""The rankers' figures: MDL's domain-aware attention (the MDL paper's Figs. 3-4) and
MTmixAtt's sparse-expert routing, from the models experiments/rankers.py trained.

    python -m experiments.ranker_figures --results-dir outputs/experiments/rankers
                                         [--output-dir docs/rankers] [--seed 42]
                                         [--sample 4096]

For the seed's 'MDL' and 'MTmixAtt' jobs (runs/seed<seed>/<name>-<fingerprint>/; the
newest when there are several): the model is rebuilt from the job's summary['overrides']
(build_ranker on the FeatureSpace of the job's pipeline run), run once to create its
variables, and given the kept epoch's weights (weights/ranker). A random sample of up to
`sample` exposures of the test window goes through the Transform graph as
training/ranking.score_raw sends them, then:

  mdl_attention.png     per block (layer), the attention of each task token and each
                        scenario token over the feature tokens, averaged over heads and
                        exposures: a task token over all exposures; the scenario token of
                        scenario s over the exposures of s (the token that example's
                        prediction uses, with the global one), the global token over all.
  mtmixatt_routing.png  per block, the share of each scenario's routing decisions that go
                        to each sparse expert (over the tokens and the scenario's
                        exposures; each token makes top_k decisions: rows sum to 1).
  ranker_figures.json   the numbers of both (the scenario tokens also averaged over all
                        exposures), the jobs and the sample.

The computation (mdl_attention, mtmixatt_routing) is separate from the plotting.
"""

import argparse
import glob
import json
import os
import sys
from typing import Optional, Sequence

import numpy as np

from core import config as configs
from core import examples as example_files
from experiments import rankers

MDL_JOB, MTMIXATT_JOB = 'MDL', 'MTmixAtt'
GLOBAL, ALL, OTHER = 'global', 'all', 'other'
_BATCH = 1024


# ---- the jobs and the models -----------------------------------------------------------

def find_job(results_dir: str, seed: int, name: str) -> str:
  """The newest finished job directory of `name` for `seed` (summary.json with its
  overrides and the kept weights)."""
  slug = name.replace(' ', '_').replace('/', '_')
  found = []
  for summary in glob.glob(os.path.join(results_dir, 'runs', f'seed{seed}', f'{slug}-*',
                                        'summary.json')):
    directory = os.path.dirname(summary)
    with open(summary) as f:
      has_overrides = {'overrides', 'data'} <= set(json.load(f))
    if has_overrides and glob.glob(os.path.join(directory, rankers.WEIGHTS) + '.index'):
      found.append(directory)
  if not found:
    raise SystemExit(f'no finished {name!r} job of seed {seed} with weights under '
                     f'{results_dir}/runs: run python -m experiments.rankers --seeds {seed} '
                     f'--variants MDL MTmixAtt first')
  return max(found, key=lambda d: os.path.getmtime(os.path.join(d, 'summary.json')))


def job_config(directory: str) -> tuple[configs.PipelineConfig, dict]:
  """(the job's config, rebuilt from its overrides; its summary)."""
  with open(os.path.join(directory, 'summary.json')) as f:
    summary = json.load(f)
  return configs.load_config('', summary['overrides']), summary


def load_ranker(directory: str, space, tasks: Sequence[str], inputs: dict):
  """The job's ranker with its kept weights: built from its config, called on (a few rows
  of) `inputs` to create the variables, then loaded (every variable of the model must be
  in the checkpoint; the optimizer's slots in it are ignored)."""
  from models import build  # pylint: disable=g-import-not-at-top
  config, _ = job_config(directory)
  model = build.build_ranker(config.ranker, space, tuple(tasks))
  model({name: value[:2] for name, value in inputs.items()}, training=False)
  status = model.load_weights(os.path.join(directory, rankers.WEIGHTS))
  status.assert_existing_objects_matched()
  status.expect_partial()
  return model


def test_inputs(tft_output, space, pattern: str, sample: int, seed: int = 0) -> dict:
  """Dense model inputs of a random sample of up to `sample` raw exposures of `pattern`
  (in the files' stable order), through the Transform graph as score_raw does."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from models import features  # pylint: disable=g-import-not-at-top
  records = example_files.sorted_records(pattern)
  if len(records) > sample:
    keep = np.sort(np.random.default_rng(seed).choice(len(records), sample, replace=False))
    records = records[keep]
  names = space.user_tower_features + space.item_tower_features
  raw_spec = tft_output.raw_feature_spec()
  raw_spec = {name: raw_spec[name] for name in names}
  transform = tft_output.transform_features_layer()
  parts = []
  for start in range(0, len(records), _BATCH):
    raw = tf.io.parse_example(records[start:start + _BATCH], raw_spec)
    parts.append(features.dense_model_inputs(transform(raw), space, names))
  return {name: tf.concat([p[name] for p in parts], axis=0) for name in names}


# ---- the computation -------------------------------------------------------------------

def _batches(inputs: dict, batch_size: int):
  rows = int(next(iter(inputs.values())).shape[0])
  for start in range(0, rows, batch_size):
    yield start, {name: value[start:start + batch_size] for name, value in inputs.items()}


def scenario_indices(inputs: dict, scenarios: Sequence[str]) -> np.ndarray:
  """Each exposure's scenario index: its place in `scenarios`, len(scenarios) if none."""
  position = {s: i for i, s in enumerate(scenarios)}
  raw = inputs['scenario']
  raw = (raw.numpy() if hasattr(raw, 'numpy') else np.asarray(raw)).reshape(-1)
  return np.array([position.get(v.decode() if isinstance(v, bytes) else str(v),
                                len(scenarios)) for v in raw])


def _mean(total: np.ndarray, count) -> np.ndarray:
  count = np.asarray(count, dtype=np.float64)
  with np.errstate(invalid='ignore', divide='ignore'):
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def mdl_attention(model, inputs: dict, batch_size: int = _BATCH) -> dict:
  """MDL's attention over the feature tokens, per block, averaged over the heads:

      task[l]          [N_t, N_f]   each task token, over every exposure
      scenario[l]      [S', N_f]    the token of scenario s over the exposures of s; the
                                    global token (last row, with use_global_token) over
                                    every exposure. NaN for a scenario with no exposure.
      scenario_all[l]  [S', N_f]    every scenario token over every exposure

  Rows sum to 1 (softmax over the feature tokens). Kinds that do not attend (ablations)
  are left out.
  """
  scenarios = tuple(model.feature_space.scenarios)
  index = scenario_indices(inputs, scenarios)
  totals, counts = None, np.bincount(index, minlength=len(scenarios) + 1)
  for start, batch in _batches(inputs, batch_size):
    own = index[start:start + batch_size]
    for layer, scores in enumerate(model.attention_scores(batch)):
      if totals is None:
        totals = [{} for _ in range(model.num_layers)]
      for kind, attention in scores.items():
        a = attention.numpy().astype(np.float64).mean(axis=1)  # [b, N_kind, N_f]
        t = totals[layer]
        t[f'{kind}_all'] = t.get(f'{kind}_all', 0) + a.sum(axis=0)
        if kind == 'scenario':
          per_own = np.zeros(a.shape[1:])
          for s in range(len(scenarios)):  # the served scenarios' own tokens
            per_own[s] = a[own == s, s].sum(axis=0)
          if a.shape[1] > len(scenarios):  # the global token: every exposure
            per_own[-1] = a[:, -1].sum(axis=0)
          t['scenario_own'] = t.get('scenario_own', 0) + per_own
  rows = int(index.shape[0])
  layers = []
  for t in totals or []:
    layer = {}
    if 'task_all' in t:
      layer['task'] = t['task_all'] / rows
    if 'scenario_all' in t:
      own_counts = list(counts[:len(scenarios)])
      if t['scenario_all'].shape[0] > len(scenarios):
        own_counts.append(rows)
      layer['scenario'] = _mean(t['scenario_own'], np.array(own_counts)[:, None])
      layer['scenario_all'] = t['scenario_all'] / rows
    layers.append(layer)
  scenario_tokens = list(scenarios) + ([GLOBAL] if getattr(model, 'use_global_token', True)
                                       else [])
  return {'feature_tokens': list(model.group_names()), 'tasks': list(model.tasks),
          'scenario_tokens': scenario_tokens, 'exposures': rows,
          'exposures_per_scenario': {s: int(c) for s, c in
                                     zip(list(scenarios) + [OTHER], counts)},
          'layers': layers}


def mtmixatt_routing(model, inputs: dict, batch_size: int = _BATCH) -> dict:
  """MTmixAtt's sparse-expert routing, per block: routing[l] [R, E_s], the share of the
  routing decisions (each token's top_k experts, c / top_k with c [B, N, E_s] 0/1) of each
  scenario's exposures (rows: the served scenarios, `other` when some exposure's scenario is
  not served, then `all`) that go to each expert. Rows sum to 1 over the experts; NaN for
  a served scenario without exposures."""
  scenarios = tuple(model.feature_space.scenarios)
  index = scenario_indices(inputs, scenarios)
  groups = len(scenarios) + 1
  totals = None
  for start, batch in _batches(inputs, batch_size):
    own = index[start:start + batch_size]
    for layer, c in enumerate(model.routing_choices(batch)):
      per_exposure = c.numpy().astype(np.float64).mean(axis=1) / model.top_k  # [b, E_s]
      if totals is None:
        totals = np.zeros([model.num_layers, groups, per_exposure.shape[1]])
      np.add.at(totals[layer], own, per_exposure)
  counts = np.bincount(index, minlength=groups)
  names = list(scenarios) + ([OTHER] if counts[-1] else []) + [ALL]
  layers = []
  for t in totals if totals is not None else []:
    rows = _mean(t, counts[:, None])
    if not counts[-1]:
      rows = rows[:-1]
    layers.append(np.concatenate([rows, t.sum(axis=0, keepdims=True) / counts.sum()]))
  return {'scenarios': names, 'experts': int(model.num_experts), 'top_k': int(model.top_k),
          'exposures': int(counts.sum()),
          'exposures_per_scenario': {s: int(c) for s, c in
                                     zip(list(scenarios) + [OTHER], counts)},
          'layers': layers}


# ---- the figures -----------------------------------------------------------------------

def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _heat_map(ax, values: np.ndarray, rows: Sequence[str], columns: Sequence[str],
              title: str, vmax: float):
  image = ax.imshow(np.ma.masked_invalid(values), cmap='viridis', vmin=0, vmax=vmax,
                    aspect='auto')
  ax.set_xticks(range(len(columns)), columns, rotation=35, ha='right', fontsize=7)
  ax.set_yticks(range(len(rows)), rows, fontsize=7)
  for i in range(values.shape[0]):
    for j in range(values.shape[1]):
      if np.isfinite(values[i, j]):
        ax.text(j, i, f'{values[i, j]:.2f}', ha='center', va='center', fontsize=6,
                color='white' if values[i, j] < 0.6 * vmax else 'black')
  ax.set_title(title, fontsize=8)
  return image


def _label(scenario: str, result: dict) -> str:
  """'tab <value>' (or global, all, other) and the exposures its row averages."""
  name = scenario if scenario in (GLOBAL, ALL, OTHER) else f'tab {scenario}'
  count = (result['exposures'] if scenario in (GLOBAL, ALL) else
           result['exposures_per_scenario'][scenario])
  return f'{name} (n={count:,})'


def plot_mdl_attention(result: dict, path: str, title: str = '') -> None:
  """One row per block: the task tokens' and the scenario tokens' attention."""
  plt = _pyplot()
  layers = result['layers']
  kinds = [k for k in ('task', 'scenario') if layers and k in layers[0]]
  vmax = max(float(np.nanmax(layer[k])) for layer in layers for k in kinds)
  fig, axes = plt.subplots(len(layers), len(kinds), squeeze=False, layout='constrained',
                           figsize=(4.4 * len(kinds), 1.0 + 2.6 * len(layers)))
  for l, layer in enumerate(layers):
    for ax, kind in zip(axes[l], kinds):
      values = np.asarray(layer[kind], dtype=np.float64)
      rows = (result['tasks'] if kind == 'task' else
              [_label(s, result) for s in result['scenario_tokens']])
      image = _heat_map(ax, values, rows, result['feature_tokens'],
                        f'block {l + 1}: {kind} tokens', vmax)
    fig.colorbar(image, ax=list(axes[l]), fraction=0.03, pad=0.02)
  averaged = (f'Task tokens: mean over heads and all {result["exposures"]:,} exposures. '
              f'Scenario token s: mean over heads and the exposures of scenario s'
              + ('; global token: all exposures.' if GLOBAL in result['scenario_tokens']
                 else '.'))
  fig.suptitle((title or 'MDL: attention of the domain tokens over the feature tokens')
               + '\n' + averaged, fontsize=8)
  fig.savefig(path, dpi=130)
  plt.close(fig)


def plot_mtmixatt_routing(result: dict, path: str, title: str = '') -> None:
  """One heat map per block: scenario x sparse expert."""
  plt = _pyplot()
  layers = result['layers']
  fig, axes = plt.subplots(1, len(layers), squeeze=False, layout='constrained',
                           figsize=(1.5 + (0.7 * result['experts'] + 1.2) * len(layers),
                                    1.4 + 0.32 * len(result['scenarios'])))
  for l, (ax, values) in enumerate(zip(axes[0], layers)):
    values = np.asarray(values, dtype=np.float64)
    image = _heat_map(ax, values, [_label(s, result) for s in result['scenarios']],
                      [f'expert {e}' for e in range(result['experts'])],
                      f'block {l + 1}', 1.0)
  fig.colorbar(image, ax=list(axes[0]), fraction=0.03, pad=0.02)
  fig.suptitle(title or (f'MTmixAtt: share of routing decisions per sparse expert (top_k '
                         f'{result["top_k"]})\nover the tokens and each scenario\'s '
                         f'exposures'), fontsize=8)
  fig.savefig(path, dpi=130)
  plt.close(fig)


def to_json(value):
  """numpy arrays -> nested lists, NaN -> None."""
  if isinstance(value, dict):
    return {k: to_json(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [to_json(v) for v in value]
  if isinstance(value, np.ndarray):
    return to_json(value.tolist())
  if isinstance(value, float) and not np.isfinite(value):
    return None
  return value


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--results-dir', default='outputs/experiments/rankers')
  parser.add_argument('--output-dir', default='docs/rankers')
  parser.add_argument('--seed', type=int, default=42)
  parser.add_argument('--sample', type=int, default=4096)
  args = parser.parse_args(argv)
  from core import layout  # pylint: disable=g-import-not-at-top
  from experiments import harness  # pylint: disable=g-import-not-at-top
  paths = configs.PipelineConfig()
  results_dir, output_dir = paths.path(args.results_dir), paths.path(args.output_dir)
  os.makedirs(output_dir, exist_ok=True)
  cache, report = {}, {'seed': args.seed, 'jobs': {}}
  models = {}
  for name in (MDL_JOB, MTMIXATT_JOB):
    directory = find_job(results_dir, args.seed, name)
    config, summary = job_config(directory)
    data = harness.RunData.from_dict(summary['data'])  # the run the job trained on
    key = (data.transform_graph, data.examples)
    if key not in cache:
      space, tft_output = rankers._space(data, config)  # pylint: disable=protected-access
      cache[key] = space, test_inputs(tft_output, space,
                                      layout.split_pattern(data.examples, layout.TEST),
                                      args.sample, args.seed)
    space, inputs = cache[key]
    models[name] = load_ranker(directory, space, summary['tasks'], inputs), inputs
    report['jobs'][name] = {'directory': directory, 'epoch_kept': summary.get('epoch_kept'),
                            'overrides': summary['overrides']}
    print(f'{name}: {directory} (epoch {summary.get("epoch_kept")})', flush=True)
  model, inputs = models[MDL_JOB]
  report['mdl_attention'] = attention = mdl_attention(model, inputs)
  model, inputs = models[MTMIXATT_JOB]
  report['mtmixatt_routing'] = routing = mtmixatt_routing(model, inputs)
  sample = f'{attention["exposures"]:,} test exposures, seed {args.seed}'
  plot_mdl_attention(attention, os.path.join(output_dir, 'mdl_attention.png'),
                     f'MDL: attention of the task and scenario tokens over the feature '
                     f'tokens ({sample})')
  plot_mtmixatt_routing(routing, os.path.join(output_dir, 'mtmixatt_routing.png'),
                        f'MTmixAtt: share of each scenario\'s routing decisions that go '
                        f'to each sparse expert (top_k {routing["top_k"]})\nover the tokens '
                        f'and the scenario\'s exposures ({sample})')
  with open(os.path.join(output_dir, 'ranker_figures.json'), 'w') as f:
    json.dump(to_json(report), f, indent=1)
  print(f'written to {output_dir}: mdl_attention.png, mtmixatt_routing.png, '
        f'ranker_figures.json')
  return 0


if __name__ == '__main__':
  sys.exit(main())
