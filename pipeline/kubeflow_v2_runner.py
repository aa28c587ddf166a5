"""Compiles the pipeline to a Kubeflow Pipelines v2 spec (JSON) for the project's image.

    python -m pipeline.kubeflow_v2_runner --config kubeflow.yaml \
        --image REGISTRY/dsmoe-pipeline:TAG --output dsmoe_pipeline.json
    python -m pipeline.kubeflow_v2_runner ... --refresh    # a refresh of the latest release

A refresh names its release when it is compiled (read from the releases directory's
LATEST then), so a daily refresh compiles and submits each day (README, Daily refresh).

The config must point data_dir and output_dir at storage the cluster reads (gs://, s3://)
and usually sets beam_pipeline_args for a distributed runner; see BUILD.md. Components run
inside the image built from the Dockerfile, where the repository is at /pipeline.
Compiling needs no cluster and no network; submit the JSON with the KFP client or UI.
"""

import argparse
import dataclasses
import json
import os
import re
import sys

from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

from core import config as configs
from core import errors
from pipeline import pipeline as dsmoe_pipeline

IMAGE_REPO_ROOT = '/pipeline'  # WORKDIR of the Dockerfile
_EXECUTOR_SUFFIX = '_executor'  # the compiler's executor label: <component>_executor
_TITLE = re.compile(r'^title: (\S+)$', re.MULTILINE)
_SCHEMA_TITLE = re.compile(r'schema_title="[^"]*"')


def compile_pipeline(config: configs.PipelineConfig, image: str, output_file: str) -> str:
  """Writes the KFP v2 pipeline spec of `config` and returns its path. Vertex training
  workers (training.vertex) run `image` unless the config names another."""
  config = dataclasses.replace(config, runtime_root=IMAGE_REPO_ROOT)
  vertex = config.training.vertex
  if vertex.enabled and not vertex.image:
    config = dataclasses.replace(config, training=dataclasses.replace(
        config.training, vertex=dataclasses.replace(vertex, image=image)))
  runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
      config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(default_image=image),
      output_dir=os.path.dirname(os.path.abspath(output_file)),
      output_filename=os.path.basename(output_file))
  runner.run(dsmoe_pipeline.create_pipeline(config), write_out=True)
  with open(output_file) as f:
    compiled = json.load(f)
  query_declared_types(compiled['pipelineSpec'])
  with open(output_file, 'w') as f:
    json.dump(compiled, f, indent=2, sort_keys=True)
  return output_file


def query_declared_types(spec: dict) -> None:
  """Makes every resolver query ask for the artifact type its output declares.

  TFX's KFP v2 compiler writes the queries of LatestBlessedModelStrategy with the standard
  types' titles (tfx.Model, tfx.ModelBlessing) whatever the resolver's channels are, so the
  ranker's resolver (dsmoe.RankerModel, dsmoe.RankerBlessing) would resolve the latest
  blessed retrieval model. Each query's schema_title becomes the title its output
  artifact declares (the instanceSchema's, or schemaTitle), in place.
  """
  for label, executor in spec['deploymentSpec']['executors'].items():
    queries = executor.get('resolver', {}).get('outputArtifactQueries', {})
    component = spec['components'][label[:-len(_EXECUTOR_SUFFIX)]]
    outputs = component.get('outputDefinitions', {}).get('artifacts', {})
    for key, query in queries.items():
      declared = outputs[key]['artifactType']
      title = declared.get('schemaTitle') or _TITLE.search(declared['instanceSchema'])[1]
      query['filter'] = _SCHEMA_TITLE.sub(f'schema_title="{title}"', query['filter'])


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default='', help='YAML config for the cluster run')
  parser.add_argument('--preset', default='',
                      help='a preset of presets/ under the config, e.g. paper (everything '
                      'beyond the DSMOE paper off)')
  parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE')
  parser.add_argument('--image', required=True, help='the image built from the Dockerfile')
  parser.add_argument('--output', default='dsmoe_pipeline.json')
  parser.add_argument('--refresh', nargs='?', const='latest', default='',
                      metavar='RELEASE',
                      help='a daily refresh (core/config.py RefreshConfig) of RELEASE '
                      '(default: the latest release now) instead of a full run')
  args = parser.parse_args(argv)
  try:
    config = configs.load_config(args.config, args.set, args.preset)
    if args.refresh:
      config = configs.for_refresh(config, '' if args.refresh == 'latest' else args.refresh)
    print(compile_pipeline(config, args.image, args.output))
  except errors.InputError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
