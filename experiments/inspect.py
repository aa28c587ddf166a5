"""The DSMOE case study (the paper's Figure 4) of a trained model or of a release.

    python -m experiments.inspect (--release DIR | --model DIR) [--output FILE.png]

Reads the scenario profile the Trainer writes into training_summary.json for a DSMOE
student (models/towers/dsmoe.py: gate weights alpha and, per SAP layer, the coefficients
b_s of each served scenario) and shows
  (a) the cosine similarity of the scenarios' b_s, one heat map per SAP layer (the K
      experts' and the forward layer's), and
  (b) the gate weights alpha per scenario (bars, one per expert).
Prints both as tables; with --output, writes the figure. A release keeps the training
summary of its served model, so this works on any release of a DSMOE student.
"""

import argparse
import json
import os
import sys

import numpy as np

from core import layout


def load_profile(directory: str) -> dict:
  """The scenario profile in a model or release directory's training summary."""
  path = os.path.join(directory, layout.TRAINING_SUMMARY_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} does not exist: pass a release directory or a '
                            f'trained model directory (it holds {layout.TRAINING_SUMMARY_FILE})')
  with open(path) as f:
    summary = json.load(f)
  if 'scenario_profile' not in summary:
    raise ValueError(f'{path} has no scenario_profile: the model is not a DSMOE-style '
                     f'student (model.model dsmoe or mmoe), or was trained before the '
                     f'Trainer wrote one')
  return summary['scenario_profile']


def cosine_similarities(coefficients: list) -> np.ndarray:
  """[S, S] cosine similarity of the rows b_s of an [S, R] matrix."""
  b = np.asarray(coefficients, np.float64)
  norms = np.linalg.norm(b, axis=1, keepdims=True)
  unit = b / np.where(norms > 0, norms, 1.0)
  return unit @ unit.T


def describe(profile: dict) -> str:
  scenarios = profile['scenarios']
  lines = ['gate weights alpha (rows: scenario; columns: expert)',
           '  scenario ' + ' '.join(f'{f"expert {k}":>9}' for k in
                                    range(len(profile['gate_weights'][0])))]
  for s, row in zip(scenarios, profile['gate_weights']):
    lines.append(f'  {s:>8} ' + ' '.join(f'{w:>9.3f}' for w in row))
  for layer, coefficients in profile['scenario_coefficients'].items():
    lines.append(f'cosine similarity of b_s, SAP layer {layer}')
    lines.append('  ' + ' ' * 8 + ' '.join(f'{s:>7}' for s in scenarios))
    for s, row in zip(scenarios, cosine_similarities(coefficients)):
      lines.append(f'  {s:>7} ' + ' '.join(f'{c:>7.3f}' for c in row))
  return '\n'.join(lines)


def case_study_figure(profile: dict, path: str, title: str = '') -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  scenarios = [f'tab {s}' for s in profile['scenarios']]
  layers = profile['scenario_coefficients']
  fig, axes = plt.subplots(1, len(layers) + 1, figsize=(3.2 * (len(layers) + 1) + 1.5, 3.4),
                           gridspec_kw={'width_ratios': [1] * len(layers) + [1.6]})
  axes = np.atleast_1d(axes)
  for ax, (layer, coefficients) in zip(axes, layers.items()):
    image = ax.imshow(cosine_similarities(coefficients), vmin=-1, vmax=1, cmap='RdBu_r')
    ax.set_xticks(range(len(scenarios)), scenarios, rotation=45, fontsize=7)
    ax.set_yticks(range(len(scenarios)), scenarios, fontsize=7)
    ax.set_title(f'(a) cos(b_s), SAP {layer}', fontsize=8)
    for i, row in enumerate(cosine_similarities(coefficients)):
      for j, value in enumerate(row):
        ax.text(j, i, f'{value:.2f}', ha='center', va='center', fontsize=6)
  if layers:
    fig.colorbar(image, ax=axes[:len(layers)].tolist(), shrink=0.7)
  gates = np.asarray(profile['gate_weights'])
  ax = axes[-1]
  width = 0.8 / gates.shape[1]
  for k in range(gates.shape[1]):
    ax.bar(np.arange(len(scenarios)) + (k - (gates.shape[1] - 1) / 2) * width, gates[:, k],
           width, label=f'expert {k}')
  ax.set_xticks(range(len(scenarios)), scenarios, fontsize=7)
  ax.set_ylim(0, 1)
  ax.set_ylabel('gate weight alpha', fontsize=8)
  ax.set_title('(b) expert weights per scenario', fontsize=8)
  ax.legend(fontsize=6)
  if title:
    fig.suptitle(title, fontsize=9)
  fig.savefig(path, dpi=130, bbox_inches='tight')
  plt.close(fig)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument('--release', help='a release directory (outputs/releases/latest)')
  source.add_argument('--model', help="a trained model directory (the Trainer's output)")
  parser.add_argument('--output', help='write the figure to this PNG file')
  args = parser.parse_args(argv)
  directory = args.release or args.model
  try:
    profile = load_profile(directory)
  except (FileNotFoundError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(describe(profile))
  if args.output:
    case_study_figure(profile, args.output, title=os.path.abspath(directory))
    print(f'figure: {args.output}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
