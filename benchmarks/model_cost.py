"""Prints each model's parameters, FLOPs per example and training step time.

    python -m benchmarks.model_cost --feature-space FEATURE_SPACE.json [--steps 10]

FEATURE_SPACE.json is the feature space of a trained model (vocabulary sizes, list lengths,
scenarios; the Trainer writes it next to the model). Inputs are random ids and values of
the right shapes, so the figures are the models' cost, not their quality. Step time is a
full training step (forward, backward, Adam) on `batch_size` anchors plus
`negative_ratio` random negatives each, as the Trainer runs it; the distilled student's
step includes the frozen teacher's forward pass.
"""

import argparse

import tensorflow as tf

from core import config as configs
from models import build
from models import features
from models import losses
from models import model_stats


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--feature-space', required=True)
  parser.add_argument('--steps', type=int, default=10)
  args = parser.parse_args(argv)
  with open(args.feature_space) as f:
    space = features.FeatureSpace.from_json(f.read())
  training = configs.TrainingConfig()
  rows = training.batch_size * (1 + training.negative_ratio)
  batch, labels = model_stats.random_training_batch(space, training.batch_size,
                                                    training.negative_ratio)
  distillation = configs.DistillationConfig()
  teacher = build.build_teacher(distillation, configs.ModelConfig(), configs.RankerConfig(),
                                space)
  teacher(batch)
  print(f'threads: {tf.config.threading.get_inter_op_parallelism_threads() or "default"}, '
        f'batch: {training.batch_size} anchors + {training.negative_ratio} negatives each '
        f'= {rows} rows')
  print(f'{"model":<26} {"params":>10} {"user tower":>12} {"item tower":>12} '
        f'{"MFLOPs/ex":>10} {"step s":>8}')
  rows_out = {}
  variants = [('dsmoe (distilled)', configs.ModelConfig(), True)]
  variants += [(name, configs.ModelConfig(model=name), False) for name in build.STUDENTS]
  for label, model_config, distill in variants:
    student = build.build_student(model_config, space, teacher if distill else None,
                                  distillation.weight)
    student(batch)
    user = model_stats.flops_per_example(student.user_tower, space.user_tower_features,
                                         space)
    item = model_stats.flops_per_example(student.item_tower, space.item_tower_features,
                                         space)
    params = model_stats.parameter_count(student.user_tower, student.item_tower)
    student.compile(_optimizer())
    seconds = model_stats.step_seconds(student, batch, labels, args.steps)
    rows_out[label] = seconds
    print(f'{label:<26} {params:>10,} {user / 1e6:>11.3f}M {item / 1e6:>11.3f}M '
          f'{(user + item) / 1e6:>10.3f} {seconds:>8.3f}')
  teacher_flops = model_stats.flops_per_example(teacher, teacher.feature_names, space)
  teacher.trainable = True  # the teacher trains first, with plain BCE
  teacher.compile(_optimizer(), loss=losses.per_example_binary_cross_entropy)
  teacher_seconds = model_stats.step_seconds(teacher, batch, labels, args.steps)
  print(f'{"teacher (" + distillation.teacher + ")":<26} '
        f'{model_stats.parameter_count(teacher):>10,} {"":>12} {"":>12} '
        f'{teacher_flops / 1e6:>10.3f} {teacher_seconds:>8.3f}')
  dnn = rows_out['two_tower_dnn']
  print(f'step time ratio to two_tower_dnn: dsmoe {rows_out["dsmoe"] / dnn:.2f}x, '
        f'dsmoe distilled {rows_out["dsmoe (distilled)"] / dnn:.2f}x')


def _optimizer() -> tf.keras.optimizers.Optimizer:
  training = configs.TrainingConfig()
  return tf.keras.optimizers.Adam(training.learning_rate, weight_decay=training.weight_decay)


if __name__ == '__main__':
  main()
