"""Starting a server: migrate the database, start queue workers as child processes, run uvicorn."""
from __future__ import annotations

import logging
import os
import subprocess
import sys

from vosbench.server.config import ServerConfig, config_from_env
from vosbench.server.db import Database

log = logging.getLogger(__name__)


def worker_command(workers: int = 1) -> list[str]:
    return [sys.executable, "-m", "vosbench.server.worker", "--threads", str(workers)]


def start_worker(config: ServerConfig, threads: int = 1) -> subprocess.Popen:
    """A queue worker process for `config` (its configuration travels in the environment)."""
    env = dict(os.environ, **config.to_env())
    return subprocess.Popen(worker_command(threads), env=env)


def serve(config: ServerConfig, *, host: str = "127.0.0.1", port: int = 8000, worker_threads: int = 1,
          start_workers: bool = True) -> None:
    """Serve `config` until interrupted. worker_threads: Huey worker threads in the child worker process
    (start_workers=False: run `vosbench serve worker` yourself, on this or another machine sharing data_dir)."""
    import uvicorn

    from vosbench.server.app import create_app

    db = Database(config.database_url)
    db.upgrade()
    app = create_app(config, db=db, migrate=False)
    worker = start_worker(config, worker_threads) if start_workers else None
    try:
        log.info("serving %s (%s, %s) on http://%s:%d", config.title, config.dataset.value, config.split, host, port)
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()


def worker_main(argv: list[str] | None = None) -> int:
    import argparse

    from vosbench.server.queue import run_worker

    parser = argparse.ArgumentParser(description="a vosbench server's queue worker (configured by the environment)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--poll", type=float, default=1.0, help="longest wait between polls of the queue (s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(message)s", stream=sys.stderr)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    config = config_from_env()
    db = Database(config.database_url)
    db.upgrade()
    db.dispose()
    run_worker(config, workers=args.threads, poll_seconds=args.poll)
    return 0
