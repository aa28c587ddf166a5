"""tf.distribute for the retrieval Trainer (training/trainer.py): the strategy, values
gathered from every worker, and where each worker writes.

training.strategy (core/config.py TrainingConfig):
  'default'                one device;
  'mirrored'               every local device of one machine;
  'multi_worker_mirrored'  MultiWorkerMirroredStrategy over the workers TF_CONFIG names
                           (Vertex AI sets it on each replica of a CustomJob; see
                           docs/training/multi_worker.md).

With several workers (TensorFlow's multi-worker Keras guide):
  * the strategy is the first TensorFlow call of the process: it sets up the collective
    ops, which TensorFlow only allows before any op has run (`create_strategy` says so
    when it is too late, e.g. in the local runner's single process);
  * each worker reads its own shard of the input (the trainer's
    distribute_datasets_from_function), `training.batch_size` is the global batch, split
    evenly among the replicas;
  * every worker saves (saving may read variables across workers): the chief to the real
    paths, the others to a temporary directory of their own that is removed at the end
    (`WorkerOutputs`); Keras' BackupAndRestore and TensorBoard do the same with their
    directories.
"""

import os
import shutil
import tempfile

import tensorflow as tf

from core import config as configs


def create_strategy(name: str) -> tf.distribute.Strategy:
  if name == 'mirrored':
    return tf.distribute.MirroredStrategy()
  if name == 'multi_worker_mirrored':
    try:
      return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as e:  # "Collective ops must be configured at program startup"
      raise configs.ConfigError(
          f'training.strategy=multi_worker_mirrored needs a Trainer process of its own '
          f'that creates the strategy before any TensorFlow op (TensorFlow: {e}). Run the '
          f'Trainer in its own process per worker, e.g. on Vertex AI with '
          f'training.vertex.enabled (docs/training/multi_worker.md); the local runner '
          f'runs every component in one process') from None
  return tf.distribute.get_strategy()


def check_global_batch(strategy: tf.distribute.Strategy, batch_size: int) -> None:
  """training.batch_size is the global batch: each replica takes an equal part."""
  if batch_size % strategy.num_replicas_in_sync:
    raise configs.ConfigError(
        f'training.batch_size ({batch_size}) is the global batch and must divide evenly '
        f'among the {strategy.num_replicas_in_sync} replicas')


def num_workers(strategy: tf.distribute.Strategy) -> int:
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return 1
  return strategy.num_replicas_in_sync // len(strategy.extended.worker_devices)


def per_worker(strategy: tf.distribute.Strategy, value: int) -> list[int]:
  """Every worker's `value`, in the workers' order (chief first): a collective, so every
  worker must call it."""
  if num_workers(strategy) == 1:
    return [value]
  gathered = strategy.gather(strategy.run(lambda: tf.constant([value], tf.int64)), axis=0)
  return [int(v) for v in gathered.numpy()[::len(strategy.extended.worker_devices)]]


def barrier(strategy: tf.distribute.Strategy) -> None:
  """Returns once every worker has called it (a no-op with one worker)."""
  per_worker(strategy, 0)


class WorkerOutputs:
  """Where this worker writes what the chief writes to `directory`: `directory` itself on
  the chief (or with one worker), else the same path under a temporary directory of this
  worker, which `remove` deletes."""

  def __init__(self, strategy: tf.distribute.Strategy):
    self.chief = strategy.extended.should_checkpoint
    self._temp = None if self.chief else tempfile.mkdtemp(
        prefix=f'dsmoe-workertemp-{strategy.cluster_resolver.task_id}-')

  def path(self, directory: str) -> str:
    if self.chief:
      return directory
    return os.path.join(self._temp, directory.replace('://', '/').lstrip('/'))

  def remove(self) -> None:
    if self._temp:
      shutil.rmtree(self._temp, ignore_errors=True)
