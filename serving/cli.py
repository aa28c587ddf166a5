"""Command line: query a release, or serve it over HTTP.

  python -m serving query --release DIR --user-id U --scenario S [-k 50] [--exact]
                          [--feature NAME=VALUE ...]
      prints {"release", "user_id", "scenario", "known_user", "items", "scores"} as JSON
  python -m serving query --release DIR --requests FILE --output OUT.jsonl [-k 100]
      answers every line of a CSV or JSONL file of user_id,scenario (serving/batch.py)
  python -m serving recommend --release DIR --user-id U --scenario S [-k 10]
                          [--candidates 200] [--exclude ITEM ...] [--weight TASK=W ...]
                          [--feature NAME=VALUE ...]
      retrieval + the release's ranker (serving/recommender.py): prints {"release",
      "ranker", "user_id", "scenario", "items", "scores", "probabilities",
      "retrieval_scores", "weights", "known_user"} as JSON
  python -m serving recommend --release DIR --requests FILE --output OUT.jsonl [-k 10]
      the same for every line of a CSV or JSONL file (exclude, weights per line)
  python -m serving serve --release DIR [--host 127.0.0.1] [--port 8000]
      the HTTP service (serving/service.py)

DIR is a release directory, outputs/releases/latest, or outputs/releases. Exit codes:
0 done; 1 the release cannot be served (recommend: or has no ranker); 2 a bad request (the message names the field;
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
  _request_arguments(query, k=50)
  query.add_argument('--exact', action='store_true',
                     help='brute-force search over every item instead of ScaNN')
  recommend = commands.add_parser(
      'recommend', help='retrieval + the ranker: top-k for one request or a file')
  _request_arguments(recommend, k=10)
  recommend.add_argument('--candidates', type=int, default=None,
                         help="items retrieved and ranked (default: the release's "
                         'recommend.json, 200)')
  recommend.add_argument('--exclude', action='append', default=[], metavar='ITEM',
                         help='one request: an item id never to return (repeatable)')
  recommend.add_argument('--weight', action='append', default=[], metavar='TASK=W',
                         help="one request: a task's blend weight (overrides the release's)")
  serve = commands.add_parser('serve', help='run the HTTP service')
  serve.add_argument('--release', required=True, help='release directory')
  serve.add_argument('--host', default='127.0.0.1')
  serve.add_argument('--port', type=int, default=8000)
  serve.add_argument('--max-requests', type=int, default=1000,
                     help='requests per POST at most')
  serve.add_argument('--max-k', type=int, default=1000)
  serve.add_argument('--no-verify', action='store_true')
  return parser


def _request_arguments(parser: argparse.ArgumentParser, k: int) -> None:
  parser.add_argument('--release', required=True, help='release directory')
  parser.add_argument('--user-id', help='one request: the user id')
  parser.add_argument('--scenario', help='one request: the raw scenario value')
  parser.add_argument('--feature', action='append', default=[], metavar='NAME=VALUE',
                      help='one request: a user feature (overrides the snapshot); list '
                      'features separate values with |')
  parser.add_argument('--requests', help='batch: CSV or JSONL file of user_id,scenario')
  parser.add_argument('--output', help='batch: the JSONL file to write')
  parser.add_argument('-k', '--k', type=int, default=k, help='items per request')
  parser.add_argument('--no-verify', action='store_true',
                      help='skip the checksum of every release file (faster start)')


def _pairs(values: list[str], option: str) -> dict:
  from serving.retriever import RequestError  # pylint: disable=g-import-not-at-top
  pairs = {}
  for item in values:
    name, sep, value = item.partition('=')
    if not sep:
      raise RequestError(option, f'{item!r} must look like NAME=VALUE')
    pairs[name] = value
  return pairs


def _arguments_error(args) -> str:
  """What is wrong with the single-or-batch options, or ''."""
  single = args.user_id is not None or args.scenario is not None
  if single == bool(args.requests):
    return ('give --user-id and --scenario (one request) or --requests and --output '
            '(a batch)')
  if args.requests and not args.output:
    return '--output: the batch needs an output file'
  if args.requests and not os.path.isfile(args.requests):
    return f'--requests: {args.requests} is not a file'
  return ''


def _report_batch(summary, output: str) -> int:
  print(f'{summary.lines:,} requests in {summary.seconds:.1f} s: {summary.ok:,} '
        f'answered ({summary.unknown_users:,} unknown users), {summary.bad:,} bad '
        f'lines; results in {output}', file=sys.stderr)
  return EXIT_REQUEST if summary.bad else 0


def _recommend(args) -> int:
  from serving import batch  # pylint: disable=g-import-not-at-top
  from serving import recommender as recommender_lib  # pylint: disable=g-import-not-at-top
  from serving.retriever import RequestError  # pylint: disable=g-import-not-at-top
  problem = _arguments_error(args)
  if problem:
    print(f'error: {problem}', file=sys.stderr)
    return EXIT_REQUEST
  retriever = _load(args)
  if retriever is None:
    return EXIT_RELEASE
  recommender = recommender_lib.Recommender(retriever.release)
  try:
    recommender.require_ranker()
  except recommender_lib.NoRankerError as e:
    print(f'error: --release: {e}', file=sys.stderr)
    return EXIT_RELEASE
  try:
    candidates = recommender.check_candidates(args.candidates)
    k = recommender.check_k(args.k, candidates)
    if args.requests:
      return _report_batch(batch.run_batch(
          batch.Recommendation(recommender, k, candidates), args.requests, args.output,
          progress=sys.stderr), args.output)
    request = recommender_lib.parse_recommend_request({
        'user_id': args.user_id or '', 'scenario': args.scenario or '',
        'features': _pairs(args.feature, '--feature'), 'exclude': args.exclude,
        'weights': _pairs(args.weight, '--weight')})
    [result] = recommender.recommend([request], k, candidates)
  except RequestError as e:
    print(f'error: {e}', file=sys.stderr)
    return EXIT_REQUEST
  print(json.dumps({'release': recommender.version,
                    'ranker': recommender.ranker_id,
                    'candidates': candidates, **result.to_json()}))
  return 0


def _query(args) -> int:
  from serving import batch  # pylint: disable=g-import-not-at-top
  from serving.retriever import parse_request, RequestError  # pylint: disable=g-import-not-at-top
  problem = _arguments_error(args)
  if problem:
    print(f'error: {problem}', file=sys.stderr)
    return EXIT_REQUEST
  retriever = _load(args)
  if retriever is None:
    return EXIT_RELEASE
  try:
    k = retriever.check_k(args.k)
    if args.requests:
      return _report_batch(batch.run_batch(batch.Retrieval(retriever, k, args.exact),
                                           args.requests, args.output, progress=sys.stderr),
                           args.output)
    request = parse_request({'user_id': args.user_id or '', 'scenario':
                             args.scenario or '', 'features': _pairs(args.feature,
                                                                     '--feature')})
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
  print(f'serving release {holder.current.version} on http://{args.host}:{args.port} '
        f'(docs: /docs)', flush=True)
  server.run()
  return 0


def main(argv=None) -> int:
  args = _parser().parse_args(argv)
  return {'query': _query, 'recommend': _recommend, 'serve': _serve}[args.command](args)
