"""The server on PostgreSQL: a real cluster the test starts in a temporary folder (127.0.0.1 only).

Skips, with the reason, where no PostgreSQL can be started; fails instead in CI (CI=true) or
with VOSBENCH_REQUIRE_SHARED=1.
"""
from __future__ import annotations

import concurrent.futures
import threading

import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed (pip install -e '.[test]')")

import httpx  # noqa: E402
from sqlalchemy import select  # noqa: E402

import vosbench  # noqa: E402
from server_support import (IN_CI, PostgresServer, free_port, make_gt, make_results, start_server,  # noqa: E402
                            start_worker, wait_until)
from test_server import Server  # noqa: E402
from vosbench.server import users  # noqa: E402
from vosbench.server.config import Limits, ServerConfig  # noqa: E402
from vosbench.server.db import Database, Status, Submission, current_revision  # noqa: E402
from vosbench.server.jobs import claim  # noqa: E402
from vosbench.tracks.pack import pack_results  # noqa: E402


@pytest.fixture(scope="module")
def postgres():
    try:
        server = PostgresServer().start()
    except Exception as exc:  # no binaries, no user to run them as, a start that failed
        if IN_CI:
            pytest.fail(f"PostgreSQL could not be started, and CI requires it: {exc}")
        pytest.skip(f"PostgreSQL could not be started: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    gt = make_gt(root / "gt")
    results = make_results(gt, root / "masks", shift=2)
    return gt, results, pack_results(results, root / "results.zip").read_bytes()


def _reset(url: str) -> None:
    db = Database(url)
    with db.engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")
    db.dispose()


def test_submission_scored_on_postgres_equals_vosbench_evaluate(postgres, bench, tmp_path):
    gt, results, data = bench
    _reset(postgres.url)
    server = Server(ServerConfig(gt=gt, db_url=postgres.url, data_dir=tmp_path / "data",
                                 limits=Limits(daily_submissions=10)))
    assert server.db.backend == "postgresql"
    assert current_revision(server.db.engine) == "0002"  # every migration applied
    alice = server.user("alice")
    response = server.submit(alice, data, method="pg")
    assert response.status_code == 201 and response.json()["status"] == "done", response.text
    row = server.client.get("/leaderboard.json").json()["rows"][0]
    expected = vosbench.evaluate(gt, results, cache=False).summary
    assert {c: row[c] for c in expected} == expected
    eve = server.user("eve")
    assert server.client.get(f"/api/submissions/{row['submission']}", headers=eve).status_code == 404
    server.db.dispose()


def test_a_job_is_claimed_by_one_worker_only(postgres, tmp_path):
    _reset(postgres.url)
    db = Database(postgres.url)
    db.upgrade()
    users.add_user(db, "alice")
    with db.session() as session:
        from vosbench.server.db import User

        uid = session.scalar(select(User.id))
        session.add_all([Submission(user_id=uid, track="semi", status=Status.QUEUED) for _ in range(20)])
    barrier = threading.Barrier(8)

    def race(k: int) -> list[int]:
        barrier.wait(timeout=30)
        return [sid for sid in range(1, 21) if claim(db, sid, f"worker-{k}", 60)]

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        won = [f.result(timeout=120) for f in [pool.submit(race, k) for k in range(8)]]
    claimed = sorted(sid for ids in won for sid in ids)
    assert claimed == list(range(1, 21))  # every job claimed, none twice
    with db.session() as session:
        assert all(s.attempts == 1 for s in session.scalars(select(Submission)))
    db.dispose()


def test_server_and_worker_processes_on_postgres(postgres, bench, tmp_path):
    gt, results, data = bench
    _reset(postgres.url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data_dir = tmp_path / "data"
    server = start_server(gt, data_dir, port, tmp_path / "server.log", "--db", postgres.url)
    worker = start_worker(gt, data_dir, tmp_path / "worker.log", "--db", postgres.url, "--threads", "2")
    db = Database(postgres.url)
    try:
        key = users.add_user(db, "alice")

        def post(k: int) -> httpx.Response:
            return httpx.post(f"{base}/api/submissions", headers={"User-Key": key},
                              data={"track": "semi", "method": f"m{k}"},
                              files={"file": ("r.zip", data, "application/zip")}, timeout=120)

        with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
            codes = [f.result(timeout=300).status_code for f in [pool.submit(post, k) for k in range(10)]]
        assert codes == [201] * 10

        def scored():
            assert worker.alive(), worker.log()
            with db.session() as session:
                rows = list(session.scalars(select(Submission)))
            return rows if len(rows) == 10 and all(r.status == Status.DONE for r in rows) else None

        rows = wait_until(scored, timeout=300, interval=1.0, what="10 submissions scored on PostgreSQL")
        assert all(r.scored_count == 1 for r in rows)
        expected = vosbench.evaluate(gt, results, cache=False).summary
        board = httpx.get(f"{base}/leaderboard.json", timeout=30).json()
        assert [r["user"] for r in board["rows"]] == ["alice"]
        assert {c: board["rows"][0][c] for c in expected} == expected
        server.stop()
        server = start_server(gt, data_dir, port, tmp_path / "server2.log", "--db", postgres.url)
        assert httpx.get(f"{base}/leaderboard.json", timeout=30).json() == board
    finally:
        worker.stop()
        server.stop()
        db.dispose()


def test_interactive_session_on_postgres(postgres, bench, tmp_path):
    """The interactive protocol's state (sessions, interactions, order checks) on PostgreSQL."""
    coco = pytest.importorskip("pycocotools.mask", reason="pycocotools is in the test extra")
    import numpy as np

    from tiny_davis import moving_boxes, write_davis

    _reset(postgres.url)
    sequences = {"deer": moving_boxes(5, 40, 48, 2, seed=1), "chamaleon": moving_boxes(5, 40, 48, 1, seed=2)}
    gt = write_davis(tmp_path / "testdev", sequences, split="test-dev")
    server = Server(ServerConfig(gt=bench[0], db_url=postgres.url, data_dir=tmp_path / "data", interactive_gt=gt,
                                 interactive_max_interactions=2))
    key = users.add_user(server.db, "alice")
    headers = {"User-Key": key, "Session-Key": "pg-session"}
    samples, max_time, max_i = server.client.get("/api/dataset/samples", headers=headers).json()
    assert sorted(map(tuple, samples)) == [("chamaleon", 1), ("deer", 1)] and max_i == 2

    def encode(masks, n):
        frames = [[{"object_id": k, "counts": coco.encode(np.asfortranarray((m == k).astype(np.uint8)))["counts"]
                    .decode()} for k in range(1, n + 1)] for m in masks]
        return {"size": list(masks.shape), "frames": frames}

    for sequence, masks in sequences.items():
        n = int(masks.max())
        assert server.client.get(f"/api/dataset/scribbles/{sequence}/001", headers=headers).status_code == 200
        for interaction in (1, 2):
            body = {"sequence": sequence, "scribble_idx": 1, "interaction": interaction, "timing": 1.5,
                    "pred_masks": encode(np.roll(masks, 3 - interaction, axis=2), n)}
            response = server.client.post("/api/evaluation/interaction", headers=headers, json=body)
            assert response.status_code == 200, response.text
        again = server.client.post("/api/evaluation/interaction", headers=headers, json=body)
        assert again.status_code == 400 and again.json()["error"] == "RuntimeError"  # submitted already
        past = server.client.post("/api/evaluation/interaction", headers=headers, json={**body, "interaction": 3})
        assert past.status_code == 400 and past.json()["error"] == "ValueError"  # past the maximum
    report = server.client.get("/api/evaluation/report", headers=headers).json()
    assert len(report["jaccard"]) == 5 * 2 * (2 + 1)
    summary = server.client.post("/api/evaluation/finish", headers=headers).json()
    board = server.client.get("/leaderboard.json", params={"track": "interactive"}).json()
    assert board["rows"][0]["AUC"] == summary["auc"] and board["rows"][0]["interactions"] == 4
    server.db.dispose()
