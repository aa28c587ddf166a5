"""The pipeline's Beam components on several local worker processes give what the default
single-process runner gives, on the KuaiRand fixture.

The runner is components.beam_runner.LocalRunner with Beam's multi-process direct running
mode (2 SDK worker subprocesses), set through the config as a user sets it:
`--set 'beam_pipeline_args=[...]'`. Only the Beam part of the pipeline runs
(local_runner.run with data_only): InteractionExampleGen, StatisticsGen and Transform,
with the curated schema, ExampleValidator and the gates between them, once per runner.
"""

import glob
import json
import os
import sys

import apache_beam as beam
from apache_beam.runners.portability.fn_api_runner import worker_handlers
import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import statistics_pb2

from core import config as configs
from core import layout
from pipeline import local_runner
from pipeline import pipeline as dsmoe_pipeline
from tests.conftest import FIXTURE_DIR

PIPELINE = 'dsmoe-kuairand-pure'
MULTI_PROCESS = ('--runner=components.beam_runner.LocalRunner',
                 '--direct_running_mode=multi_processing', '--direct_num_workers=2')


def _worker_states(runner: str, output: str) -> list:
  """[pid, imported tfx] of the worker processes of a small pipeline on `runner` with 2
  worker processes and the pipeline's worker arguments."""
  args = [f'--runner={runner}', *MULTI_PROCESS[1:], *dsmoe_pipeline.BEAM_WORKER_ARGS]
  with beam.Pipeline(argv=args) as p:
    # A lambda is pickled by value: the worker imports nothing of this module for it.
    _ = (p | beam.Create(range(20)) | beam.Reshuffle()
         | beam.Map(lambda _: json.dumps([os.getpid(), 'tfx' in sys.modules]))
         | beam.Distinct() | beam.io.WriteToText(output))
  return [json.loads(line) for path in glob.glob(output + '*') for line in open(path)]


@pytest.mark.extended  # ~25-40 s of worker processes; make test's budget is 12 minutes
def test_local_runner_workers_are_processes_that_imported_tfx(tmp_path):
  """The pipeline's worker arguments reach LocalRunner's worker processes, so each imports
  tfx before it unpickles any code; FnApiRunner named alone does not hand them over."""
  states = _worker_states('components.beam_runner.LocalRunner', str(tmp_path / 'local'))
  assert states and os.getpid() not in {pid for pid, _ in states}
  assert {imported for _, imported in states} == {True}
  states = _worker_states('FnApiRunner', str(tmp_path / 'fn_api'))
  assert states and os.getpid() not in {pid for pid, _ in states}
  assert {imported for _, imported in states} == {False}


def test_fn_api_runner_with_worker_processes_is_refused():
  with pytest.raises(configs.ConfigError, match='components.beam_runner.LocalRunner'):
    configs.load_config('', ['beam_pipeline_args=[--runner=FnApiRunner, '
                             '--direct_running_mode=multi_processing]'])


def _config(small_setup, output_dir, beam_args=None):
  overrides = [f'data_dir={FIXTURE_DIR}', f'output_dir={output_dir}',
               f'dataset_spec={small_setup.spec_path}',
               f'events_schema={small_setup.events_schema}',
               f'item_corpus_schema={small_setup.item_corpus_schema}']
  if beam_args:  # the CLI's form: --set 'beam_pipeline_args=[--runner=..., ...]'
    overrides.append(f'beam_pipeline_args=[{", ".join(beam_args)}]')
  return configs.load_config('', overrides)


@pytest.fixture(scope='module')
def runs(tmp_path_factory, small_setup):
  """{'single': root, 'multi': root}: the pipeline roots of the two data-only runs, and
  how many SDK worker subprocesses the multi-process run started."""
  started = []
  start_worker = worker_handlers.SubprocessSdkWorkerHandler.start_worker

  def counted(handler):
    started.append(handler)
    return start_worker(handler)

  roots = {}
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(worker_handlers.SubprocessSdkWorkerHandler, 'start_worker', counted)
    for name, beam_args in (('single', None), ('multi', MULTI_PROCESS)):
      config = _config(small_setup, str(tmp_path_factory.mktemp(f'beam_{name}')),
                       beam_args)
      assert config.beam_pipeline_args == (beam_args or ('--runner=FnApiRunner',))
      local_runner.run(config, data_only=True)
      roots[name] = config.pipeline_root
      if name == 'single':
        assert not started  # the default runs in-process
  return roots, len(started)


def _one(pattern):
  found = glob.glob(pattern)
  assert len(found) == 1, (pattern, found)
  return found[0]


def _records(root, node, output, split):
  """The split's tf.Examples, serialized deterministically and sorted (shards and order
  depend on the runner, the records must not)."""
  files = sorted(glob.glob(os.path.join(root, node, output, '*', f'Split-{split}', '*.gz')))
  assert files, (node, output, split)
  return sorted(tf.train.Example.FromString(r.numpy()).SerializeToString(deterministic=True)
                for r in tf.data.TFRecordDataset(files, compression_type='GZIP'))


def _statistics(root, node, split) -> statistics_pb2.DatasetFeatureStatistics:
  stats = statistics_pb2.DatasetFeatureStatisticsList()
  with open(_one(os.path.join(root, node, 'statistics', '*', f'Split-{split}',
                              'FeatureStats.pb')), 'rb') as f:
    stats.ParseFromString(f.read())
  (dataset,) = stats.datasets
  return dataset


def _without_sums(dataset) -> tuple[dict, dict]:
  """({path: feature statistics without mean and std_dev}, {path: (mean, std_dev)}).

  Means and standard deviations are float sums, added up in the order the workers' parts
  are combined, so they may differ in the last bits; everything else must be equal."""
  features, sums = {}, {}
  for feature in dataset.features:
    path = tuple(feature.path.step)
    if feature.HasField('num_stats'):
      sums[path] = (feature.num_stats.mean, feature.num_stats.std_dev)
      feature.num_stats.ClearField('mean')
      feature.num_stats.ClearField('std_dev')
    features[path] = feature
  return features, sums


def _transformed(root, split) -> list[tuple]:
  """The split's transformed examples as sorted (integer and string features, float
  features) pairs."""
  examples = []
  for record in tf.data.TFRecordDataset(
      glob.glob(os.path.join(root, 'Transform', 'transformed_examples', '*',
                             f'Split-{split}', '*.gz')), compression_type='GZIP'):
    feature = tf.train.Example.FromString(record.numpy()).features.feature
    exact = tuple(sorted((name, tuple(f.int64_list.value), tuple(f.bytes_list.value))
                         for name, f in feature.items() if f.WhichOneof('kind') !=
                         'float_list'))
    floats = tuple(sorted((name, tuple(f.float_list.value)) for name, f in feature.items()
                          if f.WhichOneof('kind') == 'float_list'))
    examples.append((exact, floats))
  assert examples, split
  return sorted(examples)


@pytest.mark.extended
def test_the_multi_process_run_used_two_worker_processes(runs):
  _, workers = runs
  # 2 for each Beam pipeline of the run: the ingestion, 2 StatisticsGens, Transform.
  assert workers == 2 * 4


@pytest.mark.extended
@pytest.mark.parametrize('output,splits', [
    ('examples', layout.EXAMPLE_SPLITS), ('item_corpus', layout.CORPUS_SPLITS),
    ('user_snapshot', (layout.USERS,))])
def test_ingestion_outputs_are_the_same(runs, output, splits):
  roots, _ = runs
  for split in splits:
    single = _records(roots['single'], 'InteractionExampleGen', output, split)
    assert single == _records(roots['multi'], 'InteractionExampleGen', output, split), split


@pytest.mark.extended
def test_ingestion_reports_are_the_same(runs):
  roots, _ = runs
  reports = []
  for name in ('single', 'multi'):
    with open(_one(os.path.join(roots[name], 'InteractionExampleGen', 'report', '*',
                                layout.INGESTION_SUMMARY_JSON))) as f:
      reports.append(json.load(f))
  assert reports[0] == reports[1]
  assert reports[0]['rows_read'] == {'logs': 1394, 'users': 150, 'items': 1145}


@pytest.mark.extended
@pytest.mark.parametrize('node,splits', [
    ('events_statistics', layout.EXAMPLE_SPLITS),
    ('item_corpus_statistics', layout.CORPUS_SPLITS)])
def test_statistics_are_the_same(runs, node, splits):
  roots, _ = runs
  for split in splits:
    single, multi = (_statistics(roots[name], node, split) for name in ('single', 'multi'))
    assert single.num_examples == multi.num_examples > 0
    (single_features, single_sums), (multi_features, multi_sums) = (
        _without_sums(single), _without_sums(multi))
    assert single_features == multi_features, (node, split)  # counts, histograms, top-k
    assert single_sums.keys() == multi_sums.keys()
    for path, sums in single_sums.items():
      assert multi_sums[path] == pytest.approx(sums, rel=1e-12), (node, split, path)


@pytest.mark.extended
def test_schema_and_transform_outputs_are_the_same(runs):
  roots, _ = runs
  schemas = []
  for name in ('single', 'multi'):
    with open(_one(os.path.join(roots[name], 'events_schema', 'schema', '*',
                                'schema.pbtxt'))) as f:
      schemas.append(f.read())
  assert schemas[0] == schemas[1]
  graphs = [_one(os.path.join(roots[name], 'Transform', 'transform_graph', '*'))
            for name in ('single', 'multi')]
  vocabularies = [layout.file_checksums(os.path.join(g, 'transform_fn', 'assets'))
                  for g in graphs]
  assert vocabularies[0] and vocabularies[0] == vocabularies[1]
  for split, events in ((layout.TRAIN, 802), (layout.VALIDATION, 192)):
    single, multi = (_transformed(roots[name], split) for name in ('single', 'multi'))
    assert len(single) == events
    # Ids (the vocabularies above) are equal; scaled numbers up to float32 rounding of
    # the means and variances the analyzers summed in another order.
    assert [exact for exact, _ in single] == [exact for exact, _ in multi]
    for (_, floats), (_, other) in zip(single, multi):
      assert [name for name, _ in floats] == [name for name, _ in other]
      for (name, values), (_, other_values) in zip(floats, other):
        assert other_values == pytest.approx(values, abs=1e-5), (split, name)
