"""The static half of Table 3: parameters, FLOPs per example and step time of each model.

    python -m experiments.cost REQUEST.json     (experiments.reproduce writes the request)

REQUEST.json: {"feature_space": a trained model's feature_space.json, "preset",
"overrides": base overrides, "variants": [[name, [overrides]], ...], "threads",
"output": where to write}. Every model is built on that feature space and timed on the
same random batch (the configuration's batch_size anchors, each with negative_ratio
negatives, shaped as the Trainer's batches), in a process of its own with the threads
the training jobs had, while nothing else runs. Distilled models include the frozen
teacher's forward pass; the teacher's own training step is a row of its own.
"""

import json
import sys

import tensorflow as tf

from core import config as configs
from models import build
from models import features
from models import losses
from models import model_stats

STEPS = 10
TEACHER = 'teacher'


def measure(request: dict) -> dict:
  with open(request['feature_space']) as f:
    space = features.FeatureSpace.from_json(f.read())
  result = {}
  teacher = None
  for name, overrides in request['variants']:
    config = configs.load_config('', request['overrides'] + overrides, request['preset'])
    training = config.training
    batch, labels = model_stats.random_training_batch(space, training.batch_size,
                                                      training.negative_ratio)
    if teacher is None:
      teacher = build.build_teacher(config.distillation, config.model, config.ranker, space)
      teacher(batch)
      result[TEACHER] = _teacher_cost(teacher, space, batch, labels, training)
    student = build.build_student(config.model, space,
                                  teacher if config.distillation.enabled else None,
                                  config.distillation.weight)
    student(batch)
    user = model_stats.flops_per_example(student.user_tower, space.user_tower_features,
                                         space)
    item = model_stats.flops_per_example(student.item_tower, space.item_tower_features,
                                         space)
    student.compile(_optimizer(training))
    result[name] = {
        'parameters': model_stats.parameter_count(student.user_tower, student.item_tower),
        'user_tower_parameters': model_stats.parameter_count(student.user_tower),
        'user_mflops': user / 1e6, 'item_mflops': item / 1e6,
        'step_seconds': model_stats.step_seconds(student, batch, labels, STEPS),
        'distilled': config.distillation.enabled,
        'batch': [training.batch_size, training.negative_ratio]}
    print(f'{name}: {result[name]}', flush=True)
  return result


def _teacher_cost(teacher, space, batch, labels, training) -> dict:
  flops = model_stats.flops_per_example(teacher, teacher.feature_names, space)
  teacher.compile(_optimizer(training), loss=losses.per_example_binary_cross_entropy)
  cost = {'parameters': model_stats.parameter_count(teacher), 'mflops': flops / 1e6,
          'step_seconds': model_stats.step_seconds(teacher, batch, labels, STEPS)}
  teacher.trainable = False  # as the students see it
  return cost


def _optimizer(training: configs.TrainingConfig) -> tf.keras.optimizers.Optimizer:
  return tf.keras.optimizers.Adam(training.learning_rate, weight_decay=training.weight_decay)


def main(path: str) -> None:
  with open(path) as f:
    request = json.load(f)
  if request.get('threads'):
    tf.config.threading.set_intra_op_parallelism_threads(request['threads'])
    tf.config.threading.set_inter_op_parallelism_threads(request['threads'])
  result = measure(request)
  with open(request['output'], 'w') as f:
    json.dump(result, f, indent=2)


if __name__ == '__main__':
  main(sys.argv[1])
