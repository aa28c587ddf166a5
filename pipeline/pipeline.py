"""The DSMOE retrieval pipeline: which components run, and how they are wired.

    raw logs + feature tables
      -> InteractionExampleGen     events (train | validation | test windows, and all days
                                   as training examples), item corpus, user snapshot,
                                   scenario mapping, ingestion report
      -> StatisticsGen, CuratedSchemaGen, ExampleValidator, DataValidationGate
                                   for the events and for the item corpus
      -> Transform                 models/preprocessing.py on the train window
      -> DistillationTrainer       training/trainer.py: teacher, then the distilled student,
                                   each stopped early on the validation window
      -> RecallEvaluator           Recall@K per scenario on the test window vs popularity,
                                   with intervals; the blessing
      -> BlessedModelComparison    the same against the last blessed model (regressions)
      -> RankerTrainer             (ranker.enabled) training/ranking.py: the ranker on the
                                   train window's exposures, stopped on the validation
                                   window's mean AUC over the tasks
      -> RankingEvaluator          AUC and GAUC per scenario and task on the test window vs
                                   popularity and the last blessed ranker; its blessing
      -> SystemEvaluator           (ranker.enabled) ranking/system.py: Recall@k and NDCG@k
                                   per scenario of retrieval, retrieval + ranker and the
                                   ranker over the whole corpus; a report, no blessing
      only when blessed, the release is refreshed to the end of the logs:
      -> refit_transform           vocabularies of every day (new users and items)
      -> refit_trainer             the same model on every day, the epochs kept above
      -> IndexBuilder              ScaNN index + TFRS retrieval model of the refit model,
                                   items as of the last event
      -> ReleasePusher             outputs/releases/<version>/: the refit model, the user
                                   snapshot and the item state as of the last event (what
                                   the next day is ingested from), the test evaluation, and
                                   the ranker when it is blessed (with the item corpus
                                   and recommend.json for two-stage serving)

A refresh (config.refresh.release, core/config.for_refresh; `make refresh`) is the same
graph with the splits moved to the logs' newest day (test: the gate; the day before it,
validation), both trainers warm-started from the release (the DistillationTrainer on the
window of every day before the newest, with the Transform's vocabularies of those days;
the refit_trainer on the window up to the newest, instead of the kept epochs), the release imported as the model the
comparison checks (a significant drop on any scenario stops the release) and no ranker
trained (the ReleasePusher carries the release's).

Only wiring lives here: configuration comes from core/config.py, the dataset's columns
from its dataset spec, and each component's logic from components/ and the libraries below
them.
"""

import dataclasses
import os
from typing import Optional

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from components import artifacts
from components.blessed_model_comparison.component import BlessedModelComparison
from components.curated_schema_gen import CuratedSchemaGen
from components.curated_schema_gen import file_sha256
from components.data_validation_gate import DataValidationGate
from components.distillation_trainer.component import DistillationTrainer
from components.index_builder.component import IndexBuilder
from components.interaction_example_gen.component import InteractionExampleGen
from components.ranker_trainer.component import RankerTrainer
from components.ranking_evaluator.component import RankingEvaluator
from components.system_evaluator.component import SystemEvaluator
from components.recall_evaluator.component import RecallEvaluator
from components.release_pusher.component import ReleasePusher
from core import config as configs
from core import dataset_spec as ds
from core import layout
from core import schemas

# Transform and the Trainer run these functions, named by import path; the fingerprint of
# the packages they import keys TFX's cache (see code_fingerprint).
PREPROCESSING_FN = 'models.preprocessing.preprocessing_fn'
RUN_FN = 'training.trainer.run_fn'
RANKER_RUN_FN = 'training.ranking.run_fn'
MODEL_CODE_PACKAGES = ('core', 'models', 'retrieval', 'training')
RANKER_CODE_PACKAGES = ('core', 'models', 'ranking', 'training')  # the RankerTrainer's
# Added to the config's beam_pipeline_args: every Beam worker process imports tfx before
# it runs anything. `import tfx` puts in the stand-in for tfx_bsl.arrow.sql_util without
# which TFDV, and so StatisticsGen's code, cannot be unpickled (BUILD.md, the lock's
# known mismatches). A worker of another process (multi-process local runner, Dataflow,
# Flink, Spark) starts from a fresh interpreter; in-process workers already have it.
BEAM_WORKER_ARGS = ('--beam_plugin=tfx',)


def create_pipeline(
    config: configs.PipelineConfig,
    metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
    data_only: bool = False,
) -> tfx.dsl.Pipeline:
  """The pipeline of `config`; with `data_only`, only ingestion, validation and the
  Transform on the train window (what experiments/ trains its variants on)."""
  spec = ds.DatasetSpec.from_yaml(config.local_path(config.dataset_spec))
  refresh = config.refresh.release  # a refresh of that release (core/config.for_refresh)
  if refresh:  # the newest day is the gate; the day before it, validation
    spec = dataclasses.replace(spec, split=ds.SplitSpec(
        validation_days=1, test_days=1, timezone=spec.split.timezone))
  if config.ranker.enabled:
    config.recommend.scenario_blend(spec.logs.task_names)  # ConfigError: a task not in the spec
    config.ranking_evaluation.gain_tasks_of(spec.logs.task_names)  # the same
  example_gen = InteractionExampleGen(data_dir=config.path(config.data_dir),
                                      dataset_spec=spec,
                                      ingestion_config=config.ingestion,
                                      after_release=refresh,
                                      window_days=config.refresh.window_days if refresh else 0)
  left_out = config.ingestion.derived_features_left_out
  # A refresh's history split holds days that the run which ingested them validated.
  events_checks = _validation(
      example_gen.outputs['examples'], config, config.events_schema,
      left_out + schemas.task_labels_left_out(
          schemas.read(config.local_path(config.events_schema)), spec.logs.task_names,
          config.events_schema), 'events', (layout.HISTORY,) if refresh else ())
  corpus_checks = _validation(example_gen.outputs['item_corpus'], config,
                              config.item_corpus_schema, left_out, 'item_corpus')
  schema = events_checks[1]
  gates = (events_checks[-1], corpus_checks[-1])  # nothing trains on data that failed
  fingerprint = code_fingerprint()

  # The evaluated model's vocabularies: the train window's (a refresh's gated model trains
  # on the validation day too, every day before the newest; the days before its window
  # are in split history).
  analyze = (layout.HISTORY, layout.TRAIN, layout.VALIDATION) if refresh else (layout.TRAIN,)
  transform = _transform(example_gen, schema, spec, config, fingerprint, analyze,
                         (layout.TRAIN, layout.VALIDATION), gates)
  components = [example_gen, *events_checks, *corpus_checks, transform]
  if data_only:
    return _pipeline(config, components, metadata_connection_config)
  teacher_source, teacher = (None, None) if refresh else _teacher_source(
      config.distillation)
  trainer = DistillationTrainer(
      examples=transform.outputs['transformed_examples'],
      transform_graph=transform.outputs['transform_graph'],
      schema=schema.outputs['schema'],
      item_corpus=example_gen.outputs['item_corpus'],
      scenario_mapping=example_gen.outputs['scenario_mapping'],
      run_fn=RUN_FN, dataset_spec=spec, config=config,
      code_fingerprint=fingerprint, teacher=teacher,
      raw_examples=example_gen.outputs['examples'])

  # The model a new one is compared with: the latest blessed one, or the release a
  # refresh started from (what is served).
  previous_blessed = tfx.dsl.Importer(
      source_uri=refresh, artifact_type=tfx.types.standard_artifacts.Model,
  ).with_id('served_release_importer') if refresh else tfx.dsl.Resolver(
      strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
      model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
      model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
  ).with_id('latest_blessed_model_resolver')
  evaluator = RecallEvaluator(
      model=trainer.outputs['model'],
      examples=example_gen.outputs['examples'],
      item_corpus=example_gen.outputs['item_corpus'],
      config=config.evaluation,
      teacher=trainer.outputs['teacher_model'])
  comparison = BlessedModelComparison(
      model=trainer.outputs['model'],
      examples=example_gen.outputs['examples'],
      item_corpus=example_gen.outputs['item_corpus'],
      config=config.evaluation,
      baseline_model=previous_blessed.outputs['result' if refresh else 'model'])

  ranker_fingerprint = code_fingerprint(packages=RANKER_CODE_PACKAGES)
  ranking = _ranking_stage(example_gen, transform, schema, spec, config, ranker_fingerprint)
  ranker_outputs = {}
  if ranking:
    ranker_outputs = dict(ranker=ranking[0].outputs['model'],
                          ranker_blessing=ranking[-1].outputs['blessing'],
                          ranker_evaluation=ranking[-1].outputs['evaluation'])
    ranking.append(SystemEvaluator(
        model=trainer.outputs['model'], ranker=ranking[0].outputs['model'],
        examples=example_gen.outputs['examples'],
        item_corpus=example_gen.outputs['item_corpus'], config=config.recommend,
        evaluation=config.evaluation))

  with tfx.dsl.Cond(
      evaluator.outputs['blessing'].future()[0].custom_property('blessed') == 1):
    refit_transform = _transform(example_gen, schema, spec, config, fingerprint,
                                 ((layout.HISTORY,) if refresh else ()) + (layout.ALL,),
                                 (layout.ALL,), gates).with_id(
                                     'refit_transform')
    # The ranker too is refit on every day for the epochs it kept, with the refit
    # Transform's vocabularies (users and items of the last days); its blessing and
    # evaluation stay the evaluated ranker's.
    ranker_refit = [RankerTrainer(
        examples=refit_transform.outputs['transformed_examples'],
        transform_graph=refit_transform.outputs['transform_graph'],
        schema=schema.outputs['schema'],
        scenario_mapping=example_gen.outputs['scenario_mapping'],
        run_fn=RANKER_RUN_FN, dataset_spec=spec, config=config,
        code_fingerprint=ranker_fingerprint, schedule_model=ranking[0].outputs['model']
    ).with_id('refit_ranker_trainer')] if ranking else []
    if ranker_refit:
      ranker_outputs['ranker'] = ranker_refit[0].outputs['model']
    refit = DistillationTrainer(
        examples=refit_transform.outputs['transformed_examples'],
        transform_graph=refit_transform.outputs['transform_graph'],
        schema=schema.outputs['schema'],
        item_corpus=example_gen.outputs['item_corpus'],
        scenario_mapping=example_gen.outputs['scenario_mapping'],
        run_fn=RUN_FN, dataset_spec=spec, config=config,
        code_fingerprint=fingerprint, raw_examples=example_gen.outputs['examples'],
        # A refresh's refit is its own warm start from the release, on every day.
        schedule_model=None if refresh else trainer.outputs['model'],
        every_day=True).with_id('refit_trainer')
    index = IndexBuilder(model=refit.outputs['model'],
                         item_corpus=example_gen.outputs['item_corpus'],
                         examples=example_gen.outputs['examples'], config=config.index)
    pusher = ReleasePusher(
        model=refit.outputs['model'], evaluated_model=trainer.outputs['model'],
        model_blessing=evaluator.outputs['blessing'],
        evaluation=evaluator.outputs['evaluation'],
        comparison=comparison.outputs['comparison'], index=index.outputs['index'],
        scenario_mapping=example_gen.outputs['scenario_mapping'],
        user_snapshot=example_gen.outputs['user_snapshot'],
        item_state=example_gen.outputs['item_state'],
        item_corpus=example_gen.outputs['item_corpus'],
        ingestion_report=example_gen.outputs['report'],
        releases_dir=config.releases_dir, pipeline_name=config.pipeline_name,
        dataset=spec.name, recommend=config.recommend,
        teacher=refit.outputs['teacher_model'] if config.distillation.enabled else None,
        refresh_of=refresh, **ranker_outputs)

  components += [teacher_source] if teacher_source else []
  components += [trainer, previous_blessed, evaluator, comparison, *ranking, refit_transform,
                 refit, *ranker_refit, index, pusher]
  return _pipeline(config, components, metadata_connection_config)


def _pipeline(config: configs.PipelineConfig, components: list,
              metadata_connection_config) -> tfx.dsl.Pipeline:
  return tfx.dsl.Pipeline(
      pipeline_name=config.pipeline_name,
      pipeline_root=config.pipeline_root,
      components=components,
      enable_cache=config.enable_cache,
      metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=[*config.beam_pipeline_args, *BEAM_WORKER_ARGS])


def _validation(examples, config: configs.PipelineConfig, schema_file: str,
                left_out: tuple[str, ...], name: str,
                exclude_splits: tuple[str, ...] = ()) -> list:
  """Statistics (but of `exclude_splits`), the curated schema, anomalies, and a gate that
  fails on any anomaly."""
  statistics = tfx.components.StatisticsGen(
      examples=examples, exclude_splits=list(exclude_splits)).with_id(f'{name}_statistics')
  schema = CuratedSchemaGen(
      schema_file=config.path(schema_file), leave_out=','.join(left_out),
      schema_sha256=file_sha256(config.local_path(schema_file))).with_id(f'{name}_schema')
  validator = tfx.components.ExampleValidator(
      statistics=statistics.outputs['statistics'],
      schema=schema.outputs['schema']).with_id(f'{name}_validator')
  gate = DataValidationGate(anomalies=validator.outputs['anomalies'],
                            schema_file=config.path(schema_file)).with_id(
                                f'{name}_validation_gate')
  return [statistics, schema, validator, gate]


def _transform(example_gen, schema, spec: ds.DatasetSpec, config: configs.PipelineConfig,
               fingerprint: str, analyze: tuple[str, ...], splits: tuple[str, ...], gates):
  """tf.Transform (models/preprocessing.py) with vocabularies of the `analyze` splits."""
  transform = tfx.components.Transform(
      examples=example_gen.outputs['examples'],
      schema=schema.outputs['schema'],
      preprocessing_fn=PREPROCESSING_FN,
      custom_config=configs.to_custom_config(spec, config.transform,
                                             code_fingerprint=fingerprint),
      splits_config=tfx.proto.SplitsConfig(analyze=list(analyze), transform=list(splits)),
      disable_statistics=True)
  for gate in gates:
    transform.add_upstream_node(gate)
  return transform


def _ranking_stage(example_gen, transform, schema, spec: ds.DatasetSpec,
                   config: configs.PipelineConfig, fingerprint: str) -> list:
  """[RankerTrainer, the latest blessed ranker's resolver, RankingEvaluator], or none
  when ranker.enabled is false."""
  if not config.ranker.enabled:
    return []
  trainer = RankerTrainer(
      examples=transform.outputs['transformed_examples'],
      transform_graph=transform.outputs['transform_graph'],
      schema=schema.outputs['schema'],
      scenario_mapping=example_gen.outputs['scenario_mapping'],
      run_fn=RANKER_RUN_FN, dataset_spec=spec, config=config,
      code_fingerprint=fingerprint)
  previous = tfx.dsl.Resolver(
      strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
      model=tfx.dsl.Channel(type=artifacts.RankerModel),
      model_blessing=tfx.dsl.Channel(type=artifacts.RankerBlessing),
  ).with_id('latest_blessed_ranker_resolver')
  evaluator = RankingEvaluator(model=trainer.outputs['model'],
                               examples=example_gen.outputs['examples'],
                               config=config.ranking_evaluation,
                               baseline_model=previous.outputs['model'])
  return [trainer, previous, evaluator]


def _teacher_source(config: configs.DistillationConfig):
  """(node, teacher channel): none (train a teacher), the latest teacher of an earlier
  run, or an imported teacher directory."""
  if not config.enabled or config.teacher_source == 'train':
    return None, None
  if config.teacher_source == 'latest':
    resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestArtifactStrategy,
        teacher=tfx.dsl.Channel(type=artifacts.TeacherModel),
    ).with_id('latest_teacher_resolver')
    return resolver, resolver.outputs['teacher']
  importer = tfx.dsl.Importer(source_uri=config.teacher_source,
                              artifact_type=artifacts.TeacherModel).with_id(
                                  'teacher_importer')
  return importer, importer.outputs['result']


def code_fingerprint(root: str = configs.REPO_ROOT,
                     packages: tuple[str, ...] = MODEL_CODE_PACKAGES) -> str:
  """sha256 over the Python files of the packages Transform and the Trainer run (or, with
  `packages`, those another component runs).

  They name their code by import path (PREPROCESSING_FN, RUN_FN), which TFX does not
  fingerprint; with this in their custom_config an edit of that code reruns them instead
  of reusing a cached result of the old code.
  """
  return ' '.join(layout.directory_fingerprint(os.path.join(root, package), '.py')
                  for package in packages)
