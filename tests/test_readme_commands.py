"""Every serving command of the README runs as written against the fixture's release.

The commands are read from README.md's "Querying a release" section (its indented blocks,
continuation lines joined): `python -m serving ...` commands and `curl` calls. The release
path (outputs/releases/latest) becomes the fixture run's release, `.venv/bin/python` the
running interpreter, and the service's port a free one; the `serve` command is started as
written, the curl calls go to it, then it gets SIGTERM. A command exits 0 and prints JSON
(the file commands: writes its output file).
"""

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from serving.release import load_release
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.extended
README = os.path.join(REPO_ROOT, 'README.md')
SECTION = '## Querying a release'


def readme_commands() -> list[str]:
  text = open(README).read()
  section = text[text.index(SECTION):]
  section = section[:section.index('\n## ', len(SECTION))]
  commands, current = [], ''
  for line in section.splitlines():
    if not line.startswith('    ') or line.strip().startswith('#'):
      continue
    current += line.strip()
    if current.endswith('\\'):
      current = current[:-1] + ' '
      continue
    if re.match(r'(\.venv/bin/python -m serving|curl) ', current):
      commands.append(current)
    current = ''
  return commands


def test_the_readme_lists_the_commands_this_test_runs():
  commands = readme_commands()
  kinds = [(c.split()[0], c.split()[3] if c.startswith('.venv') else '') for c in commands]
  assert kinds.count(('curl', '')) == 2 and ('.venv/bin/python', 'serve') in kinds
  assert kinds.count(('.venv/bin/python', 'query')) == 2
  assert kinds.count(('.venv/bin/python', 'recommend')) == 2


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def test_readme_commands_run(fixture_pipeline_run, tmp_path):
  release = fixture_pipeline_run.release
  users = sorted(load_release(release, verify_checksums=False).snapshot)[:2]
  scenario = '1'  # the README's; a KuaiRand tab that the fixture has
  (tmp_path / 'requests.csv').write_text(
      f'user_id,scenario\n{users[0]},{scenario}\n{users[1]},{scenario}\n')
  port = _free_port()
  env = dict(os.environ, PYTHONPATH=REPO_ROOT)
  server, outputs = None, []
  try:
    for command in readme_commands():
      command = (command.replace('outputs/releases/latest', release)
                 .replace('.venv/bin/python', shlex.quote(sys.executable))
                 .replace('localhost:8000', f'127.0.0.1:{port}')
                 .replace('--port 8000', f'--port {port}'))
      if ' serve ' in command:
        log = open(tmp_path / 'service.log', 'w')
        server = subprocess.Popen(command, shell=True, cwd=tmp_path, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        _wait_ready(port, server, tmp_path / 'service.log')
        continue
      done = subprocess.run(command, shell=True, cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
      assert done.returncode == 0, (command, done.stderr[-3000:])
      output = re.search(r'--output (\S+)', command)
      if output:
        lines = (tmp_path / output.group(1)).read_text().splitlines()
        assert len(lines) == 2 and all('items' in json.loads(l) for l in lines), command
      else:
        answer = json.loads(done.stdout)
        outputs.append(answer)
        assert 'error' not in answer, (command, answer)
  finally:
    if server is not None:
      os.killpg(server.pid, signal.SIGTERM)
      server.wait(timeout=60)
  assert len(outputs) == 4  # two one-request CLI commands, two curl calls


def _wait_ready(port: int, server: subprocess.Popen, log) -> None:
  deadline = time.time() + 180
  while time.time() < deadline:
    assert server.poll() is None, log.read_text()
    try:
      with urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=5) as r:
        if r.status == 200:
          return
    except OSError:
      time.sleep(0.5)
  pytest.fail('the README\'s serve command did not become ready: ' + log.read_text())
