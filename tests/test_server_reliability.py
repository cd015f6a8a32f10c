"""Real `vosbench serve` and `vosbench serve worker` processes (127.0.0.1 only): 50 concurrent submissions are
all scored once; a worker killed in the middle of a job has it retried; a restarted server keeps its leaderboard."""
from __future__ import annotations

import concurrent.futures
import time

import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed (pip install -e '.[test]')")

import httpx  # noqa: E402
from sqlalchemy import select  # noqa: E402

import vosbench  # noqa: E402
from server_support import (free_port, make_gt, make_results, start_server, start_worker,  # noqa: E402
                            wait_until)
from vosbench.server import users  # noqa: E402
from vosbench.server.db import Database, Status, Submission  # noqa: E402
from vosbench.server.jobs import HOLD_ENV  # noqa: E402
from vosbench.tracks.pack import pack_results  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    gt = make_gt(root / "gt")
    results = make_results(gt, root / "masks", shift=2)
    return gt, results, pack_results(results, root / "results.zip").read_bytes()


def submit(base: str, key: str, data: bytes, method: str) -> httpx.Response:
    return httpx.post(f"{base}/api/submissions", headers={"Authorization": f"Bearer {key}"},
                      data={"track": "semi", "method": method},
                      files={"file": ("results.zip", data, "application/zip")}, timeout=120)


def rows(db: Database) -> list[Submission]:
    with db.session() as session:
        return list(session.scalars(select(Submission).order_by(Submission.id)))


def test_concurrent_submissions_all_scored_once_and_a_restart_keeps_the_leaderboard(bench, tmp_path):
    gt, results, data = bench
    data_dir = tmp_path / "data"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(gt, data_dir, port, tmp_path / "server.log")
    worker = start_worker(gt, data_dir, tmp_path / "worker.log", "--threads", "2")
    db = Database(f"sqlite:///{data_dir / 'server.db'}")
    try:
        keys = [users.add_user(db, f"user{k:02d}") for k in range(5)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
            futures = [pool.submit(submit, base, keys[k % 5], data, f"run{k:02d}") for k in range(50)]
            responses = [f.result(timeout=300) for f in futures]
        assert [r.status_code for r in responses] == [201] * 50, [r.text for r in responses if r.status_code != 201]
        ids = sorted(r.json()["id"] for r in responses)
        assert ids == list(range(1, 51))

        def all_scored():
            assert worker.alive(), worker.log()
            return all(r.status == Status.DONE for r in rows(db))

        wait_until(all_scored, timeout=600, interval=1.0, what="50 submissions scored")
        done = rows(db)
        assert len(done) == 50
        assert {r.method for r in done} == {f"run{k:02d}" for k in range(50)}
        assert all(r.scored_count == 1 and r.attempts == 1 for r in done), [(r.id, r.attempts, r.scored_count)
                                                                             for r in done]
        expected = vosbench.evaluate(gt, results, cache=False).summary
        assert all(r.scores == expected for r in done)
        board = httpx.get(f"{base}/leaderboard.json", timeout=30).json()
        assert sorted(row["user"] for row in board["rows"]) == [f"user{k:02d}" for k in range(5)]
        html = httpx.get(f"{base}/leaderboard", timeout=30).text

        server.stop()
        server = start_server(gt, data_dir, port, tmp_path / "server2.log")
        assert httpx.get(f"{base}/leaderboard.json", timeout=30).json() == board
        assert httpx.get(f"{base}/leaderboard", timeout=30).text == html
        mine = httpx.get(f"{base}/api/submissions", headers={"User-Key": keys[0]}, timeout=30).json()
        assert len(mine) == 10 and all(s["status"] == "done" for s in mine)
    finally:
        worker.stop()
        server.stop()
        db.dispose()


def test_a_worker_killed_mid_job_has_the_job_retried(bench, tmp_path):
    gt, results, data = bench
    data_dir = tmp_path / "data"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(gt, data_dir, port, tmp_path / "server.log")
    # The first worker holds each job for 60 s after claiming it, so it is surely killed mid-job.
    first = start_worker(gt, data_dir, tmp_path / "worker1.log", "--lease-seconds", "2", env={HOLD_ENV: "60"})
    db = Database(f"sqlite:///{data_dir / 'server.db'}")
    second = None
    try:
        key = users.add_user(db, "alice")
        response = submit(base, key, data, "killed")
        assert response.status_code == 201, response.text
        sid = response.json()["id"]

        def running():
            assert first.alive(), first.log()
            (row,) = rows(db)
            return row.status == Status.RUNNING

        wait_until(running, timeout=120, interval=0.25, what="job claimed by the first worker")
        first.kill()
        (row,) = rows(db)
        assert row.status == Status.RUNNING and row.attempts == 1 and row.scored_count == 0
        second = start_worker(gt, data_dir, tmp_path / "worker2.log", "--lease-seconds", "2")

        def finished():
            assert second.alive(), second.log()
            (row,) = rows(db)
            return row if row.status in (Status.DONE, Status.FAILED) else None

        row = wait_until(finished, timeout=180, interval=0.5, what="job retried and scored")
        assert row.status == Status.DONE, row.error
        assert row.attempts == 2 and row.scored_count == 1
        assert row.claimed_by is not None and row.lease_until is None
        assert row.scores == vosbench.evaluate(gt, results, cache=False).summary
        detail = httpx.get(f"{base}/api/submissions/{sid}", headers={"User-Key": key}, timeout=30).json()
        assert detail["status"] == "done" and detail["attempts"] == 2
        # Nothing else happens to it afterwards: a later duplicate of the job is a no-op.
        time.sleep(3)
        (again,) = rows(db)
        assert (again.status, again.attempts, again.scored_count) == (Status.DONE, 2, 1)
    finally:
        for process in (first, second, server):
            if process is not None:
                process.stop()
        db.dispose()
