"""The ranking evaluation as a Markdown table (from evaluation.evaluate's result)."""

from typing import Optional


def format_table(result: dict) -> str:
  """A Markdown table: one row per scenario (sorted, then 'all') and task; per system
  its AUC and GAUC with [lower, upper], then each system's paired difference from the
  reference (signed). Under the table, how the intervals were drawn."""
  systems, reference = result['systems'], result['reference']
  header = ['scenario', 'task', 'examples', 'positives', 'GAUC users']
  for system in systems:
    header += [f'{system} AUC', f'{system} GAUC']
  differences = list(result['differences'])
  for name in differences:
    label = name.replace('_minus_', ' − ')
    header += [f'{label} AUC', f'{label} GAUC']
  align = ['---', '---'] + ['---:'] * (len(header) - 2)
  lines = ['| ' + ' | '.join(header) + ' |', '| ' + ' | '.join(align) + ' |']
  for scenario, counts in result['counts'].items():
    for task in result['tasks']:
      row = [scenario, task, f'{counts["examples"]:,}', f'{counts["positives"][task]:,}',
             f'{counts["gauc_users"][task]:,}']
      for system in systems:
        cell = result['metrics'][system][scenario][task]
        row += [_with_interval(cell['auc'], False), _with_interval(cell['gauc'], False)]
      for name in differences:
        cell = result['differences'][name][scenario][task]
        row += [_with_interval(cell['auc'], True), _with_interval(cell['gauc'], True)]
      lines.append('| ' + ' | '.join(row) + ' |')
  boot = result['bootstrap']
  note = (f'[{boot["confidence"]:.0%} interval] by a Poisson bootstrap over users '
          f'({boot["resamples"]:,} resamples, seed {boot["seed"]}), shared by every system: '
          f'differences are paired.')
  if reference is not None:
    note += f' Differences are each system minus {reference}.'
  note += (' GAUC: the users\' AUCs weighted by their exposures, over the users with '
           'both classes. n/a: a class is missing.')
  return '\n'.join(lines + ['', note])


def _with_interval(interval: Optional[dict], signed: bool) -> str:
  if interval is None:
    return 'n/a'
  number = '{:+.4f}' if signed else '{:.4f}'
  text = number.format(interval['point'])
  if interval['lower'] is None:
    return text + ' [n/a]'
  return (f'{text} [{number.format(interval["lower"])}, '
          f'{number.format(interval["upper"])}]')
