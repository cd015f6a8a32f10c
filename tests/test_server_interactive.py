"""The interactive track over HTTP, played by the unmodified DAVIS interactive client (PyPI davisinteractive 1.0.4).

The client's sources are fetched and imported as tests/test_interactive_oracle_fixture.py does
(numpy aliases while importing; absl's logging mapped to the standard logging where absl-py is
missing); its compiled COCO mask module, which the source distribution does not build, is
replaced by pycocotools' (the same COCO API code). The client accepts only
the `test-dev` subset and the DAVIS 2017 sequence names and object counts it ships, so the
benchmark here is a generated set named after test-dev sequences with their object counts.

A real `vosbench serve` process (127.0.0.1) plays whole sessions; the server's scores and the
scribbles it hands out equal those of `vosbench.tracks.interactive.run_session` with the same
answers, and its scribbles (the one after the last interaction included) those of the drop-in
`vosbench.interactive.DavisInteractiveSession`; finished sessions reach the interactive leaderboard.
"""
from __future__ import annotations

import copy
import importlib
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed (pip install -e '.[test]')")

import httpx  # noqa: E402

from server_support import free_port, make_gt, start_server  # noqa: E402
from test_interactive_oracle_fixture import PACKAGE, _NumpyWithAliases, acquire  # noqa: E402
from tiny_davis import moving_boxes, write_davis, write_frames  # noqa: E402
from vosbench.interactive import DavisInteractiveSession as DropInSession  # noqa: E402
from vosbench.io.factory import open_dataset  # noqa: E402
from vosbench.server import users  # noqa: E402
from vosbench.server.db import Database  # noqa: E402
from vosbench.tracks.interactive import SessionParams, run_session, summarize  # noqa: E402
from vosbench.tracks.interactive.report import SampleInfo  # noqa: E402

pytestmark = pytest.mark.slow

# test-dev sequences of DAVIS 2017 and their object counts, as the client ships them.
SEQUENCES = {"chamaleon": 1, "deer": 2, "helicopter": 2}
MAX_INTERACTIONS = 3


@pytest.fixture(scope="module")
def client(request, tmp_path_factory):
    """davisinteractive's DavisInteractiveSession and RemoteConnector, unmodified."""
    try:
        cache = getattr(request.config, "cache", None)
        acquire(Path(cache.mkdir(PACKAGE)) if cache is not None else tmp_path_factory.mktemp(PACKAGE))
        from pycocotools import _mask as coco_mask
    except Exception as exc:  # noqa: BLE001
        message = f"the davisinteractive client is unavailable: {exc}"
        import os

        if os.environ.get("VOSBENCH_REQUIRE_SHARED") == "1" or os.environ.get("CI", "").lower() in ("1", "true"):
            pytest.fail(message)
        pytest.skip(message)
    sys.modules[f"{PACKAGE}.third_party.mask_api._mask"] = coco_mask
    try:
        import absl.logging  # noqa: F401  (the client's logging library, absl-py)
    except ImportError:
        import logging
        import types

        absl = types.ModuleType("absl")
        absl.logging = types.ModuleType("absl.logging")
        logger = logging.getLogger("absl")
        for name in ("debug", "info", "warning", "error", "fatal"):
            setattr(absl.logging, name, getattr(logger, name if name != "fatal" else "critical"))
        sys.modules["absl"], sys.modules["absl.logging"] = absl, absl.logging
    added = [n for n in ("float", "int", "bool") if n not in np.__dict__]
    for n in added:
        setattr(np, n, {"float": float, "int": int, "bool": bool}[n])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            names = ("third_party.mask_api.mask", "dataset.davis", "connector.remote", "session.session")
            modules = [importlib.import_module(f"{PACKAGE}.{m}") for m in names]
    finally:
        for n in added:
            delattr(np, n)
    proxy = _NumpyWithAliases()
    for module in modules:
        module.np = proxy
    return modules[3].DavisInteractiveSession, modules[2].RemoteConnector


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("interactive")
    sequences = {name: moving_boxes(6, 48, 64, n, seed=k) for k, (name, n) in enumerate(SEQUENCES.items())}
    gt = write_frames(write_davis(root / "testdev", sequences, split="test-dev"), sequences)
    # The drop-in session, like the framework's local service, plays only train/val subsets: the same
    # sequences are listed as val too (the server reads test-dev).
    (gt / "ImageSets" / "2017" / "val.txt").write_text("\n".join(sequences) + "\n")
    return make_gt(root / "semi"), gt


@pytest.fixture(scope="module")
def server(bench, tmp_path_factory):
    semi, gt = bench
    root = tmp_path_factory.mktemp("server")
    port = free_port()
    process = start_server(semi, root / "data", port, root / "server.log", "--interactive-gt", str(gt),
                           "--interactive-max-interactions", str(MAX_INTERACTIONS))
    db = Database(f"sqlite:///{root / 'data' / 'server.db'}")
    try:
        yield {"base": f"http://127.0.0.1:{port}", "db": db, "process": process}
    finally:
        process.stop()
        db.dispose()


class Answers:
    """A deterministic 'method': the ground truth shifted by fewer pixels at each interaction."""

    def __init__(self, gt_root: Path):
        self.dataset = open_dataset("davis2017", gt_root, split="test-dev")
        self.calls: dict[str, int] = {}
        self.name = "shifting"

    def masks(self, sequence: str, interaction: int) -> np.ndarray:
        gt = self.dataset.read_annotations(sequence)
        return np.roll(gt, max(0, 4 - interaction), axis=2).astype(np.uint8)

    def interact(self, video, scribbles, previous_masks):  # the vosbench InteractiveMethod shape
        count = 1 if previous_masks is None else self.calls[video.name] + 1
        self.calls[video.name] = count
        return self.masks(video.name, count)


def play_session(session, answers: Answers):
    """Play `session` (the client's or the drop-in); returns the scribbles handed out per sample and the
    scribble the robot answered the last interaction with (the session's `sample_last_scribble` then)."""
    handed: dict[tuple[str, int], list[dict]] = {}
    after_last: dict[tuple[str, int], dict] = {}
    interaction = {}
    while session.next():
        sequence, scribbles, new = session.get_scribbles(only_last=True)
        idx = session.samples[session.sample_idx][1]
        interaction[sequence] = 1 if new else interaction[sequence] + 1
        handed.setdefault((sequence, idx), []).append(scribbles)
        session.submit_masks(answers.masks(sequence, interaction[sequence]))
        if interaction[sequence] == MAX_INTERACTIONS:
            after_last[(sequence, idx)] = copy.deepcopy(session.sample_last_scribble)
    return handed, after_last


def play(session_cls, base: str, key: str, answers: Answers, tmp_path: Path, after_last: dict | None = None):
    with session_cls(host=base, user_key=key, subset="test-dev", report_save_dir=str(tmp_path)) as session:
        handed, last = play_session(session, answers)
        report = session.get_report()
        summary = session.get_global_summary()
    if after_last is not None:
        after_last.update(last)
    return handed, report, summary


def test_the_davis_client_plays_whole_sessions_scored_as_vosbench(client, bench, server, tmp_path):
    session_cls, _ = client
    key = users.add_user(server["db"], "alice")
    answers = Answers(bench[1])
    after_last: dict = {}
    handed, report, summary = play(session_cls, server["base"], key, answers, tmp_path, after_last)

    params = SessionParams(max_interactions=MAX_INTERACTIONS)
    local = run_session(open_dataset("davis2017", bench[1], split="test-dev"), Answers(bench[1]), params)
    # The same scribbles, handed out in the same order, and the same scores. run_session charges the
    # method-time budget and the server (by default) the client's timings; the client itself stops a
    # sample by its wall clock, the framework's rule. No sample here comes near its budget (240 s per
    # object), so every rule plays the same interactions.
    assert handed == {k: v for k, v in local.scribbles.items()}
    # As the framework's server, the robot also answers the last interaction (a scribble the client keeps as
    # `sample_last_scribble` but never hands out); run_session skips that call, the drop-in makes it as the
    # framework does: the server's scribbles, those included, are the drop-in's (the framework's wall-clock
    # budget, its default).
    with DropInSession(davis_root=str(bench[1]), subset="val", max_nb_interactions=MAX_INTERACTIONS,
                       report_save_dir=str(tmp_path / "dropin")) as dropin:
        dropin_handed, dropin_after_last = play_session(dropin, Answers(bench[1]))
    assert handed == dropin_handed
    assert set(after_last) == {(s, 1) for s in SEQUENCES}
    assert after_last == dropin_after_last
    assert all(any(frame for frame in s["scribbles"]) for s in after_last.values())
    columns = ["sequence", "scribble_idx", "interaction", "object_id", "frame", "jaccard", "contour", "j_and_f"]
    order = ["sequence", "scribble_idx", "interaction", "object_id", "frame"]
    remote = report[columns].sort_values(order).reset_index(drop=True)
    expected = local.report[columns].sort_values(order).reset_index(drop=True)
    assert len(remote) == sum(6 * n * MAX_INTERACTIONS for n in SEQUENCES.values())
    assert remote.astype({"scribble_idx": int, "interaction": int, "object_id": int, "frame": int}).equals(
        expected.astype({"scribble_idx": int, "interaction": int, "object_id": int, "frame": int}))
    # The summary is vosbench's, over the client's own timings.
    infos = [SampleInfo(s, 1, n) for s, n in SEQUENCES.items()]
    own, _ = summarize(report, infos, MAX_INTERACTIONS, params.max_time, params.threshold)
    assert summary["auc"] == own["auc"] and summary["curve"] == own["curve"]
    assert summary["metric_at_threshold"] == own["metric_at_threshold"]
    board = httpx.get(f"{server['base']}/leaderboard.json", params={"track": "interactive"}, timeout=30).json()
    row = next(r for r in board["rows"] if r["user"] == "alice")
    assert row["AUC"] == summary["auc"] and row["J&F@60s"] == summary["metric_at_threshold"]["J_AND_F"]
    assert row["interactions"] == MAX_INTERACTIONS * len(SEQUENCES)
    assert row["client_seconds"] == pytest.approx(report.groupby(["sequence", "interaction"])["timing"].first().sum())
    assert row["server_seconds"] >= row["client_seconds"]  # the server's clock also counts the network
    page = httpx.get(f"{server['base']}/leaderboard", params={"track": "interactive"}, timeout=30)
    assert page.status_code == 200 and "alice" in page.text
    plot = httpx.get(f"{server['base']}/leaderboard/interactive.png", timeout=60)
    assert plot.content.startswith(b"\x89PNG")


def test_the_server_checks_order_count_and_keys(client, bench, server):
    _, connector_cls = client
    key = users.add_user(server["db"], "bob")
    connector = connector_cls(key, "bob-session-1", server["base"])
    samples, max_t, max_i = connector.get_samples("test-dev", None, None)
    assert sorted(map(tuple, samples)) == sorted((s, 1) for s in SEQUENCES) and max_i == MAX_INTERACTIONS
    answers = Answers(bench[1])
    sequence = "deer"
    masks = answers.masks(sequence, 1)
    with pytest.raises(RuntimeError, match="never asked for"):
        connector.post_predicted_masks(sequence, 1, masks, 0.5, 1)
    connector.get_scribble(sequence, 1)
    with pytest.raises(RuntimeError, match="comes before interaction 1"):
        connector.post_predicted_masks(sequence, 1, masks, 0.5, 2)
    scribble = connector.post_predicted_masks(sequence, 1, masks, 0.5, 1)
    assert scribble["sequence"] == sequence and len(scribble["scribbles"]) == 6
    with pytest.raises(RuntimeError, match="already been submitted"):
        connector.post_predicted_masks(sequence, 1, masks, 0.5, 1)
    with pytest.raises(ValueError, match="higher than the maximum"):
        connector.post_predicted_masks(sequence, 1, masks, 0.5, MAX_INTERACTIONS + 1)
    with pytest.raises(ValueError, match="invalid"):
        connector.post_predicted_masks("chamaleon", 7, answers.masks("chamaleon", 1), 0.5, 1)
    with pytest.raises(ValueError, match="48x64"):
        connector.post_predicted_masks(sequence, 1, masks[:, :20], 0.5, 2)
    report = connector.get_report()
    assert set(report["interaction"]) == {1} and set(report["timing"]) == {0.5}
    # The server's own timing of the interaction is recorded beside the client's.
    from sqlalchemy import select

    from vosbench.server.db import Interaction

    with server["db"].session() as session:
        (row,) = session.scalars(select(Interaction).where(Interaction.client_timing == 0.5)).all()
    assert row.server_timing is not None and row.server_timing >= 0 and not row.dropped
    # Another user cannot use this session; a wrong key is refused.
    eve = connector_cls(users.add_user(server["db"], "eve"), "bob-session-1", server["base"])
    with pytest.raises(RuntimeError, match="another user"):
        eve.get_report()
    with pytest.raises(Exception, match="AuthError"):
        connector_cls("vb_wrong", "s", server["base"]).get_samples("test-dev", None, None)
    # A submission past the sample's time budget (240 s per object) is dropped and ends the sample.
    connector.post_predicted_masks(sequence, 1, answers.masks(sequence, 2), 1000.0, 2)
    assert set(connector.get_report()["interaction"]) == {1}
    with pytest.raises(RuntimeError, match="already been submitted"):
        connector.post_predicted_masks(sequence, 1, answers.masks(sequence, 3), 0.5, 3)
    summary = connector.post_finish()
    assert summary["session_key"] == "bob-session-1" and 0 <= summary["auc"] <= 1
    with pytest.raises(RuntimeError, match="finished"):
        connector.post_predicted_masks(sequence, 1, masks, 0.5, 2)


def test_rle_decoding_matches_the_coco_api():
    coco = pytest.importorskip("pycocotools.mask", reason="pycocotools is in the test extra")
    from vosbench.server.interactive import ProtocolError, decode_rle

    rng = np.random.default_rng(0)
    cases = [np.zeros((4, 3), bool), np.ones((5, 9), bool)]
    for h, w in [(1, 1), (7, 5), (48, 64), (37, 91), (480, 854)]:
        cases.append(rng.random((h, w)) < rng.random())
        block = np.zeros((h, w), bool)
        block[h // 3: h // 2 + 1, w // 4: w - 1] = True  # long runs: numbers of several characters
        cases.append(block)
    for mask in cases:
        encoded = coco.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert np.array_equal(decode_rle(encoded["counts"].decode(), *mask.shape), mask)
    with pytest.raises(ProtocolError, match="does not cover"):
        decode_rle(coco.encode(np.asfortranarray(np.ones((4, 4), np.uint8)))["counts"].decode(), 5, 4)
    with pytest.raises(ProtocolError):
        decode_rle("\x7f", 2, 2)


def test_interactive_leaderboard_page_in_the_browser(client, bench, server, tmp_path):
    from test_server_pages import _Url, cells
    from test_html import console_messages, find_browser, run_browser

    browser = find_browser()
    if browser is None:
        from server_support import IN_CI

        if IN_CI:
            pytest.fail("no Chromium found; CI must install it (.ci/run: apt-get install -y chromium)")
        pytest.skip("no Chromium on this machine (apt-get install -y chromium to run this test)")
    session_cls, _ = client
    play(session_cls, server["base"], users.add_user(server["db"], "carol"), Answers(bench[1]), tmp_path)
    board = httpx.get(f"{server['base']}/leaderboard.json", params={"track": "interactive"}, timeout=30).json()
    done = run_browser(browser, _Url(f"{server['base']}/leaderboard?track=interactive"), tmp_path, "--dump-dom",
                       "--virtual-time-budget=10000")
    assert console_messages(done.stderr) == []  # the curve plot loaded (a failed one logs an error)
    table = cells(done.stdout, "leaderboard")
    assert [row[1] for row in table] == [r["user"] for r in board["rows"]] and "carol" in [r[1] for r in table]
    for row, entry in zip(table, board["rows"]):
        assert row[3:5] == [f"{entry['AUC']:.3f}", f"{entry['J&F@60s']:.3f}"]
    assert '<img src="/leaderboard/interactive.png"' in done.stdout


def test_a_sample_resumed_from_its_snapshot_plays_as_one_never_stopped():
    """The server keeps each sample's engine state as JSON between requests (`SampleRun.snapshot`): a sample
    resumed from it before every submission plays exactly as one kept in memory."""
    import json

    from vosbench.tracks.interactive import ScribbleRobot
    from vosbench.tracks.interactive.engine import SampleRun

    gt = moving_boxes(6, 48, 64, 2, seed=3)
    robot = ScribbleRobot()

    def make(resume=None):
        return SampleRun("deer", 1, gt, None, robot, max_interactions=4, session_id="s", resume=resume)

    straight, resumed = make(), make()
    for k in range(1, 5):
        resumed = make(json.loads(json.dumps(resumed.snapshot())))  # through the database's JSON
        masks = np.roll(gt, max(0, 4 - k), axis=2)
        a = straight.submit(masks, 0.5, draw_after_last=True)
        b = resumed.submit(masks, 0.5, draw_after_last=True)
        assert a.accepted and b.accepted and a.frame == b.frame and a.scribbles == b.scribbles
        assert a.rows.equals(b.rows)
    assert json.loads(json.dumps(resumed.snapshot())) == json.loads(json.dumps(straight.snapshot()))
    assert resumed.interaction == 4 and resumed.used_frames == straight.used_frames


def test_the_interactive_rules_reach_the_worker_configuration(tmp_path):
    from vosbench.server.config import ServerConfig, config_from_env
    from vosbench.tracks.interactive.engine import BudgetRule

    # A placeholder ground-truth folder: its kind is named, since there is nothing to detect it from.
    config = ServerConfig(gt=tmp_path, dataset="davis2017", data_dir=tmp_path, interactive_budget_rule="wall-clock",
                          interactive_seed=3)
    back = config_from_env(config.to_env())
    assert back.interactive_budget_rule is BudgetRule.WALL_CLOCK and back.interactive_seed == 3
    assert ServerConfig(gt=tmp_path, dataset="davis2017", data_dir=tmp_path).interactive_seed is None  # the official scribbles


@pytest.mark.parametrize("rule", ["method-time", "wall-clock"])
def test_the_server_charges_the_budget_by_the_engines_rule(bench, tmp_path, rule):
    """Each rule as the engine applies it: with 1 ms per object, a submission timed 0 s by the client passes the
    method-time budget, while the server's wall clock since the first scribble is past it (dropped). A frame
    candidate out of range is refused (ValueError) and the sample goes on."""
    coco = pytest.importorskip("pycocotools.mask", reason="pycocotools is in the test extra")
    from test_server import Server

    from vosbench.server.config import ServerConfig

    semi, gt = bench
    server = Server(ServerConfig(gt=semi, data_dir=tmp_path / "data", interactive_gt=gt,
                                 interactive_max_interactions=2, interactive_max_time=0.001,
                                 interactive_budget_rule=rule))
    headers = {"User-Key": users.add_user(server.db, "dave"), "Session-Key": f"budget-{rule}"}
    assert server.client.get("/api/dataset/samples", headers=headers).status_code == 200
    sequence = "deer"
    masks = Answers(gt).masks(sequence, 1)
    body = {"sequence": sequence, "scribble_idx": 1, "interaction": 1, "timing": 0.0,
            "pred_masks": {"size": list(masks.shape), "frames": [
                [{"object_id": k, "counts": coco.encode(np.asfortranarray((m == k).astype(np.uint8)))["counts"]
                  .decode()} for k in range(1, SEQUENCES[sequence] + 1)] for m in masks]}}
    assert server.client.get(f"/api/dataset/scribbles/{sequence}/001", headers=headers).status_code == 200
    bad = server.client.post("/api/evaluation/interaction", headers=headers,
                             json={**body, "next_scribble_frame_candidates": [len(masks)]})
    assert bad.status_code == 400 and bad.json()["error"] == "ValueError" and "out of range" in str(bad.json())
    answer = server.client.post("/api/evaluation/interaction", headers=headers, json=body)
    assert answer.status_code == 200, answer.text
    report = server.client.get("/api/evaluation/report", headers=headers).json()
    if rule == "method-time":
        assert set(report["interaction"]) == {1} and any(any(f) for f in answer.json()["scribbles"])
    else:
        assert report["interaction"] == [] and not any(any(f) for f in answer.json()["scribbles"])
    server.db.dispose()
