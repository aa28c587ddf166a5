"""Prints the rankers' cost and serving latency: parameters, FLOPs, training speed, p50/p99.

    python -m benchmarks.rankers [--output-dir outputs] [--candidates 200] [--requests 300]
                                 [--batch-size 1024] [--steps 10] [--dry-run]

For every ranker of core/config.RANKERS at the default RankerConfig, and the DCN-v2
teacher (models/build.build_teacher, default DistillationConfig and ModelConfig) as the
reference, on the FeatureSpace of the latest pipeline run under --output-dir (rebuilt as
experiments/rankers.py builds it: the run's Transform vocabularies, scenario mapping and
schema):

  - parameters, and MFLOPs of one example's inference (models/model_stats.py);
  - training examples/s: batch_size / the median of `steps` timed train_on_batch steps
    (forward, backward, Adam) on one random batch (model_stats.random_training_batch, one
    random 0/1 label per task), after two warm-up steps;
  - serving latency: the untrained model (latency does not depend on the weights) exported
    with models/export.export_ranker to a temporary directory and loaded back; one request
    = `candidates` exposures of ONE user (the user's raw features repeated, each with the
    raw features of a different item, taken from the run's test window), through the raw
    tf.Example signature (ranker_probabilities_examples: serialized examples in, parsing
    included) and the raw-tensor signature (ranker_probabilities: the same values as
    tensors); p50 and p99 over `requests` sequential requests after 20 warm-up requests.
    Building the request is not timed. TensorFlow threads are left at their defaults (all
    cores). The teacher has one output (its click probability) in the same wrapper.

The Markdown table goes to <output-dir>/benchmarks/rankers.md. The issue's target, p99
under 15 ms for the default ranker (ranker.model) at 200 candidates, is reported, not
asserted.
Other processes on the machine inflate the figures: run it on an idle machine.

--dry-run needs no pipeline run: a small hand-built FeatureSpace, random raw values, and a
stand-in for the Transform graph (hashing strings into the vocabularies) exercise every
code path; its figures are not the rankers' (written to rankers_dry_run.md).
"""

import argparse
import datetime
import os
import tempfile
import time

import numpy as np
import tensorflow as tf

from core import config as configs
from core import dataset_spec as ds
from core import examples as example_files
from core import feature_names as fnames
from core import layout
from models import build
from models import export
from models import features
from models import losses
from models import model_stats
from models.rankers import base as rankers_base

TARGET_RANKER = configs.RankerConfig().model  # the default ranker
TARGET_P99_MS = 15.0
WARMUP_REQUESTS = 20
TEACHER = 'teacher (dcn_v2)'


# ---- the feature space and the raw values of a request ---------------------------------

def run_inputs(config: configs.PipelineConfig):
  """(FeatureSpace, TFTransformOutput, tasks, raw test records) of the latest pipeline run
  under config.output_dir; SystemExit with what to do when there is none."""
  import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top
  from core import schemas  # pylint: disable=g-import-not-at-top
  from core.scenario_mapping import ScenarioMapping  # pylint: disable=g-import-not-at-top
  from models import preprocessing  # pylint: disable=g-import-not-at-top
  from pipeline import run_summary  # pylint: disable=g-import-not-at-top
  missing = (f'no pipeline run with a Transform under {config.path(config.output_dir)}: '
             f'run `make run` first (or pass the --output-dir of a run; --dry-run checks '
             f'the benchmark without data)')
  if not os.path.exists(config.metadata_path):
    raise SystemExit(missing)
  store = run_summary.open_store(config.metadata_path)
  gen = run_summary.node_outputs(store, 'InteractionExampleGen')
  transform = run_summary.node_outputs(store, 'Transform')
  schema = run_summary.node_outputs(store, 'events_schema')
  if not (gen and transform and schema):
    raise SystemExit(missing)
  spec = ds.DatasetSpec.from_yaml(config.local_path(config.dataset_spec))
  tft_output = tft.TFTransformOutput(transform['transform_graph'].uri)
  space = features.FeatureSpace.build(
      spec, preprocessing.vocabulary_sizes(tft_output, spec, config.transform.num_oov_buckets),
      ScenarioMapping.load(gen['scenario_mapping'].uri).values,
      schemas.read(os.path.join(schema['schema'].uri, 'schema.pbtxt')),
      rankers_base.POPULARITY_FEATURES, config.ranker.item_outcome_features)
  records = next(example_files.record_batches(
      layout.split_pattern(gen['examples'].uri, layout.TEST))).numpy()
  return space, tft_output, spec.logs.task_names, list(records)


def request_examples(records: list, space: features.FeatureSpace,
                     candidates: int) -> tuple[list[bytes], int]:
  """One request: the first record's user features with the item features of the first
  `candidates` records of distinct items (cycled when there are fewer), as serialized
  tf.Examples holding only the ranker's raw features; and the number of distinct items."""
  parsed = [tf.train.Example.FromString(r) for r in records]
  user = parsed[0].features.feature
  seen, items = set(), []
  for example in parsed:
    item_id = example.features.feature[fnames.ITEM_ID].bytes_list.value[0]
    if item_id not in seen:
      seen.add(item_id)
      items.append(example.features.feature)
    if len(items) == candidates:
      break
  request = []
  for i in range(candidates):
    item = items[i % len(items)]
    example = tf.train.Example()
    for names, source in ((space.user_tower_features, user),
                          (space.item_tower_features, item)):
      for name in names:
        if name in source:
          example.features.feature[name].CopyFrom(source[name])
    request.append(example.SerializeToString())
  return request, len(items)


def raw_tensors(serialized: list[bytes], raw_spec: dict) -> dict[str, tf.Tensor]:
  """The raw-tensor signature's inputs for the same examples: [B] per single value,
  [B, N] padded with '' (or 0) per list."""
  parsed = tf.io.parse_example(tf.constant(serialized), raw_spec)
  tensors = {}
  for name, spec in raw_spec.items():
    value = parsed[name]
    if isinstance(value, tf.SparseTensor):
      value = tf.sparse.to_dense(value, default_value='' if spec.dtype == tf.string else 0)
    else:  # FixedLenFeature of shape [] or [1] (the schema's): [B]
      value = tf.reshape(value, [-1])
    tensors[name] = value
  return tensors


# ---- the dry run: a hand-built space, random raw values, a stand-in Transform -------

def dry_run_space() -> features.FeatureSpace:
  """Every kind of feature the rankers read, all six semantic groups present."""
  return features.FeatureSpace(
      user=features.TowerInputs(
          (features.Categorical(fnames.USER_ID, 1000),
           features.Categorical('user_active_degree', 8),
           features.Categorical('onehot_feat0', 10)), ('follow_user_num',)),
      item=features.TowerInputs(
          (features.Categorical(fnames.ITEM_ID, 5000), features.Categorical('tag', 50, 3)),
          ('video_duration',), (features.NumericList('scenario_clicks', 3),)),
      item_vocab_size=5000, history_length=20, scenarios=('0', '1', '2'))


def _dry_run_raw_spec(space: features.FeatureSpace) -> dict:
  lists = space.list_lengths()
  numeric = set(space.user.numeric + space.item.numeric) | {
      n.name for n in space.user.numeric_lists + space.item.numeric_lists}
  spec = {}
  for name in space.user_tower_features + space.item_tower_features:
    dtype = tf.float32 if name in numeric else tf.string
    spec[name] = (tf.io.VarLenFeature(dtype) if name in lists
                  else tf.io.FixedLenFeature([], dtype))
  return spec


class _HashingTransform(tf.Module):
  """Stands in for the Transform graph: raw strings hashed into each vocabulary (the
  scenarios stay raw), floats unchanged; single values [B, 1] or [B], lists sparse."""

  def __init__(self, space: features.FeatureSpace):
    super().__init__()
    self._vocab = {c.name: c.vocab_size for c in
                   space.user.categorical + space.item.categorical}
    self._vocab[fnames.HISTORY_ITEM_ID] = space.item_vocab_size

  def __call__(self, raw: dict) -> dict:
    out = {}
    for name, value in raw.items():
      if name not in self._vocab:
        out[name] = value
      elif isinstance(value, tf.SparseTensor):
        out[name] = tf.SparseTensor(
            value.indices, tf.strings.to_hash_bucket_fast(value.values, self._vocab[name]),
            value.dense_shape)
      else:
        out[name] = tf.strings.to_hash_bucket_fast(value, self._vocab[name])
    return out


class DryRunTransform:
  """The two methods of tft.TFTransformOutput that models/export.py calls."""

  def __init__(self, space: features.FeatureSpace):
    self._space = space

  def raw_feature_spec(self) -> dict:
    return _dry_run_raw_spec(self._space)

  def transform_features_layer(self) -> tf.Module:
    return _HashingTransform(self._space)


def dry_run_records(space: features.FeatureSpace, count: int, seed: int = 0) -> list[bytes]:
  """Random raw tf.Examples (lists of random lengths; every record a different item)."""
  rng = np.random.default_rng(seed)
  spec = _dry_run_raw_spec(space)
  lengths = space.list_lengths()
  records = []
  for i in range(count):
    example = tf.train.Example()
    for name, feature_spec in spec.items():
      feature = example.features.feature[name]
      size = rng.integers(1, lengths[name] + 1) if name in lengths else 1
      if name in (fnames.SCENARIO, fnames.HISTORY_SCENARIO):
        feature.bytes_list.value.extend(rng.choice(space.scenarios, size).astype(bytes))
      elif name == fnames.ITEM_ID:
        feature.bytes_list.value.append(f'item{i}'.encode())
      elif feature_spec.dtype == tf.string:
        feature.bytes_list.value.extend(f'{name}{v}'.encode()
                                        for v in rng.integers(0, 100, size))
      else:
        feature.float_list.value.extend(rng.normal(size=size).tolist())
    records.append(example.SerializeToString())
  return records


# ---- the measurements ------------------------------------------------------------------

class TeacherAsRanker(tf.keras.Model):
  """The teacher's logit [B] as a one-task ranker's logits [B, 1], for export_ranker."""

  def __init__(self, teacher: tf.keras.Model, **kwargs):
    super().__init__(**kwargs)
    self.teacher = teacher

  @property
  def feature_names(self) -> tuple[str, ...]:
    return self.teacher.feature_names

  def call(self, inputs, training=None):
    return self.teacher(inputs, training=training)[:, None]

  def get_config(self):  # saved for its signatures only, never rebuilt from its config
    return {'name': self.name}


def training_batch(space: features.FeatureSpace, batch_size: int, num_tasks: int,
                   seed: int = 0) -> tuple[dict, np.ndarray]:
  """(features, labels [B, T] of random 0/1): a batch of exposures."""
  batch, _ = model_stats.random_training_batch(space, batch_size, 0, seed)
  batch.pop(features.USER_ROW)
  labels = np.random.default_rng(seed).random((batch_size, num_tasks)) < 0.3
  return batch, labels.astype(np.float32)


def examples_per_second(model: tf.keras.Model, batch: dict, labels, steps: int) -> float:
  """batch size / the median seconds of a train_on_batch step, after two warm-up steps
  (tracing included in the first)."""
  for _ in range(2):
    model.train_on_batch(batch, labels)
  seconds = []
  for _ in range(steps):
    started = time.perf_counter()
    model.train_on_batch(batch, labels)
    seconds.append(time.perf_counter() - started)
  return len(labels) / float(np.median(seconds))


def latency_ms(call, requests: int) -> tuple[float, float]:
  """(p50, p99) milliseconds of `call()` (its outputs fetched) over `requests` calls after
  WARMUP_REQUESTS untimed ones."""
  for _ in range(WARMUP_REQUESTS):
    _fetch(call())
  seconds = []
  for _ in range(requests):
    started = time.perf_counter()
    _fetch(call())
    seconds.append(time.perf_counter() - started)
  ms = 1000 * np.array(seconds)
  return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def _fetch(outputs: dict) -> None:
  for value in outputs.values():
    value.numpy()


def serving_latency(model: tf.keras.Model, tft_output, space: features.FeatureSpace,
                    tasks: tuple[str, ...], request: list[bytes],
                    requests: int) -> dict[str, tuple[float, float]]:
  """{'examples': (p50, p99), 'tensors': (p50, p99)} ms of one request through the
  exported SavedModel's two signatures."""
  with tempfile.TemporaryDirectory() as directory:
    export.export_ranker(model, tft_output, space, tasks, directory)
    loaded = tf.saved_model.load(directory)
    by_examples = loaded.signatures[layout.RANKER_EXAMPLES_SIGNATURE]
    by_tensors = loaded.signatures[layout.RANKER_SIGNATURE]
    raw_spec = tft_output.raw_feature_spec()
    tensors = raw_tensors(request, {n: raw_spec[n] for n in model.feature_names})
    serialized = tf.constant(request)
    out, same = by_examples(examples=serialized), by_tensors(**tensors)
    if sorted(out) != sorted(tasks) or any(v.shape != (len(request),) for v in out.values()):
      raise SystemExit(f'the export answered {({k: v.shape for k, v in out.items()})}; '
                       f'expected one [{len(request)}] probability per task {tasks}')
    gap = max(float(np.abs(out[t].numpy() - same[t].numpy()).max()) for t in tasks)
    if gap > 1e-5:
      raise SystemExit(f'the two signatures disagree by {gap} on the same request')
    return {'examples': latency_ms(lambda: by_examples(examples=serialized), requests),
            'tensors': latency_ms(lambda: by_tensors(**tensors), requests)}


def measure(label: str, model: tf.keras.Model, trained: tf.keras.Model, space, tft_output,
            tasks, batch, labels, request, args) -> dict:
  """One row: parameters, MFLOPs per example, training examples/s, latencies."""
  trained(batch)
  row = {'model': label, 'parameters': model_stats.parameter_count(trained),
         'mflops': model_stats.flops_per_example(trained, trained.feature_names, space) / 1e6}
  row['examples_per_second'] = examples_per_second(trained, batch, labels, args.steps)
  print(f'  {label}: {row["parameters"]:,} parameters, {row["mflops"]:.3f} MFLOPs/example, '
        f'{row["examples_per_second"]:,.0f} training examples/s; exporting', flush=True)
  row.update(serving_latency(model, tft_output, space, tasks, request, args.requests))
  return row


def table(rows: list[dict], candidates: int) -> str:
  lines = [f'| model | parameters | MFLOPs / example | training examples/s | '
           f'tf.Example p50 ms | tf.Example p99 ms | tensors p50 ms | tensors p99 ms |',
           '|---|---:|---:|---:|---:|---:|---:|---:|']
  for r in rows:
    lines.append(f'| {r["model"]} | {r["parameters"]:,} | {r["mflops"]:.3f} | '
                 f'{r["examples_per_second"]:,.0f} | {r["examples"][0]:.2f} | '
                 f'{r["examples"][1]:.2f} | {r["tensors"][0]:.2f} | {r["tensors"][1]:.2f} |')
  lines.append(f'\nLatency: one request = {candidates} candidates of one user.')
  return '\n'.join(lines)


def target_line(rows: list[dict]) -> str:
  row = next(r for r in rows if r['model'] == TARGET_RANKER)
  verdicts = []
  for kind, name in (('examples', 'tf.Example signature'), ('tensors', 'raw-tensor signature')):
    p99 = row[kind][1]
    verdicts.append(f'{name} p99 {p99:.2f} ms: '
                    f'{"holds" if p99 < TARGET_P99_MS else "DOES NOT HOLD"}')
  return (f'Target p99 < {TARGET_P99_MS:g} ms for the default ranker ({TARGET_RANKER}): '
          + '; '.join(verdicts) + '.')


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--output-dir', default='outputs')
  parser.add_argument('--candidates', type=int, default=200)
  parser.add_argument('--requests', type=int, default=300)
  parser.add_argument('--batch-size', type=int, default=1024)
  parser.add_argument('--steps', type=int, default=10)
  parser.add_argument('--dry-run', action='store_true',
                      help='a hand-built feature space and a stand-in Transform: checks the '
                           'code paths, the figures mean nothing')
  args = parser.parse_args(argv)
  config = configs.load_config('', [f'output_dir={args.output_dir}'])
  if args.dry_run:
    space = dry_run_space()
    tft_output = DryRunTransform(space)
    tasks = ds.DatasetSpec.from_yaml(config.local_path(config.dataset_spec)).logs.task_names
    records = dry_run_records(space, args.candidates)
    source = 'DRY RUN: hand-built feature space, random raw values, hashing stand-in ' \
             'for the Transform graph; the figures are not the rankers\''
  else:
    space, tft_output, tasks, records = run_inputs(config)
    source = (f'feature space of the latest run under {config.path(args.output_dir)}; '
              f'requests from its test window')
  tasks = tuple(tasks)
  request, distinct = request_examples(records, space, args.candidates)
  threads = (tf.config.threading.get_intra_op_parallelism_threads() or 'default',
             tf.config.threading.get_inter_op_parallelism_threads() or 'default')
  header = (f'{datetime.datetime.now().isoformat(timespec="seconds")}; {os.cpu_count()} '
            f'cores; TensorFlow intra/inter-op threads {threads[0]}/{threads[1]}. {source}. '
            f'Tasks: {", ".join(tasks)}. Training: batch {args.batch_size}, median of '
            f'{args.steps} train_on_batch steps after 2 warm-up steps. Serving: '
            f'{args.candidates} candidates ({distinct} distinct items) of one user per '
            f'request, {args.requests} sequential requests after {WARMUP_REQUESTS} warm-up '
            f'ones, untrained models exported with models/export.py.')
  print(header, flush=True)
  batch, labels = training_batch(space, args.batch_size, len(tasks))
  rows = []
  for name in configs.RANKERS:
    ranker_config = configs.RankerConfig(model=name)
    tf.keras.utils.set_random_seed(0)
    ranker = build.build_ranker(ranker_config, space, tasks)
    ranker.compile(optimizer=tf.keras.optimizers.Adam(ranker_config.learning_rate))
    rows.append(measure(name, ranker, ranker, space, tft_output, tasks, batch, labels,
                        request, args))
  tf.keras.utils.set_random_seed(0)
  teacher = build.build_teacher(configs.DistillationConfig(), configs.ModelConfig(),
                                configs.RankerConfig(), space)
  training = configs.TrainingConfig()  # the teacher trains with the Trainer's optimizer
  teacher.compile(tf.keras.optimizers.Adam(training.learning_rate,
                                           weight_decay=training.weight_decay),
                  loss=losses.per_example_binary_cross_entropy,
                  metrics=[tf.keras.metrics.AUC(from_logits=True, name='auc')])
  rows.append(measure(TEACHER, TeacherAsRanker(teacher, name='teacher_as_ranker'), teacher,
                      space, tft_output, ('click',), batch, labels[:, 0], request, args))
  text = '\n'.join(['# Rankers: cost and serving latency (benchmarks/rankers.py)', '',
                    header, '', table(rows, args.candidates), '', target_line(rows)])
  print('\n' + text)
  directory = os.path.join(config.path(args.output_dir), 'benchmarks')
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, 'rankers_dry_run.md' if args.dry_run else 'rankers.md')
  with open(path, 'w') as f:
    f.write(text + '\n')
  print(f'\nwritten to {path}')


if __name__ == '__main__':
  main()
