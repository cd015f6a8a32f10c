"""The job queue: Huey with its SQLite storage (``data_dir/queue.db``), whatever database the server uses.

The web process enqueues submission ids; `run_worker` runs Huey's consumer, whose
task scores one submission (`jobs.score_submission`). A periodic task puts back
jobs whose worker died (their lease ran out); a worker also does so when it starts.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from vosbench.server.config import ServerConfig
from vosbench.server.db import Database
from vosbench.server import jobs

log = logging.getLogger(__name__)


@dataclass
class Queue:
    huey: Any
    score: Any  # the Huey task

    def enqueue(self, submission_id: int, delay: float = 0.0) -> None:
        if delay > 0:
            self.score.schedule(args=(submission_id,), delay=delay)
        else:
            self.score(submission_id)


def make_queue(config: ServerConfig, db: Database, *, immediate: bool = False) -> Queue:
    """The queue of `config`. immediate: run each job at once in the caller (tests, single-process use)."""
    from huey import SqliteHuey, crontab

    config.data_dir.mkdir(parents=True, exist_ok=True)
    huey = SqliteHuey(name="vosbench-server", filename=str(config.queue_path), results=False,
                      immediate=immediate, utc=True)

    @huey.task(name="vosbench.score_submission", retries=2, retry_delay=5)
    def score(submission_id: int) -> str:
        outcome = jobs.score_submission(config, db, submission_id)
        log.info("submission %s: %s", submission_id, outcome)
        return outcome

    queue = Queue(huey=huey, score=score)

    @huey.periodic_task(crontab(minute="*"), name="vosbench.requeue_stale")
    def requeue() -> None:
        jobs.requeue_stale(db, queue.enqueue, running_only=True)

    return queue


def run_worker(config: ServerConfig, *, workers: int = 1, poll_seconds: float = 1.0) -> None:
    """Run Huey's consumer until interrupted; first put back every job no live worker holds."""
    db = Database(config.database_url)
    queue = make_queue(config, db)
    found = jobs.requeue_stale(db, queue.enqueue)
    if found:
        log.info("worker: %d unfinished job(s) put back on the queue", len(found))
    consumer = queue.huey.create_consumer(workers=workers, worker_type="thread", periodic=True,
                                          initial_delay=min(0.1, poll_seconds), max_delay=poll_seconds,
                                          check_worker_health=True)
    consumer.run()
