"""`vosbench serve`: host a benchmark whose ground truth stays on the server; admin actions on its users."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from vosbench.cli.choices import add_enum_argument
from vosbench.errors import VosbenchError
from vosbench.io.factory import DatasetKind
from vosbench.tracks.interactive.engine import BudgetRule
from vosbench.tracks.params import Track

log = logging.getLogger(__name__)

ACTIONS = ["add-user", "reset-key", "set-user", "list-users", "worker", "migrate"]


def _storage_arguments(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--db", default=default, metavar="URL",
                        help="SQLAlchemy database URL (default: SQLite in WAL mode at DATA_DIR/server.db); "
                             "e.g. postgresql://user:password@host/dbname")
    parser.add_argument("--data-dir", type=Path, default=default,
                        help="uploads, scores and the job queue (default: $VOSBENCH_HOME/server)")


def _benchmark_arguments(parser: argparse.ArgumentParser, suppress: bool) -> None:
    def default(value):
        return argparse.SUPPRESS if suppress else value

    parser.add_argument("--gt", type=Path, default=default(None),
                        help="dataset root whose ground truth is scored against, never served "
                             "(default: the embedded synthetic dataset, as `vosbench run`)")
    add_enum_argument(parser, "--dataset", DatasetKind, default=default(None),
                      help="dataset kind of --gt (default: detected from the folder)")
    parser.add_argument("--split", default=default("val"))
    parser.add_argument("--resolution", default=default("480p"))
    parser.add_argument("--tracks", default=default("semi,unsupervised"),
                        help="tracks taking submissions, comma-separated (semi, unsupervised)")
    parser.add_argument("--title", default=default("vosbench benchmark"))
    parser.add_argument("--daily-limit", type=int, default=default(5),
                        help="submissions per user per UTC day (a user's own limit wins; -1: none)")
    parser.add_argument("--max-upload-mb", type=float, default=default(200.0))
    parser.add_argument("--lease-seconds", type=float, default=default(60.0),
                        help="a job whose worker sent no heartbeat for this long is retried")
    parser.add_argument("--interactive-gt", type=Path, default=default(None),
                        help="DAVIS 2017-layout root of the interactive track (the DAVIS interactive client's "
                             "remote protocol); its Scribbles/ give the first scribbles, else the robot draws them")
    parser.add_argument("--interactive-split", default=default("test-dev"),
                        help="split of --interactive-gt (the DAVIS client plays only test-dev)")
    parser.add_argument("--interactive-max-interactions", type=int, default=default(8))
    parser.add_argument("--interactive-max-time", type=float, default=default(240.0),
                        help="seconds per object and sample")
    parser.add_argument("--interactive-seed", type=int, default=default(None),
                        help="the robot's tie-break: by default the official scribbles (the DAVIS interactive "
                             "challenges' tie-break); an integer gives another robot, not the official scribbles")
    add_enum_argument(parser, "--interactive-budget-rule", BudgetRule, default=default(BudgetRule.METHOD_TIME),
                      help="how a sample's time budget is charged on the server: method-time (the timings the "
                           "client reports; the DAVIS client itself also stops a sample past the budget by its "
                           "wall clock) or wall-clock (the server's clock since it handed out the sample's "
                           "first scribble)")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="host a benchmark with hidden ground truth (web pages, API, job queue, leaderboard)",
        description="Without an action: migrate the database, start a queue worker and serve on --host:--port. "
                    "Needs the server extra: pip install 'vosbench[server]'.")
    _storage_arguments(parser, suppress=False)
    _benchmark_arguments(parser, suppress=False)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--worker-threads", type=int, default=1, help="submissions scored at once")
    parser.add_argument("--no-worker", dest="start_worker", action="store_false",
                        help="do not start a queue worker (run `vosbench serve worker` yourself)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    add = actions.add_parser("add-user", help="create a user and print their key (shown once)")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true")
    add.add_argument("--user-daily-limit", dest="user_daily_limit", type=int, default=None,
                     help="this user's submissions per UTC day (default: the server's --daily-limit)")
    reset = actions.add_parser("reset-key", help="give a user a new key (the old one stops working)")
    reset.add_argument("name")
    set_user = actions.add_parser("set-user", help="change a user's daily limit, disable or enable them")
    set_user.add_argument("name")
    set_user.add_argument("--user-daily-limit", dest="user_daily_limit", type=int, default=None,
                          help="-1: back to the server's limit")
    state = set_user.add_mutually_exclusive_group()
    state.add_argument("--disable", dest="disabled", action="store_const", const=True, default=None)
    state.add_argument("--enable", dest="disabled", action="store_const", const=False)
    actions.add_parser("list-users", help="list users (names, key prefixes, limits, submission counts)")
    worker = actions.add_parser("worker", help="run a queue worker (scores submissions) in the foreground")
    worker.add_argument("--threads", type=int, default=1)
    _benchmark_arguments(worker, suppress=True)
    actions.add_parser("migrate", help="bring the database schema up to date (Alembic)")
    for sub in (add, reset, set_user, worker, *[actions.choices[a] for a in ("list-users", "migrate")]):
        _storage_arguments(sub, suppress=True)
    parser.set_defaults(func=run)


def _config(args: argparse.Namespace):
    from vosbench.server.config import Limits, ServerConfig, default_data_dir

    gt = args.gt
    if gt is None:
        if args.dataset not in (None, DatasetKind.SYNTHETIC):
            raise VosbenchError(f"--dataset {args.dataset.value} needs --gt ROOT, the folder holding Annotations/ "
                                "(without --gt the embedded synthetic dataset is served).")
        from vosbench.io.synthetic import default_dataset_root

        gt = default_dataset_root()
    try:
        tracks = tuple(Track(t.strip()) for t in args.tracks.split(",") if t.strip())
    except ValueError:
        raise VosbenchError(f"--tracks {args.tracks!r}: choose from semi, unsupervised.") from None
    if not tracks or Track.INTERACTIVE in tracks:
        raise VosbenchError("--tracks takes semi and/or unsupervised.")
    limits = Limits(max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
                    daily_submissions=args.daily_limit)
    return ServerConfig(gt=gt, dataset=args.dataset, split=args.split, resolution=args.resolution,
                        tracks=tracks, db_url=args.db, data_dir=args.data_dir or default_data_dir(),
                        title=args.title, limits=limits, lease_seconds=args.lease_seconds,
                        interactive_gt=args.interactive_gt, interactive_split=args.interactive_split,
                        interactive_max_interactions=args.interactive_max_interactions,
                        interactive_max_time=args.interactive_max_time, interactive_seed=args.interactive_seed,
                        interactive_budget_rule=args.interactive_budget_rule)


def _database(args: argparse.Namespace):
    from vosbench.server.config import default_data_dir
    from vosbench.server.db import Database

    data_dir = args.data_dir or default_data_dir()
    db = Database(args.db or f"sqlite:///{data_dir / 'server.db'}")
    db.upgrade()
    return db


def run(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import huey  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError as exc:
        raise VosbenchError(f"vosbench serve needs the server extra ({exc.name} is missing): "
                            "pip install 'vosbench[server]'") from None
    from vosbench.server import users

    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration step otherwise
    if args.action is None:
        from vosbench.server.runner import serve

        serve(_config(args), host=args.host, port=args.port, worker_threads=args.worker_threads,
              start_workers=args.start_worker)
        return 0
    if args.action == "worker":
        from vosbench.server.queue import run_worker

        config = _config(args)
        _database(args)
        run_worker(config, workers=args.threads)
        return 0
    db = _database(args)
    if args.action == "migrate":
        from vosbench.server.db import current_revision

        print(f"database at revision {current_revision(db.engine)}")
    elif args.action == "add-user":
        key = users.add_user(db, args.name, admin=args.admin, daily_limit=args.user_daily_limit)
        print(f"user {args.name} created; their key (shown only now, store it):\n{key}")
    elif args.action == "reset-key":
        print(f"new key of {args.name} (the old one no longer works):\n{users.reset_key(db, args.name)}")
    elif args.action == "set-user":
        users.set_user(db, args.name, daily_limit=args.user_daily_limit, disabled=args.disabled)
        print(f"user {args.name} updated")
    elif args.action == "list-users":
        for row in users.list_users(db):
            print(f"{row['name']:<24} {row['key_prefix']}...  admin={row['admin']} disabled={row['disabled']} "
                  f"daily_limit={row['daily_limit']} submissions={row['submissions']}")
    db.dispose()
    return 0
