"""Command line: query a release, or serve it over HTTP.

  python -m serving query --release DIR --user-id U --scenario S [-k 50] [--exact]
                          [--feature NAME=VALUE ...]
      prints {"release", "user_id", "scenario", "known_user", "items", "scores"} as JSON
  python -m serving query --release DIR --requests FILE --output OUT.jsonl [-k 100]
      answers every line of a CSV or JSONL file of user_id,scenario (serving/batch.py)
  python -m serving serve --release DIR [--host 127.0.0.1] [--port 8000]
      the HTTP service (serving/service.py)

DIR is a release directory, outputs/releases/latest, or outputs/releases. Exit codes:
0 done; 1 the release cannot be served; 2 a bad request (the message names the field;
in batch mode: some lines were bad, the others were answered).
"""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')  # no CUDA-probe noise on stderr

import argparse  # pylint: disable=g-import-not-at-top,wrong-import-position
import json
import sys

EXIT_RELEASE = 1
EXIT_REQUEST = 2


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog='python -m serving',
                                   description=__doc__.splitlines()[0])
  commands = parser.add_subparsers(dest='command', required=True)
  query = commands.add_parser('query', help='top-K items for one request or a file')
  query.add_argument('--release', required=True, help='release directory')
  query.add_argument('--user-id', help='one request: the user id')
  query.add_argument('--scenario', help='one request: the raw scenario value')
  query.add_argument('--feature', action='append', default=[], metavar='NAME=VALUE',
                     help='one request: a user feature (overrides the snapshot); list '
                     'features separate values with |')
  query.add_argument('--requests', help='batch: CSV or JSONL file of user_id,scenario')
  query.add_argument('--output', help='batch: the JSONL file to write')
  query.add_argument('-k', '--k', type=int, default=50, help='items per request')
  query.add_argument('--exact', action='store_true',
                     help='brute-force search over every item instead of ScaNN')
  query.add_argument('--no-verify', action='store_true',
                     help='skip the checksum of every release file (faster start)')
  serve = commands.add_parser('serve', help='run the HTTP service')
  serve.add_argument('--release', required=True, help='release directory')
  serve.add_argument('--host', default='127.0.0.1')
  serve.add_argument('--port', type=int, default=8000)
  serve.add_argument('--max-requests', type=int, default=1000,
                     help='requests per POST at most')
  serve.add_argument('--max-k', type=int, default=1000)
  serve.add_argument('--no-verify', action='store_true')
  return parser


def _query(args) -> int:
  from serving import batch  # pylint: disable=g-import-not-at-top
  from serving.retriever import parse_request, RequestError  # pylint: disable=g-import-not-at-top
  single = args.user_id is not None or args.scenario is not None
  if single == bool(args.requests):
    print('error: give --user-id and --scenario (one request) or --requests and --output '
          '(a batch)', file=sys.stderr)
    return EXIT_REQUEST
  if args.requests and not args.output:
    print('error: --output: the batch needs an output file', file=sys.stderr)
    return EXIT_REQUEST
  if args.requests and not os.path.isfile(args.requests):
    print(f'error: --requests: {args.requests} is not a file', file=sys.stderr)
    return EXIT_REQUEST
  retriever = _load(args)
  if retriever is None:
    return EXIT_RELEASE
  try:
    k = retriever.check_k(args.k)
    if args.requests:
      summary = batch.run_batch(retriever, args.requests, args.output, k, args.exact,
                                progress=sys.stderr)
      print(f'{summary.lines:,} requests in {summary.seconds:.1f} s: {summary.ok:,} '
            f'answered ({summary.unknown_users:,} unknown users), {summary.bad:,} bad '
            f'lines; results in {args.output}', file=sys.stderr)
      return EXIT_REQUEST if summary.bad else 0
    features = {}
    for item in args.feature:
      name, sep, value = item.partition('=')
      if not sep:
        raise RequestError('--feature', f'{item!r} must look like NAME=VALUE')
      features[name] = value
    request = parse_request({'user_id': args.user_id or '', 'scenario':
                             args.scenario or '', 'features': features})
    [result] = retriever.retrieve([request], k, args.exact)
  except RequestError as e:
    print(f'error: {e}', file=sys.stderr)
    return EXIT_REQUEST
  print(json.dumps({'release': retriever.version, **result.to_json(),
                    'search': 'exact' if args.exact else 'scann'}))
  return 0


def _load(args):
  from serving.release import load_release, ReleaseLoadError  # pylint: disable=g-import-not-at-top
  from serving.retriever import Retriever  # pylint: disable=g-import-not-at-top
  try:
    return Retriever(load_release(args.release, verify_checksums=not args.no_verify))
  except ReleaseLoadError as e:
    print(f'error: --release: {e}', file=sys.stderr)
    return None


def _serve(args) -> int:
  import uvicorn  # pylint: disable=g-import-not-at-top
  from serving import service  # pylint: disable=g-import-not-at-top
  from serving.release import ReleaseLoadError  # pylint: disable=g-import-not-at-top
  try:
    holder = service.ReleaseHolder(args.release, verify_checksums=not args.no_verify)
  except ReleaseLoadError as e:
    print(f'error: --release: {e}', file=sys.stderr)
    return EXIT_RELEASE
  app = service.create_app(holder, service.ServingLimits(max_requests=args.max_requests,
                                                         max_k=args.max_k))
  config = uvicorn.Config(app, host=args.host, port=args.port, log_level='info')
  server = uvicorn.Server(config)
  service.install_reload_signal(holder)
  print(f'serving release {holder.retriever.version} on http://{args.host}:{args.port} '
        f'(docs: /docs)', flush=True)
  server.run()
  return 0


def main(argv=None) -> int:
  args = _parser().parse_args(argv)
  return _query(args) if args.command == 'query' else _serve(args)
