"""The drop-in `vosbench.interactive.DavisInteractiveSession`: the framework's API, its rules, its bad-input errors."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest

from tiny_davis import moving_boxes, write_davis
from vosbench.interactive import (BudgetRule, Davis, DavisInteractiveSession, SessionError, SubmissionError,
                                  annotated_frames)
from vosbench.io.scribbles import write_scribbles
from vosbench.tracks.interactive.report import REPORT_COLUMNS
from vosbench.tracks.interactive.session import Sample, SessionParams, run_session


class Clock:
    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def tiny(tmp_path):
    sequences = {"boxes-a": moving_boxes(6, 40, 48, 2, seed=1), "boxes-b": moving_boxes(5, 40, 48, 1, seed=2)}
    root = write_davis(tmp_path / "davis", sequences)
    for name, masks in sequences.items():   # frames (run_session hands them to the method): the masks painted grey
        folder = root / "JPEGImages" / "480p" / name
        folder.mkdir(parents=True)
        for t, mask in enumerate(masks):
            cv2.imwrite(str(folder / f"{t:05d}.jpg"), np.repeat((mask * 60 + 20)[..., None], 3, axis=2))
    first = {"sequence": "boxes-b", "scribbles": [[] for _ in range(5)]}
    first["scribbles"][2] = [{"path": [[0.2, 0.2], [0.6, 0.6]], "object_id": 1, "start_time": 0, "end_time": 5}]
    write_scribbles(root / "Scribbles" / "boxes-b" / "001.json", first)
    write_scribbles(root / "Scribbles" / "boxes-b" / "002.json", first)
    return root, sequences


def _session(root, tmp_path, clock, **kwargs):
    kwargs.setdefault("max_nb_interactions", 3)
    return DavisInteractiveSession(davis_root=root, report_save_dir=tmp_path / "reports", clock=clock,
                                   session_id="s", **kwargs)


def _shifted(gt, k):
    return np.roll(gt, max(0, 3 - k), axis=2)


def test_the_framework_loop_runs_and_writes_its_files(tiny, tmp_path):
    root, gt = tiny
    clock = Clock()
    seen = []
    with _session(root, tmp_path, clock, max_time=100) as sess:
        assert sess.samples == [("boxes-a", 1), ("boxes-b", 1), ("boxes-b", 2)]
        assert Davis.dataset["boxes-a"]["num_objects"] == 2 and Davis.dataset["boxes-b"]["num_scribbles"] == 2
        assert sess.connector.service.robot.min_nb_nodes == 4
        k = 0
        while sess.next():
            sequence, scribbles, new = sess.get_scribbles(only_last=True)
            seen.append((sequence, new, annotated_frames(scribbles)))
            k = 0 if new else k + 1
            clock.now += 2.0
            sess.submit_masks(_shifted(gt[sequence], k).astype(np.float32))   # integral floats are taken
        report = sess.get_report()
        summary = sess.get_global_summary(save_file=tmp_path / "summary.json")
    assert [s[1] for s in seen] == [True, False, False] * 3
    assert seen[3][2] == [2]                      # the file's frame
    assert list(report.columns) == REPORT_COLUMNS and set(report["timing"]) == {2.0}
    assert len(report) == 3 * (6 * 2) + 2 * 3 * 5
    assert set(summary) == {"auc", "metric_at_threshold", "curve"}
    assert summary["metric_at_threshold"]["threshold"] == 60 and "J_AND_F" in summary["curve"]
    # objects weigh equally over the whole subset; the last point at mean objects x max_time
    assert summary["curve"]["time"][-1] == pytest.approx(1.5 * 100)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    saved = pd.read_csv(tmp_path / "reports" / f"{sess.report_name}.csv", index_col=0)
    assert len(saved) == len(report) and not list((tmp_path / "reports").glob("*.tmp.csv"))
    assert not sess.next()


def test_same_engine_as_run_session(tiny, tmp_path):
    """The drop-in and run_session, both on the framework's rules, give the same report and summary."""
    root, gt = tiny
    from vosbench.io.factory import open_dataset
    from vosbench.io.scribbles import read_scribbles

    clock = Clock()
    with _session(root, tmp_path, clock, max_time=None, max_nb_interactions=3, budget_rule=BudgetRule.WALL_CLOCK,
                  seed=None) as sess:
        sess.samples = [s for s in sess.samples if s != ("boxes-b", 2)]
        k = 0
        while sess.next():
            sequence, scribbles, new = sess.get_scribbles(only_last=True)
            k = 0 if new else k + 1
            clock.now += 1.5
            sess.submit_masks(_shifted(gt[sequence], k))
        dropin = sess.get_report()

    class Shifted:
        name = "shifted"

        def __init__(self):
            self.k = {}

        def interact(self, video, scribbles, previous):
            self.k[video.name] = self.k.get(video.name, -1) + 1
            return _shifted(gt[video.name], self.k[video.name])

    ticks = iter(np.arange(0, 100, 1.5).repeat(2)[1:])
    dataset = open_dataset("davis2017", root)
    samples = [Sample("boxes-a", 1, None),
               Sample("boxes-b", 1, read_scribbles(root / "Scribbles" / "boxes-b" / "001.json"))]
    result = run_session(dataset, Shifted(), SessionParams(max_interactions=3, max_time=None, seed=None),
                         samples=samples, clock=lambda: float(next(ticks)), session_id="s")
    pd.testing.assert_frame_equal(dropin.reset_index(drop=True), result.report.reset_index(drop=True),
                                  check_dtype=False)


@pytest.mark.parametrize("rule, dropped_at", [(BudgetRule.WALL_CLOCK, 3), (BudgetRule.METHOD_TIME, 4)])
def test_budget_rules(tiny, tmp_path, rule, dropped_at):
    root, gt = tiny
    clock = Clock()
    with _session(root, tmp_path, clock, max_time=10, max_nb_interactions=5, budget_rule=rule) as sess:
        sess.samples = [("boxes-b", 1)]      # one object: 10 s
        interactions = 0
        while sess.next():
            sess.get_scribbles()
            clock.now += 3.0                 # the method's answer
            sess.submit_masks(gt["boxes-b"])
            clock.now += 1.5                 # the method's own work between answers (billed on the wall clock)
            interactions += 1
        report = sess.get_report()
    # wall clock: 3, 7.5, 12 s > 10 s at the third; method time: 3, 6, 9, 12 s at the fourth
    assert interactions == dropped_at
    assert sorted(report["interaction"].unique()) == list(range(1, dropped_at))


@pytest.mark.parametrize("bad, match", [
    (lambda m: m[:, :-1], "shape"),
    (lambda m: m + 7, "outside 0..2"),
    (lambda m: np.where(m == 1, np.nan, m.astype(float)), "NaN"),
    (lambda m: m.astype(float) + 0.5, "non-integer"),
    (lambda m: m.astype(str), "dtype"),
])
def test_bad_masks_leave_the_session_unchanged(tiny, tmp_path, bad, match):
    root, gt = tiny
    clock = Clock()
    with _session(root, tmp_path, clock) as sess:
        assert sess.next()
        sequence, _, _ = sess.get_scribbles()
        with pytest.raises(SubmissionError, match=match):
            sess.submit_masks(bad(gt[sequence]))
        assert sess.get_report().empty and sess.interaction_nb == 0 and sess.running_model
        sess.submit_masks(gt[sequence])          # goes on
        assert sess.interaction_nb == 1 and len(sess.get_report()) == 12


def test_calls_out_of_order_and_bad_candidates(tiny, tmp_path):
    root, gt = tiny
    clock = Clock()
    with _session(root, tmp_path, clock) as sess:
        with pytest.raises(SessionError, match="next"):
            sess.get_scribbles()
        assert sess.next()
        with pytest.raises(SessionError, match="without get_scribbles"):
            sess.submit_masks(gt["boxes-a"])
        sess.get_scribbles()
        with pytest.raises(SessionError, match="twice"):
            sess.get_scribbles()
        with pytest.raises(SessionError, match="submit the masks"):
            sess.next()
        with pytest.raises(SubmissionError, match="out of range 0..5"):
            sess.submit_masks(gt["boxes-a"], next_scribble_frame_candidates=[1, 6])
        with pytest.raises(SubmissionError, match="not an integer"):
            sess.submit_masks(gt["boxes-a"], next_scribble_frame_candidates=[1.5])
        sess.submit_masks(np.zeros_like(gt["boxes-a"]), next_scribble_frame_candidates=[4])
        assert annotated_frames(sess.sample_last_scribble) == [4]


def test_an_unknown_sequence_is_refused_before_the_session_moves(tiny, tmp_path):
    root, gt = tiny
    clock = Clock()
    with _session(root, tmp_path, clock, max_nb_interactions=1) as sess:
        sess.samples = [("boxes-a", 1), ("nope", 1), ("boxes-b", 1)]
        assert sess.next()
        sess.get_scribbles()
        sess.submit_masks(gt["boxes-a"])
        with pytest.raises(SessionError, match="unknown sequence 'nope'"):
            sess.next()
        assert sess.sample_idx == 0
        sess.samples[1] = ("boxes-b", 2)
        assert sess.next() and sess.get_scribbles()[0] == "boxes-b"


def test_framework_arguments_are_checked(tiny, tmp_path):
    root, _ = tiny
    with pytest.raises(Exception, match="locally"):
        DavisInteractiveSession(host="https://server.davischallenge.org", davis_root=root)
    with pytest.raises(Exception, match="metric_to_optimize"):
        DavisInteractiveSession(davis_root=root, metric_to_optimize="T", report_save_dir=tmp_path)
    with pytest.raises(Exception, match="cannot both be None"):
        DavisInteractiveSession(davis_root=root, max_nb_interactions=None, report_save_dir=tmp_path)
    sess = DavisInteractiveSession(davis_root=root, max_time=10_000, max_nb_interactions=40, report_save_dir=tmp_path)
    assert (sess.max_time, sess.max_nb_interactions) == (600, 16)
    sess.connector.service.robot.min_nb_nodes = 10
    assert sess.connector.service.robot.params.min_nb_nodes == 10
    with pytest.raises(ValueError):
        sess.connector.service.robot.min_nb_nodes = 0
