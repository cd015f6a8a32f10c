"""Timed interactive sessions: the protocol's rules, the report, determinism, the curve's numbers, the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from tiny_davis import moving_boxes, write_davis
from vosbench.cli import main
from vosbench.errors import VosbenchError
from vosbench.io.factory import open_dataset
from vosbench.io.scribbles import annotated_frames, write_scribbles
from vosbench.metrics.interactive import area_under_curve, build_curve, final_time, value_at
from vosbench.tracks.interactive.report import REPORT_COLUMNS
from vosbench.tracks.interactive.session import Sample, SessionParams, find_samples, run_session


class FakeClock:
    """Each answer takes `step` seconds (plus `extra[k]` on the k-th answer)."""

    def __init__(self, step: float, extra: dict[int, float] | None = None):
        self.now, self.step, self.calls, self.extra = 0.0, step, 0, extra or {}

    def __call__(self) -> float:
        self.calls += 1
        if self.calls % 2 == 0:   # the end of an answer
            self.now += self.step + self.extra.get(self.calls // 2, 0.0)
        return self.now


class NoisyTruth:
    """A fake interactive method: the ground truth shifted sideways, less at each answer."""

    name = "noisy-truth"

    def __init__(self, gt: dict[str, np.ndarray]):
        self.gt = gt
        self.calls: list[tuple[str, list[int], bool]] = []

    def interact(self, video, scribbles, previous_masks):
        self.calls.append((video.name, annotated_frames(scribbles), previous_masks is None))
        n = sum(1 for c in self.calls if c[0] == video.name)
        return np.roll(self.gt[video.name], 2 * max(0, 4 - n), axis=2)


@pytest.fixture()
def tiny(tmp_path):
    sequences = {"boxes-a": moving_boxes(6, 40, 48, 2, seed=1), "boxes-b": moving_boxes(5, 40, 48, 1, seed=2)}
    root = write_davis(tmp_path / "davis", sequences)
    for name, masks in sequences.items():   # frames: the masks painted grey
        folder = root / "JPEGImages" / "480p" / name
        folder.mkdir(parents=True)
        for t, mask in enumerate(masks):
            cv2.imwrite(str(folder / f"{t:05d}.jpg"), np.repeat((mask * 60 + 20)[..., None], 3, axis=2))
    return open_dataset("davis2017", root), sequences


def test_protocol_rules_and_report(tiny):
    dataset, gt = tiny
    method = NoisyTruth(gt)
    result = run_session(dataset, method, SessionParams(max_interactions=4), clock=FakeClock(2.0))
    report = result.report
    assert list(report.columns) == REPORT_COLUMNS
    # every interaction scores every object on every frame
    assert len(report) == 4 * (6 * 2 + 5 * 1)
    assert set(report["timing"]) == {2.0}
    # the method gets None as previous masks only on a sample's first interaction
    assert [c[2] for c in method.calls] == [True, False, False, False] * 2
    # the robot's frames (interactions 2..4) are all different: used frames are excluded
    # (a frame the robot picks may be right already and get no scribble)
    for seq in gt:
        frames = [f[0] for c in method.calls if c[0] == seq for f in [c[1]] if f][1:]
        assert len(frames) >= 2 and len(set(frames)) == len(frames)
    # J&F averaged over frames then over (sample, object), as the framework
    per_obj = report.groupby(["interaction", "sequence", "object_id"])["j_and_f"].mean()
    means = per_obj.groupby("interaction").mean().to_numpy()
    np.testing.assert_allclose(result.curve.value[1:-1], means)
    np.testing.assert_allclose(result.curve.time[:-1], [0, 2, 4, 6, 8])
    assert result.curve.time[-1] == 240 * 1.5   # max_time x mean objects per sequence
    assert result.jf_at_threshold == pytest.approx(value_at(result.curve.time, result.curve.value, 60))


def test_worst_frame_is_chosen_for_the_next_scribble(tiny):
    dataset, gt = tiny

    class OneBadFrame(NoisyTruth):
        def interact(self, video, scribbles, previous_masks):
            super().interact(video, scribbles, previous_masks)
            masks = self.gt[video.name].copy()
            masks[3] = 0
            return masks

    method = OneBadFrame(gt)
    run_session(dataset, method, SessionParams(max_interactions=2), clock=FakeClock(1.0))
    assert [c[1] for c in method.calls if c[0] == "boxes-a"][1] == [3]


def test_submission_past_the_budget_is_dropped(tiny, caplog):
    dataset, gt = tiny
    # boxes-a has 2 objects: budget 2 x 100 s; answers take 70 s: the third (210 s) is dropped.
    params = SessionParams(max_interactions=4, max_time=100)
    result = run_session(dataset, NoisyTruth(gt), params, samples=[Sample("boxes-a")], clock=FakeClock(70.0))
    assert result.dropped == [("boxes-a", 1, 3)]
    assert sorted(result.report["interaction"].unique()) == [1, 2]
    assert "dropped" in caplog.text
    # missing interactions keep the last J&F at no extra time
    assert result.curve.value[3] == result.curve.value[4] == result.curve.value[2]
    assert result.curve.time[3] == result.curve.time[4] == result.curve.time[2] == 140.0


def test_same_seed_gives_identical_files(tiny, tmp_path):
    dataset, gt = tiny
    outs = []
    for k in range(2):
        result = run_session(dataset, NoisyTruth(gt), SessionParams(max_interactions=3, seed=5),
                             clock=FakeClock(1.5))
        out = tmp_path / f"run{k}"
        result.write(out)
        outs.append({p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert outs[0] == outs[1]
    assert any(str(p).startswith("scribbles") for p in outs[0])
    summary = json.loads(outs[0][Path("summary.json")])
    assert set(summary) == {"auc", "metric_at_threshold", "curve"}


def test_interrupted_session_resumes_from_its_checkpoint(tiny, tmp_path):
    dataset, gt = tiny
    params = SessionParams(max_interactions=3, seed=2)
    whole = run_session(dataset, NoisyTruth(gt), params, clock=FakeClock(1.0))

    class FailsOnB(NoisyTruth):
        def interact(self, video, scribbles, previous_masks):
            if video.name == "boxes-b":
                raise KeyboardInterrupt
            return super().interact(video, scribbles, previous_masks)

    with pytest.raises(KeyboardInterrupt):
        run_session(dataset, FailsOnB(gt), params, clock=FakeClock(1.0), checkpoint_dir=tmp_path / "ck",
                    session_id="s")
    method = NoisyTruth(gt)
    resumed = run_session(dataset, method, params, clock=FakeClock(1.0), checkpoint_dir=tmp_path / "ck",
                          session_id="s")
    assert {c[0] for c in method.calls} == {"boxes-b"}    # boxes-a came from the checkpoint
    pd.testing.assert_frame_equal(resumed.report.drop(columns="session_id"), whole.report.drop(columns="session_id"))
    assert resumed.summary == whole.summary and resumed.scribbles == whole.scribbles
    # other parameters: the checkpoint is not reused
    other = NoisyTruth(gt)
    run_session(dataset, other, SessionParams(max_interactions=2, seed=2), clock=FakeClock(1.0),
                checkpoint_dir=tmp_path / "ck", session_id="s")
    assert {c[0] for c in other.calls} == {"boxes-a", "boxes-b"}


def test_dataset_scribble_files_start_samples(tiny, tmp_path):
    dataset, gt = tiny
    scribbles = {"sequence": "boxes-b", "scribbles": [[] for _ in range(5)]}
    scribbles["scribbles"][2] = [{"path": [[0.1, 0.1], [0.2, 0.2]], "object_id": 1, "start_time": 0, "end_time": 5}]
    write_scribbles(tmp_path / "scr" / "boxes-b" / "003.json", scribbles)
    samples = find_samples(dataset, tmp_path / "scr")
    assert [(s.sequence, s.scribble_idx, s.first_scribble is None) for s in samples] == [
        ("boxes-a", 1, True), ("boxes-b", 3, False)]
    method = NoisyTruth(gt)
    run_session(dataset, method, SessionParams(max_interactions=3), samples=samples, clock=FakeClock(1.0))
    calls_b = [c[1] for c in method.calls if c[0] == "boxes-b"]
    assert calls_b[0] == [2]
    # the human frame is not tracked (as the framework): the robot may come back to it
    assert len(calls_b) == 3


def test_limits_are_the_framework_caps():
    with pytest.raises(VosbenchError):
        SessionParams(max_interactions=17)
    with pytest.raises(VosbenchError):
        SessionParams(max_time=601)
    SessionParams(max_interactions=16, max_time=600)


def test_bad_masks_from_a_method_are_an_error(tiny):
    dataset, gt = tiny

    class WrongShape(NoisyTruth):
        def interact(self, video, scribbles, previous_masks):
            return np.zeros((1, 2, 3), np.uint8)

    with pytest.raises(VosbenchError, match="shape"):
        run_session(dataset, WrongShape(gt), SessionParams(max_interactions=1), clock=FakeClock(1.0))


# ------------------------------------------------------------------------ curve functions ----

def test_curve_rules():
    curve = build_curve([10.0, 30.0], [0.5, 0.7], end_time=100.0)
    np.testing.assert_array_equal(curve.time, [0, 10, 30, 100])
    np.testing.assert_array_equal(curve.value, [0, 0.5, 0.7, 0.7])
    assert value_at(curve.time, curve.value, 20) == pytest.approx(0.6)
    assert value_at(curve.time, curve.value, 500) == pytest.approx(0.7)   # clamped past the end
    area = 0.5 * 10 * 0.5 + 0.5 * 20 * (0.5 + 0.7) + 70 * 0.7
    assert area_under_curve(curve.time, curve.value) == pytest.approx(area / 100)
    # a final point before the last measured time moves to it: the curve never goes back
    late = build_curve([10.0, 300.0], [0.5, 0.7], end_time=100.0)
    assert late.time[-1] == 300.0
    assert final_time(240, 2.5) == 600.0 and final_time(None, 2.5, 8, 3.0) == 24.0
    assert area_under_curve([0.0], [0.0]) == 0.0


# ------------------------------------------------------------------------------- CLI ----

def test_cli_on_the_embedded_dataset(tmp_path, capsys):
    from vosbench.io.synthetic import default_dataset_root

    first = open_dataset(None, default_dataset_root()).sequence_names()[0]   # detected: the synthetic set
    out = tmp_path / "run"
    code = main(["interactive", "--robot", "--method", "scribble-propagation", "--max-interactions", "2",
                 "--sequences", first, "--out", str(out), "--no-progress"])
    assert code == 0
    report = pd.read_csv(out / "report.csv")
    assert list(report.columns) == REPORT_COLUMNS and set(report["interaction"]) == {1, 2}
    summary = json.loads((out / "summary.json").read_text())
    assert 0 <= summary["metric_at_threshold"]["J_AND_F"] <= 1
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "AUC" in capsys.readouterr().out


@pytest.mark.shared
def test_cli_on_davis2016_val(davis2016_root, tmp_path):
    out = tmp_path / "run"
    code = main(["interactive", "--robot", "--method", "scribble-propagation", "--dataset", "davis2016",
                 "--gt", str(davis2016_root), "--sequences", "blackswan", "--max-interactions", "2",
                 "--option", "propagator=zero-motion",
                 "--out", str(out), "--no-progress", "--no-plot"])
    assert code == 0
    report = pd.read_csv(out / "report.csv")
    n_frames = len(list((davis2016_root / "Annotations" / "480p" / "blackswan").glob("*.png")))
    assert len(report) == 2 * n_frames and set(report["object_id"]) == {1}
    # the robot's second scribble lies on the frame that scored worst after the first answer
    first = report[report["interaction"] == 1]
    second = json.loads((out / "scribbles" / "blackswan" / "001" / "02.json").read_text())
    assert annotated_frames(second) == [int(first.loc[first["j_and_f"].idxmin(), "frame"])]


def test_cli_refuses_a_method_of_another_track(tiny, tmp_path, monkeypatch, caplog):
    from vosbench.methods import registry
    from vosbench.methods.base import SemiSupervisedMethod

    class Semi(SemiSupervisedMethod):
        name = "semi"

        def segment(self, video):
            yield from ()

    monkeypatch.setattr(registry, "get_method", lambda name: Semi)   # registered, but a semi-supervised method
    dataset, _ = tiny
    args = ["interactive", "--robot", "--method", "semi", "--dataset", "davis2017", "--gt", str(dataset.root),
            "--out", str(tmp_path / "o")]
    assert main(args) == 2
    assert "not an interactive one" in caplog.text and not (tmp_path / "o").exists()


def test_cli_needs_gt_with_a_dataset(caplog):
    assert main(["interactive", "--robot", "--method", "scribble-propagation", "--dataset", "davis2016"]) == 2
    assert "--gt" in caplog.text


def test_cli_robot_alone_plays_the_default_baseline(tmp_path, capsys, monkeypatch):
    """`vosbench interactive --robot` as typed: the default baseline on the embedded dataset, the official robot."""
    import dataclasses

    from vosbench.cli.dataset_args import default_out
    from vosbench.cli.interactive import DEFAULT_METHOD
    from vosbench.io.synthetic import default_dataset_root
    from vosbench.tracks.interactive import session as session_module

    played = {}
    real_run_session = session_module.run_session

    def spy(dataset, method, params, **kwargs):
        played.update(method=method.name, params=params, root=dataset.root)
        # kept short here: one sample, one interaction
        return real_run_session(dataset, method, dataclasses.replace(params, max_interactions=1),
                                samples=kwargs["samples"][:1], **{k: v for k, v in kwargs.items() if k != "samples"})

    monkeypatch.setattr(session_module, "run_session", spy)
    monkeypatch.chdir(tmp_path)
    assert main(["interactive", "--robot", "--no-progress"]) == 0
    assert played["method"] == DEFAULT_METHOD == "s2m-stm"
    assert played["params"].seed is None and played["params"].max_interactions == 8
    assert Path(played["root"]) == default_dataset_root()
    out = capsys.readouterr().out
    assert "protocol: DAVIS interactive" in out and "official scribbles" in out
    assert "AUC" in out and "J&F@60s" in out
    folder = default_out("interactive", f"synthetic-{DEFAULT_METHOD}")
    assert {p.name for p in folder.iterdir()} >= {"report.csv", "summary.json", "curve.png"}
    assert not any(tmp_path.iterdir()), "nothing is written into the working folder unasked"
