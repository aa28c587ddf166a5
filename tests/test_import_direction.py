"""The floor plan: every module imports only what import_rules.yaml allows its package.

Imports are read with `ast` (module level and inside functions), so the check needs no
import of the code and sees lazy imports too.
"""

import ast
import os

import yaml

from tests.conftest import REPO_ROOT

RULES_FILE = os.path.join(REPO_ROOT, 'import_rules.yaml')
NOT_CHECKED = {'tests'}  # tests may import anything


def project_packages(root: str) -> set[str]:
  """Top-level directories of `root` that are Python packages."""
  return {name for name in os.listdir(root)
          if os.path.isfile(os.path.join(root, name, '__init__.py'))}


def modules(root: str, package: str):
  """(dotted module name, path) of every .py file of a package."""
  for directory, _, files in os.walk(os.path.join(root, package)):
    for name in sorted(files):
      if name.endswith('.py'):
        path = os.path.join(directory, name)
        parts = os.path.relpath(path, root)[:-3].split(os.sep)
        if parts[-1] == '__init__':
          parts = parts[:-1]
        yield '.'.join(parts), path


def imported_modules(path: str, root: str, packages: set[str]) -> list[tuple[int, str]]:
  """(line, dotted name) of every import of a project module in a file; `from a import b`
  names a.b when that is a module or package of the project, else a."""
  tree = ast.parse(open(path, encoding='utf-8').read(), path)
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      names = []
      for alias in node.names:
        candidate = f'{node.module}.{alias.name}'
        relative = os.path.join(root, *candidate.split('.'))
        is_module = os.path.isfile(relative + '.py') or os.path.isdir(relative)
        names.append(candidate if is_module else node.module)
    else:
      continue
    found += [(node.lineno, name) for name in names if name.split('.')[0] in packages]
  return found


def unit_of(module: str, rules: dict) -> str:
  """The rule key a module falls under: `pkg` or, for a `pkg.*` key, `pkg.<child>`."""
  parts = module.split('.')
  for key in rules:
    if key.endswith('.*') and parts[0] == key[:-2]:
      return '.'.join(parts[:2])
    if parts[0] == key:
      return key
  return ''


def _within(module: str, prefix: str) -> bool:
  return module == prefix or module.startswith(prefix + '.')


def violations(root: str, rules: dict) -> list[str]:
  """Every import against the rules, and every package the rules do not mention."""
  packages = project_packages(root)
  problems = [f'package {p!r} is not in {os.path.basename(RULES_FILE)}; add it with the '
              f'packages it may import' for p in sorted(packages - NOT_CHECKED)
              if not unit_of(p + '.x', rules)]
  for package in sorted(packages - NOT_CHECKED):
    for module, path in modules(root, package):
      unit = unit_of(module, rules)
      if not unit:
        continue
      key = unit if unit in rules else unit.split('.')[0] + '.*'
      allowed = rules[key]
      for line, target in imported_modules(path, root, packages):
        if _within(target, unit) or any(_within(target, a) for a in allowed):
          continue
        if module == package and _within(target, package):
          continue  # a package's __init__ may import its own modules
        problems.append(f'{os.path.relpath(path, root)}:{line}: {module} imports {target}; '
                        f'{key} may import only {", ".join(allowed) or "nothing of the project"}')
  return problems


def test_every_module_imports_only_in_the_allowed_direction():
  with open(RULES_FILE, encoding='utf-8') as f:
    rules = yaml.safe_load(f)
  assert violations(REPO_ROOT, rules) == []


def _package(root, name, files):
  os.makedirs(root / name, exist_ok=True)
  (root / name / '__init__.py').write_text(files.pop('__init__.py', ''))
  for file_name, text in files.items():
    (root / name / file_name).parent.mkdir(parents=True, exist_ok=True)
    (root / name / file_name).write_text(text)


def test_the_check_catches_upward_sideways_and_undeclared_imports(tmp_path):
  rules = {'core': [], 'models': ['core'], 'components.*': ['core', 'components.artifacts'],
           'serving': ['core']}
  _package(tmp_path, 'core', {'layout.py': 'X = 1\n',
                              'bad.py': 'def f():\n  from models import towers\n'})
  _package(tmp_path, 'models', {'towers.py': 'from core import layout\n'})
  _package(tmp_path, 'components', {
      'artifacts.py': '', 'a/__init__.py': '', 'a/executor.py': 'from components.b import x\n',
      'b/__init__.py': '', 'b/x.py': 'from components import artifacts\nimport core.layout\n'})
  _package(tmp_path, 'serving', {'cli.py': 'import components.a.executor\n'})
  _package(tmp_path, 'extra', {})
  found = violations(str(tmp_path), rules)
  assert [p.split(';')[0] for p in found] == [
      "package 'extra' is not in import_rules.yaml",  # undeclared package
      'components/a/executor.py:1: components.a.executor imports components.b.x',  # sideways
      'core/bad.py:2: core.bad imports models.towers',  # upward, inside a function
      'serving/cli.py:1: serving.cli imports components.a.executor']  # serving -> components
