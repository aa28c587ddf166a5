"""Command line: query a release, or serve it over HTTP.

  python -m serving query --release DIR --user-id U --scenario S [-k 50] [--exact]
                          [--exclude ITEM ...] [--feature NAME=VALUE ...]
      prints {"release", "user_id", "scenario", "known_user", "items", "scores"} as JSON
  python -m serving query --release DIR --requests FILE --output OUT.jsonl [-k 100]
      answers every line of a CSV or JSONL file of user_id,scenario (serving/batch.py;
      optional exclude column: item ids separated by |)
  python -m serving recommend --release DIR --user-id U --scenario S [-k 10]
                          [--candidates 200] [--exclude ITEM ...] [--weight TASK=W ...]
                          [--feature NAME=VALUE ...]
      retrieval + the release's ranker (serving/recommender.py): prints {"release",
      "ranker", "user_id", "scenario", "items", "scores", "probabilities",
      "retrieval_scores", "weights", "known_user"} as JSON
  python -m serving recommend --release DIR --requests FILE --output OUT.jsonl [-k 10]
      the same for every line of a CSV or JSONL file (exclude, weights per line)
  python -m serving serve --release DIR [--host 127.0.0.1] [--port 8000]
                          [--max-batch 64] [--max-wait-ms 0] [--no-admin]
      the HTTP service (serving/service.py); /admin/* needs the bearer token in the
      environment variable DSMOE_ADMIN_TOKEN, and without it the service refuses a
      non-loopback --host unless --no-admin

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
  recommend.add_argument('--weight', action='append', default=[], metavar='TASK=W',
                         help="one request: a task's blend weight (overrides the release's)")
  serve = commands.add_parser('serve', help='run the HTTP service')
  serve.add_argument('--release', required=True, help='release directory')
  serve.add_argument('--host', default='127.0.0.1')
  serve.add_argument('--port', type=int, default=8000)
  serve.add_argument('--max-requests', type=int, default=1000,
                     help='requests per POST at most')
  serve.add_argument('--max-k', type=int, default=1000)
  serve.add_argument('--max-batch', type=int, default=64,
                     help='requests per micro-batched model call (1: no batching)')
  serve.add_argument('--max-wait-ms', type=float, default=0.0,
                     help='how long a request waits for others to share its model call '
                     '(0: only those that queued while the model was busy)')
  serve.add_argument('--no-admin', action='store_true',
                     help='leave out /admin/* (reloads then only by SIGHUP)')
  serve.add_argument('--drain-seconds', type=float, default=30.0,
                     help='on SIGTERM, how long requests in flight may take to finish')
  serve.add_argument('--no-verify', action='store_true')
  return parser


def _request_arguments(parser: argparse.ArgumentParser, k: int) -> None:
  parser.add_argument('--release', required=True, help='release directory')
  parser.add_argument('--user-id', help='one request: the user id')
  parser.add_argument('--scenario', help='one request: the raw scenario value')
  parser.add_argument('--feature', action='append', default=[], metavar='NAME=VALUE',
                      help='one request: a user feature (overrides the snapshot); list '
                      'features separate values with |')
  parser.add_argument('--exclude', action='append', default=[], metavar='ITEM',
                      help='one request: an item id never to return (repeatable)')
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


def _open(args, ranker: bool):
  """(Recommender, None) for the release of args, or (None, exit code) after printing
  what is wrong with the options or the release."""
  from serving import recommender as recommender_lib  # pylint: disable=g-import-not-at-top
  from serving.release import load_release, ReleaseLoadError  # pylint: disable=g-import-not-at-top
  problem = _arguments_error(args)
  if problem:
    print(f'error: {problem}', file=sys.stderr)
    return None, EXIT_REQUEST
  try:
    recommender = recommender_lib.Recommender(load_release(
        args.release, verify_checksums=not args.no_verify, ranker=ranker))
    if ranker:
      recommender.require_ranker()
  except (ReleaseLoadError, recommender_lib.NoRankerError) as e:
    print(f'error: --release: {e}', file=sys.stderr)
    return None, EXIT_RELEASE
  return recommender, None


def _one_request(args) -> dict:
  return {'user_id': args.user_id or '', 'scenario': args.scenario or '',
          'features': _pairs(args.feature, '--feature'), 'exclude': args.exclude}


def _recommend(args) -> int:
  from serving import batch  # pylint: disable=g-import-not-at-top
  from serving import recommender as recommender_lib  # pylint: disable=g-import-not-at-top
  from serving.retriever import RequestError  # pylint: disable=g-import-not-at-top
  recommender, code = _open(args, ranker=True)
  if recommender is None:
    return code
  try:
    candidates = recommender.check_candidates(args.candidates)
    k = recommender.check_k(args.k, candidates)
    if args.requests:
      return _report_batch(batch.run_batch(
          batch.Recommendation(recommender, k, candidates), args.requests, args.output,
          progress=sys.stderr), args.output)
    request = recommender_lib.parse_recommend_request(
        {**_one_request(args), 'weights': _pairs(args.weight, '--weight')})
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
  recommender, code = _open(args, ranker=False)
  if recommender is None:
    return code
  retriever = recommender.retriever
  try:
    k = retriever.check_k(args.k)
    if args.requests:
      return _report_batch(batch.run_batch(batch.Retrieval(retriever, k, args.exact),
                                           args.requests, args.output, progress=sys.stderr),
                           args.output)
    [result] = retriever.retrieve([parse_request(_one_request(args))], k, args.exact)
  except RequestError as e:
    print(f'error: {e}', file=sys.stderr)
    return EXIT_REQUEST
  print(json.dumps({'release': retriever.version, **result.to_json(),
                    'search': 'exact' if args.exact else 'scann'}))
  return 0


def _serve(args) -> int:
  import uvicorn  # pylint: disable=g-import-not-at-top
  from serving import service  # pylint: disable=g-import-not-at-top
  from serving.release import ReleaseLoadError  # pylint: disable=g-import-not-at-top
  token = os.environ.get(service.ADMIN_TOKEN_ENV) or None
  problem = service.check_admin(args.host, not args.no_admin, token)
  if not problem and not (args.max_batch >= 1 and args.max_wait_ms >= 0):
    problem = '--max-batch must be at least 1 and --max-wait-ms at least 0'
  if problem:
    print(f'error: {problem}', file=sys.stderr)
    return EXIT_REQUEST
  service.configure_logging()
  try:
    holder = service.ReleaseHolder(args.release, verify_checksums=not args.no_verify)
  except ReleaseLoadError as e:
    print(f'error: --release: {e}', file=sys.stderr)
    return EXIT_RELEASE
  app = service.create_app(
      holder, service.ServingLimits(max_requests=args.max_requests, max_k=args.max_k,
                                    max_batch=args.max_batch, max_wait_ms=args.max_wait_ms),
      admin=not args.no_admin, admin_token=token)
  config = uvicorn.Config(app, host=args.host, port=args.port, log_level='info',
                          access_log=False, timeout_graceful_shutdown=args.drain_seconds)
  server = service.Server(config, holder)
  service.install_reload_signal(app)
  print(f'serving release {holder.current.version} on http://{args.host}:{args.port} '
        f'(docs: /docs)', flush=True)
  server.run()
  return 0


def main(argv=None) -> int:
  args = _parser().parse_args(argv)
  return {'query': _query, 'recommend': _recommend, 'serve': _serve}[args.command](args)
