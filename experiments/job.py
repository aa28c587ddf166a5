"""One (variant, preset, seed) of the reproduction, trained and scored in its own process.

    python -m experiments.job JOB_DIR      (experiments.reproduce starts these)

JOB_DIR/spec.json (written by the scheduler) names the data (the artifacts of the pipeline
run, resolved once for every job), the preset, the overrides, the teacher to distil from
and the code's fingerprint. The job trains with the Trainer's run_fn (early stopping
on the validation window, through experiments/harness.py), then scores the test window
with the Evaluator's code, keeping each query's recall for paired comparisons:

    JOB_DIR/model/               the exported towers and training_summary.json
    JOB_DIR/test_scores.json     Recall@K per scenario with bootstrap intervals
    JOB_DIR/test_per_query.npz   user_id, scenario, and <system>@<k> per query
    JOB_DIR/process.json         the process's peak resident memory

A process per job isolates TensorFlow's state, lets two run side by side on two cores,
and has a peak memory of its own. A job whose files exist is
not run again; one killed in training resumes from its checkpoints.
"""

import json
import os
import sys

import numpy as np

SPEC_FILE = 'spec.json'
SCORES_FILE = 'test_scores.json'
PER_QUERY_FILE = 'test_per_query.npz'
PROCESS_FILE = 'process.json'  # the job process's peak memory
MODEL_DIR = 'model'


def finished(directory: str) -> bool:
  return all(os.path.exists(os.path.join(directory, name))
             for name in (SCORES_FILE, PER_QUERY_FILE))


def run(directory: str) -> None:
  # Imported here: the scheduler imports this module for its file names only.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from core import config as configs  # pylint: disable=g-import-not-at-top
  from core import layout  # pylint: disable=g-import-not-at-top
  from experiments import harness  # pylint: disable=g-import-not-at-top

  with open(os.path.join(directory, SPEC_FILE)) as f:
    spec = json.load(f)
  threads = spec.get('threads', 0)
  if threads:  # before any TensorFlow op
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
  harness.show_progress()
  data = harness.RunData.from_dict(spec['data'])
  config = configs.load_config('', spec['overrides'], spec['preset'])
  model_dir = harness.train(data, config, directory, teacher=spec.get('teacher'))
  result = harness.score(data, model_dir, layout.TEST, config.evaluation, per_query=True)
  per_query = result.pop('per_query')
  arrays = {'user_id': per_query.pop('user_id'), 'scenario': per_query.pop('scenario')}
  for system, by_k in per_query.items():
    for k, values in by_k.items():
      arrays[f'{system}@{k}'] = np.asarray(values, np.float32)
  np.savez_compressed(os.path.join(directory, PER_QUERY_FILE), **arrays)
  with open(os.path.join(directory, PROCESS_FILE), 'w') as f:
    json.dump({'peak_rss_mb': peak_rss_mb()}, f)
  with open(os.path.join(directory, SCORES_FILE + '.tmp'), 'w') as f:
    json.dump(result, f)
  os.replace(os.path.join(directory, SCORES_FILE + '.tmp'),  # written last: the job is done
             os.path.join(directory, SCORES_FILE))


def peak_rss_mb() -> float:
  """This process's peak resident memory (VmHWM). Not getrusage's ru_maxrss: a child's
  counts the memory of the parent it was forked from."""
  with open('/proc/self/status') as f:
    return next(int(line.split()[1]) for line in f if line.startswith('VmHWM')) / 1024


if __name__ == '__main__':
  run(sys.argv[1])
