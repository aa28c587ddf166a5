"""Training variants on one pipeline run's data, without ingesting or transforming again.

A pipeline run (`make run`, or `python -m pipeline.local_runner` with the experiment's
ingestion flags) leaves its artifacts and ML Metadata under its output directory. The
harness finds the ingestion's and the Transform's outputs of the latest run there, trains
a variant with the Trainer's own run_fn (training/trainer.py: early stopping on the
validation window, the same export), and scores it with the Evaluator's own code
(retrieval/evaluation.py) on the validation window (for choosing) or the test window (for
reporting). A variant that finished is not trained again.
"""

import dataclasses
import hashlib
import json
import logging
import os
import sys
from typing import Optional

import tensorflow as tf
from tfx.components.trainer import fn_args_utils

from core import config as configs
from core import dataset_spec as ds
from core import layout
from pipeline import run_summary
from retrieval import evaluation
from training import trainer


def show_progress() -> None:
  """The Trainer's progress lines (the 'dsmoe' loggers: one per epoch) on stdout."""
  logger = logging.getLogger('dsmoe')
  logger.setLevel(logging.INFO)
  if any(getattr(h, 'dsmoe_progress', False) for h in logger.handlers):
    return  # once per process (a worker process runs several jobs)
  handler = logging.StreamHandler(sys.stdout)
  handler.setFormatter(logging.Formatter('%(asctime)s %(message)s', '%H:%M:%S'))
  handler.dsmoe_progress = True
  logger.addHandler(handler)
  logger.propagate = False


@dataclasses.dataclass(frozen=True)
class RunData:
  """The artifact directories of one pipeline run that training and scoring read."""
  examples: str  # raw events: train, validation, test, all
  item_corpus: str  # items as of each window (train, test, all)
  scenario_mapping: str
  transform_graph: str  # the Transform on the train window
  transformed_examples: str  # train and validation, transformed
  schema: str  # the events schema the run validated against (schema.pbtxt inside)
  spec: ds.DatasetSpec

  def to_dict(self) -> dict:
    return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name != 'spec'}, 'spec': self.spec.to_dict()}

  @classmethod
  def from_dict(cls, values: dict) -> 'RunData':
    return cls(**{**values, 'spec': ds.DatasetSpec.from_json(json.dumps(values['spec']))})

  @classmethod
  def latest(cls, config: configs.PipelineConfig) -> 'RunData':
    """The latest run of `config`'s pipeline (its output_dir and pipeline_name)."""
    if not os.path.exists(config.metadata_path):
      raise FileNotFoundError(f'no pipeline run in {config.metadata_path}: run the '
                              f'pipeline first (make run) with this output_dir')
    store = run_summary.open_store(config.metadata_path)
    gen = run_summary.node_outputs(store, 'InteractionExampleGen')
    transform = run_summary.node_outputs(store, 'Transform')
    schema = run_summary.node_outputs(store, 'events_schema')
    if not (gen and transform and schema):
      raise FileNotFoundError(f'the latest run in {config.metadata_path} did not reach the '
                              f'Transform')
    return cls(gen['examples'].uri, gen['item_corpus'].uri, gen['scenario_mapping'].uri,
               transform['transform_graph'].uri, transform['transformed_examples'].uri,
               schema['schema'].uri,
               ds.DatasetSpec.from_yaml(config.local_path(config.dataset_spec)))


def config_fingerprint(config: configs.PipelineConfig) -> str:
  """A fingerprint of every training-relevant section of `config` (seed included): what
  decides whether a trained model can be reused."""
  return hashlib.sha256('\n'.join(
      configs.section_to_json(s) for s in configs.trainer_sections(config)).encode()
                        ).hexdigest()[:10]


def variant_directory(output_root: str, config: configs.PipelineConfig, name: str) -> str:
  """Where a variant lives under an experiment output directory: its name (a label) and
  `config_fingerprint`: a configuration asked for under the same name by any experiment
  is trained once, and a changed default never reuses a model trained with the old one."""
  slug = name.replace(' ', '_').replace('/', '_')
  return os.path.join(output_root, 'variants', f'seed{config.training.seed}',
                      f'{slug}-{config_fingerprint(config)}')


def train(data: RunData, config: configs.PipelineConfig, directory: str,
          refit_of: Optional[str] = None, teacher: Optional[str] = None,
          warm_start_of: Optional[str] = None, warm_start_epochs: int = 1,
          warm_start_window: str = 'day') -> str:
  """Trains `config`'s teacher and student into `directory` (resumable); the model dir.

  With `teacher` (the teacher directory of a model trained here with the same teacher
  configuration), the student distils from that teacher instead of training its own.

  With `refit_of` (a model dir trained here), trains instead on the train and validation
  windows together for exactly the epochs that model kept, as the pipeline's refit does
  (but with the train window's vocabularies). Negatives are drawn from the items as of
  the validation window's start, as the validation examples' own item features are;
  their point-in-time popularity is as of each anchor's event, which for a validation
  anchor is up to a day after the moment of its own features (the window's start): a
  small asymmetry the pipeline's refit (split `all`, every event as of itself) has not.

  With `warm_start_of` (a model dir trained here or a release), a refresh of that model:
  the student from its towers' weights and the teacher from the teacher artifact's
  (`teacher`, else the one beside a model trained here; models/warm_start.py), each
  trained for `warm_start_epochs` on the validation window alone (`warm_start_window`
  'day': the newest day) or on the train and validation windows ('window': the newest
  day with the days before it); the negatives' point-in-time popularity counts the clicks
  of both windows either way (the state the newest day starts from, and its own)."""
  model_dir = os.path.join(directory, 'model')
  if tf.io.gfile.exists(os.path.join(model_dir, layout.TRAINING_SUMMARY_FILE)):
    return model_dir
  if refit_of and warm_start_of:
    raise ValueError('a model is either a refit (refit_of) or a warm start (warm_start_of)')
  custom_config = configs.to_custom_config(data.spec, *configs.trainer_sections(config))
  splits = [layout.TRAIN]
  train_splits = splits
  source = warm_start_of or refit_of
  if source:  # it serves the source's tau_s, as the pipeline's refit does
    weights = training_summary(source).get(layout.POPULARITY_WEIGHTS_KEY)
    if weights is not None:
      custom_config[layout.TRAINER_POPULARITY_WEIGHTS] = json.dumps(weights)
  if warm_start_of:
    custom_config[layout.TRAINER_WARM_START] = warm_start_of
    custom_config[layout.TRAINER_FIXED_EPOCHS] = json.dumps(
        {'teacher': warm_start_epochs, 'student': warm_start_epochs})
    if config.distillation.enabled:
      teacher = teacher or os.path.join(os.path.dirname(warm_start_of), 'teacher')
      if not tf.io.gfile.exists(teacher):
        raise ValueError(f'no teacher beside {warm_start_of}: pass teacher= (a teacher '
                         f'artifact) to warm-start a release or a pipeline model')
      custom_config[layout.TRAINER_WARM_START_TEACHER] = teacher
      teacher = None
    splits = [layout.TRAIN, layout.VALIDATION]
    if warm_start_window not in ('day', 'window'):
      raise ValueError(f"warm_start_window is 'day' or 'window', got {warm_start_window!r}")
    train_splits = [layout.VALIDATION] if warm_start_window == 'day' else splits
  elif refit_of:
    custom_config[layout.TRAINER_FIXED_EPOCHS] = json.dumps(kept_epochs(refit_of))
    splits = train_splits = [layout.TRAIN, layout.VALIDATION]
  if teacher and config.distillation.enabled:
    custom_config[layout.TRAINER_TEACHER_INPUT] = teacher
  custom_config.update({
      layout.TRAINER_ITEM_CORPUS: layout.split_pattern(data.item_corpus, layout.TRAIN),
      layout.TRAINER_SCENARIO_MAPPING: data.scenario_mapping,
      layout.TRAINER_TEACHER_OUTPUT: os.path.join(directory, 'teacher'),
      layout.TRAINER_BACKUP_DIR: os.path.join(directory, 'backup'),
      layout.TRAINER_VALIDATION_EVENTS: layout.split_pattern(data.examples,
                                                             layout.VALIDATION),
      layout.TRAINER_CLICK_EVENTS: json.dumps(
          [layout.split_pattern(data.examples, s) for s in splits]),
      layout.TRAINER_RECALL_KS: json.dumps(config.evaluation.recall_ks),
  })
  trainer.run_fn(fn_args_utils.FnArgs(
      train_files=[layout.split_pattern(data.transformed_examples, s)
                   for s in train_splits],
      eval_files=[layout.split_pattern(data.transformed_examples, layout.VALIDATION)],
      schema_path=os.path.join(data.schema, 'schema.pbtxt'),
      transform_output=data.transform_graph, transform_graph_path=data.transform_graph,
      serving_model_dir=model_dir, model_run_dir=os.path.join(directory, 'logs'),
      custom_config=custom_config))
  return model_dir


def score(data: RunData, model_dir: str, window: str,
          config: configs.EvaluationConfig, per_query: bool = False) -> dict:
  """The Evaluator's result for a model on the validation or the test window: queries of
  that window, items and popularity as of its start (with `per_query`, each query's
  recall too: evaluation.evaluate)."""
  if window == layout.VALIDATION:
    before, corpus = [layout.TRAIN], layout.TRAIN
  elif window == layout.TEST:
    before, corpus = [layout.TRAIN, layout.VALIDATION], layout.TEST
  else:
    raise ValueError(f'window must be {layout.VALIDATION} or {layout.TEST}, got {window!r}')
  return evaluation.evaluate(
      model_dir, [layout.split_pattern(data.examples, split) for split in before],
      layout.split_pattern(data.examples, window),
      layout.split_pattern(data.item_corpus, corpus), config, per_query=per_query)


def kept_epochs(model_dir: str) -> dict:
  """{'teacher': n, 'student': m}: the epochs a trained model kept."""
  summary = training_summary(model_dir)
  return {p: summary[p]['epoch_kept'] for p in ('teacher', 'student') if summary.get(p)}


def training_summary(model_dir: str) -> dict:
  with tf.io.gfile.GFile(os.path.join(model_dir, layout.TRAINING_SUMMARY_FILE)) as f:
    return json.load(f)


def cached_score(data: RunData, model_dir: str, window: str,
                 config: configs.EvaluationConfig, path: Optional[str] = None) -> dict:
  """`score`, kept in a JSON file beside the model (computed once)."""
  path = path or os.path.join(os.path.dirname(model_dir), f'{window}_scores.json')
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path) as f:
      return json.load(f)
  result = score(data, model_dir, window, config)
  with tf.io.gfile.GFile(path, 'w') as f:
    json.dump(result, f)
  return result
