"""The ranking evaluation as a Markdown table and as the pipeline's console summary (from
evaluation.evaluate's result)."""

from typing import Optional

from ranking import evaluation


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


def format_summary(result: dict) -> str:
  """The RankingEvaluator's summary: per scenario and task, the ranker's AUC and GAUC next
  to popularity's (and the previous blessed ranker's), the paired difference to popularity
  with its interval, then the blessing's verdict and reasons."""
  ranker, popularity = evaluation.RANKER, evaluation.POPULARITY
  previous = evaluation.PREVIOUS if evaluation.PREVIOUS in result['metrics'] else None
  difference = result['differences'][f'{ranker}_minus_{popularity}']
  level = f'{result["bootstrap"]["confidence"]:.0%}'
  lines = [f'Ranking on the test split: the ranker against item popularity per task '
           f'({level} intervals, bootstrap over users)']
  header = f'  {"scenario":>8} {"task":>10} {"examples":>9}'
  for metric in ('AUC', 'GAUC'):
    header += f' {"ranker " + metric:>12} {"popular":>8}'
    header += f' {"previous":>9}' if previous else ''
    header += f' {"ranker - popular":>27}'
  lines.append(header)
  for scenario, counts in result['counts'].items():
    for task in result['tasks']:
      row = f'  {scenario:>8} {task:>10} {counts["examples"]:>9,}'
      for metric in ('auc', 'gauc'):
        cell = lambda system: result['metrics'][system][scenario][task][metric]
        row += f' {_point(cell(ranker)):>12} {_point(cell(popularity)):>8}'
        row += f' {_point(cell(previous)):>9}' if previous else ''
        row += f' {_with_interval(difference[scenario][task][metric], True):>27}'
      lines.append(row)
  if result.get('previous_blessed_note'):
    lines.append(f'  {result["previous_blessed_note"]}')
  verdict = result.get('blessing')
  if verdict:
    lines.append('  ranker BLESSED' if verdict['blessed'] else
                 '  ranker NOT BLESSED: ' + '; '.join(verdict['reasons']))
    lines.append(f'  rule: {verdict["rule"]}')
    if verdict.get('untested'):
      lines.append('  not tested (undefined): ' + '; '.join(verdict['untested']))
  return '\n'.join(lines)


def _point(interval: Optional[dict]) -> str:
  return 'n/a' if interval is None else f'{interval["point"]:.4f}'
