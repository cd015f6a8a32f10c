"""`vosbench serve`: users and keys, submissions scored exactly as `vosbench evaluate`, leaderboards, admin CLI.

These tests run the application in-process (FastAPI's TestClient) with the Huey queue in
immediate mode (a job runs when enqueued); tests/test_server_reliability.py runs real
server and worker processes.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed (pip install -e '.[test]')")

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import select, text  # noqa: E402

import vosbench  # noqa: E402
from server_support import make_gt, make_results, results_entries, val_sequences, zip_bytes  # noqa: E402
from vosbench.cli import main  # noqa: E402
from vosbench.server import users  # noqa: E402
from vosbench.server.app import create_app  # noqa: E402
from vosbench.server.config import Limits, ServerConfig  # noqa: E402
from vosbench.server.db import Database, Submission, User, current_revision  # noqa: E402
from vosbench.server.queue import make_queue  # noqa: E402
from vosbench.tracks.pack import pack_results  # noqa: E402


@pytest.fixture(scope="module")
def gt(tmp_path_factory) -> Path:
    return make_gt(tmp_path_factory.mktemp("bench") / "gt")


@pytest.fixture(scope="module")
def results(gt, tmp_path_factory) -> Path:
    return make_results(gt, tmp_path_factory.mktemp("results") / "masks", shift=2)


@pytest.fixture(scope="module")
def results_zip(results, tmp_path_factory) -> bytes:
    return pack_results(results, tmp_path_factory.mktemp("zip") / "results.zip").read_bytes()


class Server:
    def __init__(self, config: ServerConfig):
        self.config = config
        self.db = Database(config.database_url)
        self.db.upgrade()
        self.app = create_app(config, db=self.db, queue=make_queue(config, self.db, immediate=True), migrate=False)
        self.client = TestClient(self.app)

    def user(self, name: str, **options) -> dict[str, str]:
        return {"Authorization": f"Bearer {users.add_user(self.db, name, **options)}"}

    def submit(self, headers, data: bytes, track: str = "semi", method: str = "m"):
        return self.client.post("/api/submissions", headers=headers, data={"track": track, "method": method},
                                files={"file": ("results.zip", data, "application/zip")})


def make_server(gt: Path, data_dir: Path, **limits) -> Server:
    return Server(ServerConfig(gt=gt, data_dir=data_dir, limits=Limits(**{"daily_submissions": 50, **limits})))


@pytest.fixture
def server(gt, tmp_path) -> Server:
    return make_server(gt, tmp_path / "data")


@pytest.mark.parametrize("track", ["semi", "unsupervised"])
def test_leaderboard_numbers_equal_vosbench_evaluate(server, results, results_zip, track, tmp_path):
    alice = server.user("alice")
    response = server.submit(alice, results_zip, track=track, method="shifted")
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "done"
    expected = vosbench.evaluate(server.config.gt, results, track=track, cache=False)
    board = server.client.get("/leaderboard.json", params={"track": track}).json()
    assert [row["user"] for row in board["rows"]] == ["alice"]
    row = board["rows"][0]
    for column, value in expected.summary.items():
        assert row[column] == value, column  # every digit: the stored JSON round-trips the floats
    assert 0.2 < row["J&F-Mean"] < 0.95  # shifted masks: neither perfect nor empty
    assert board["protocol"] == expected.params.describe()
    # The result's per-sequence table is the CSV `vosbench evaluate` writes, row for row.
    detail = server.client.get(f"/api/submissions/{row['submission']}", headers=alice).json()
    written = expected.write(tmp_path / "cli")
    official = pd.read_csv(written["per_sequence"])
    assert pd.DataFrame(detail["per_sequence"]).equals(official)
    assert (server.config.submission_dir(row["submission"]) / "scores" / written["global"].name).read_text() \
        == written["global"].read_text()
    page = server.client.get(f"/submissions/{row['submission']}", headers=alice)
    assert page.status_code == 200 and f"{expected.summary['J&F-Mean']:.3f}" in page.text
    plot = server.client.get(f"/submissions/{row['submission']}/sequences.png", headers=alice)
    assert plot.status_code == 200 and plot.content.startswith(b"\x89PNG")


def test_keys_are_stored_hashed_and_every_api_call_needs_one(server, results_zip):
    key = users.add_user(server.db, "bob")
    with server.db.session() as session:
        row = session.scalar(select(User).where(User.name == "bob"))
        assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
        dumped = [str(v) for v in session.execute(text("SELECT * FROM users")).one()]
    assert key not in dumped and not any(key in v for v in dumped)
    for path in ("/api/submissions", "/api/me"):
        missing = server.client.get(path)
        assert missing.status_code == 401 and missing.json()["error"] == "AuthError"
        wrong = server.client.get(path, headers={"Authorization": "Bearer vb_not-a-key"})
        assert wrong.status_code == 401 and "not valid" in wrong.json()["message"][0]
    refused = server.submit({"Authorization": "Bearer vb_not-a-key"}, results_zip)
    assert refused.status_code == 401
    assert server.client.get("/api/me", headers={"User-Key": key}).json()["name"] == "bob"
    users.set_user(server.db, "bob", disabled=True)
    assert server.client.get("/api/me", headers={"User-Key": key}).status_code == 401
    new_key = users.reset_key(server.db, "bob")
    users.set_user(server.db, "bob", disabled=False)
    assert server.client.get("/api/me", headers={"User-Key": key}).status_code == 401
    assert server.client.get("/api/me", headers={"User-Key": new_key}).status_code == 200


def test_a_user_sees_only_their_own_submissions(server, results_zip):
    alice, eve = server.user("alice"), server.user("eve")
    sid = server.submit(alice, results_zip).json()["id"]
    for path in (f"/api/submissions/{sid}", f"/submissions/{sid}", f"/submissions/{sid}/sequences.png"):
        response = server.client.get(path, headers=eve)
        assert response.status_code == 404, path
        assert server.client.get(path, headers=alice).status_code == 200, path
    assert server.client.post(f"/api/submissions/{sid}/choose", headers=eve).status_code == 404
    assert "no submission" in server.client.get(f"/api/submissions/{sid}", headers=eve).json()["message"][0]
    assert server.client.get("/api/submissions", headers=eve).json() == []
    assert [s["id"] for s in server.client.get("/api/submissions", headers=alice).json()] == [sid]


def test_daily_limit_per_user(gt, tmp_path, results_zip):
    server = make_server(gt, tmp_path / "data", daily_submissions=2)
    alice = server.user("alice")
    carol = server.user("carol", daily_limit=3)
    assert [server.submit(alice, results_zip).status_code for _ in range(3)] == [201, 201, 429]
    refused = server.submit(alice, results_zip)
    assert refused.json()["error"] == "LimitReached" and "daily limit is 2" in refused.json()["message"][0]
    assert [server.submit(carol, results_zip).status_code for _ in range(4)] == [201, 201, 201, 429]
    with server.db.session() as session:
        assert session.scalar(select(Submission.id).order_by(Submission.id.desc())) == 5


def test_invalid_upload_names_the_file_and_stores_nothing(server, results):
    alice = server.user("alice")
    entries = results_entries(results)
    seq = val_sequences(server.config.gt)[0]
    del entries[f"{seq}/00003.png"]
    response = server.submit(alice, zip_bytes(entries))
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "InvalidSubmission"
    assert {"file": f"{seq}/00003.png", "problem": "mask of a scored frame is missing.",
            "fix": "Write a mask for every frame of the sequence (00000.png, 00001.png, ...)."} in body["problems"]
    assert str(server.config.data_dir) not in response.text and str(server.config.gt) not in response.text
    with server.db.session() as session:
        assert session.scalar(select(Submission)) is None
    assert not any((server.config.data_dir / "incoming").glob("*"))
    assert not server.config.submissions_dir.exists() or not any(server.config.submissions_dir.iterdir())


def test_leaderboard_shows_the_chosen_else_the_best_submission(gt, tmp_path, results, tmp_path_factory):
    server = make_server(gt, tmp_path / "data")
    alice, bob = server.user("alice"), server.user("bob")
    better = results_entries(make_results(gt, tmp_path / "better", shift=1))
    worse = results_entries(results)
    ids = {name: server.submit(alice, zip_bytes(data), method=name).json()["id"]
           for name, data in (("worse", worse), ("better", better))}
    server.submit(bob, zip_bytes(worse), method="bobs")
    rows = server.client.get("/leaderboard.json").json()["rows"]
    assert [(r["user"], r["method"], r["rank"]) for r in rows] == [("alice", "better", 1), ("bob", "bobs", 2)]
    assert rows[0]["J&F-Mean"] > rows[1]["J&F-Mean"]
    chosen = server.client.post(f"/api/submissions/{ids['worse']}/choose", headers=alice)
    assert chosen.status_code == 200 and chosen.json()["chosen"] is True
    rows = server.client.get("/leaderboard.json").json()["rows"]
    assert [(r["user"], r["method"]) for r in rows] == [("alice", "worse"), ("bob", "bobs")]
    assert rows[0]["J&F-Mean"] == rows[1]["J&F-Mean"]  # the same masks, the same numbers
    html = server.client.get("/leaderboard").text
    assert html.index("alice") < html.index("bob") and "worse" in html
    index = server.client.get("/")
    assert index.status_code == 200 and "Leaderboard: unsupervised" in index.text and "bobs" in index.text
    assert server.client.get("/leaderboard.json", params={"track": "interactive"}).status_code == 400


def test_schema_comes_from_the_alembic_migration(server):
    from alembic.script import ScriptDirectory
    from alembic.config import Config

    from vosbench.server.db import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert current_revision(server.db.engine) == ScriptDirectory.from_config(config).get_current_head()
    with server.db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_admin_cli_adds_users_and_prints_the_key_once(gt, tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["serve", "--data-dir", str(data), "add-user", "dora", "--user-daily-limit", "7"]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert key.startswith("vb_")
    assert main(["serve", "list-users", "--data-dir", str(data)]) == 0
    listing = capsys.readouterr().out
    assert "dora" in listing and "daily_limit=7" in listing and key not in listing
    assert main(["serve", "--data-dir", str(data), "add-user", "dora"]) == 2  # exists already
    server = Server(ServerConfig(gt=gt, data_dir=data))
    assert server.client.get("/api/me", headers={"User-Key": key}).json() == {"name": "dora", "admin": False,
                                                                             "daily_limit": 7}
    assert main(["serve", "--data-dir", str(data), "set-user", "dora", "--disable"]) == 0
    assert server.client.get("/api/me", headers={"User-Key": key}).status_code == 401
    assert main(["serve", "--data-dir", str(data), "--dataset", "davis2016"]) == 2  # needs --gt


def test_pack_writes_the_official_layout(results, tmp_path, gt, caplog):
    import zipfile

    out = tmp_path / "out.zip"
    (results / "global_results-val.csv").write_text("not a mask\n")
    assert main(["pack", "--results", str(results), "--out", str(out), "--gt", str(gt)]) == 0
    names = zipfile.ZipFile(out).namelist()
    expected = sorted(f"{s}/{p.name}" for s in val_sequences(gt) for p in (results / s).glob("*.png"))
    assert names == expected
    first = out.read_bytes()
    assert main(["pack", "--results", str(results), "--out", str(out)]) == 0
    assert out.read_bytes() == first  # deterministic
    # An invalid folder is refused with the file named, and nothing is written.
    seq = val_sequences(gt)[0]
    broken = tmp_path / "broken"
    for path in results.glob("*/*.png"):
        (broken / path.parent.name).mkdir(parents=True, exist_ok=True)
        (broken / path.parent.name / path.name).write_bytes(path.read_bytes())
    (broken / seq / "00002.png").unlink()
    assert main(["pack", "--results", str(broken), "--out", str(tmp_path / "b.zip"), "--gt", str(gt)]) == 2
    assert f"{broken / seq / '00002.png'}: mask of a scored frame is missing." in caplog.text
    assert not (tmp_path / "b.zip").exists()
    (broken / seq / "00002.png").write_bytes(b"\xff\xd8\xff\xe0 a JPEG")
    assert main(["pack", "--results", str(broken), "--out", str(tmp_path / "b.zip")]) == 2
    assert f"{broken / seq / '00002.png'}: has a .png name but its content is not PNG." in caplog.text
    assert not (tmp_path / "b.zip").exists()


def test_submission_json_is_valid_json_without_nan(server, results_zip):
    alice = server.user("alice")
    response = server.submit(alice, results_zip)
    json.loads(response.text)  # strict JSON: NaN would not parse in browsers
    assert "NaN" not in server.client.get("/leaderboard.json").text


def test_migrations_upgrade_a_database_in_place(gt, tmp_path, results_zip):
    """A database made at the first revision, with data, is upgraded to the latest and keeps its rows."""
    from vosbench.server.db import upgrade

    data = tmp_path / "data"
    db = Database(f"sqlite:///{data / 'server.db'}")
    upgrade(db.engine, "0001")
    assert current_revision(db.engine) == "0001"
    key = users.add_user(db, "early")
    with db.engine.connect() as connection:
        tables = {r[0] for r in connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "interactive_sessions" not in tables
    server = Server(ServerConfig(gt=gt, data_dir=data))  # upgrades to the head
    assert current_revision(server.db.engine) == "0002"
    assert server.submit({"User-Key": key}, results_zip).status_code == 201
    db.dispose()


def test_a_failed_store_leaves_no_row_and_no_folder(server, results_zip, monkeypatch):
    import os

    from vosbench.server import submissions

    alice = server.user("alice")
    stale = server.config.submission_dir(1) / "masks" / "stale"
    stale.mkdir(parents=True)  # left by an upload whose transaction never committed
    moved = []
    real_replace = os.replace

    def replace_then_fail(src, dst, **kwargs):
        real_replace(src, dst, **kwargs)
        if Path(dst).parent != server.config.submissions_dir:
            return None
        moved.append(dst)
        raise OSError("disk full")

    monkeypatch.setattr(submissions.os, "replace", replace_then_fail)
    with pytest.raises(OSError, match="disk full"):
        server.submit(alice, results_zip)
    assert moved == [server.config.submission_dir(1)]
    assert not server.config.submission_dir(1).exists()
    with server.db.session() as session:
        assert session.scalar(select(Submission)) is None
    monkeypatch.undo()
    response = server.submit(alice, results_zip)
    assert response.status_code == 201 and response.json()["status"] == "done"
    sid = response.json()["id"]
    assert not (server.config.submission_dir(sid) / "masks" / "stale").exists()
