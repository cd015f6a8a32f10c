"""The drop-in session against the DAVIS interactive framework's own sessions (davisinteractive 1.0.4).

``fixtures/interactive/sessions_official.npz`` holds what the framework's local
EvaluationService reported when ``fixtures/interactive/parity_method.PaintMethod`` played
it on the challenges' stack (Python 3.7, numpy 1.21.6, scikit-image 0.18.3, scikit-learn
0.20.3, networkx 2.4, pandas 1.3.5), with a clock that moves only with the method's
answers; ``fixtures/interactive/make_session_fixture.py`` made it. Here the same method
and clock play vosbench's `DavisInteractiveSession` on the same sequences and first
scribbles, and every report row (J and F per object, frame and interaction, timing),
the robot's frames and the summary (AUC, the value at 60 s, the curve) must be identical.

Runs: ``a`` real DAVIS 2016 sequences (bear from its human scribble file, blackswan, dog)
and multi-object synthetic ones, 8 interactions, 10 s per object (submissions dropped past
the budget); ``b`` synthetic, 6 interactions, no time limit, metric J, next-frame candidates
restricted to even frames; ``c`` synthetic, no interaction limit, 6 s per object, metric F.
The synthetic sequences have 24 frames, where numpy's sort puts tied frames out of index
order: `classic_argsort` is checked against the framework's numpy on such arrays too.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tiny_davis import write_sequence
from vosbench.interactive import DavisInteractiveSession, annotated_frames
from vosbench.io import read_mask
from vosbench.tracks.interactive.next_frame import classic_argsort

FIXTURES = Path(__file__).parent / "fixtures" / "interactive"
sys.path.insert(0, str(FIXTURES))
import parity_method  # noqa: E402

TOLERANCE = 1e-12


@pytest.fixture(scope="module")
def official():
    with np.load(FIXTURES / "sessions_official.npz") as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays.pop("meta")))
    return meta, arrays


def _davis_folder(root: Path, sequences: list[str], meta: dict, arrays: dict, shared: Path | None) -> Path:
    for name in sequences:
        if name.startswith("synth-"):
            gt = arrays[f"synthetic_{name}"]
        else:
            folder = shared / "data" / "davis2016" / "Annotations" / "480p" / name
            gt = np.stack([read_mask(p, binary=True) for p in sorted(folder.glob("*.png"))])
        write_sequence(root / "Annotations" / "480p" / name, gt)
        scribbles = root / "Scribbles" / name
        scribbles.mkdir(parents=True)
        if name == "bear":
            files = [json.loads((shared / "data" / "davis-interactive" / "Scribbles" / "bear-001-full.json")
                                .read_text())]
        else:
            files = meta["first_scribbles"][name]
        for k, data in enumerate(files, start=1):
            (scribbles / f"{k:03d}.json").write_text(json.dumps(data))
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("\n".join(sequences) + "\n")
    return root


def _play(root: Path, run: dict, report_dir: Path):
    clock = parity_method.FakeClock()
    method = parity_method.PaintMethod(clock)
    robot_frames = []
    with DavisInteractiveSession(davis_root=root, subset="val", max_time=run["max_time"],
                                 max_nb_interactions=run["max_i"], metric_to_optimize=run["metric"],
                                 report_save_dir=report_dir, clock=clock.time, session_id="parity") as sess:
        from vosbench.interactive import Davis

        while sess.next():
            sequence, scribbles, new = sess.get_scribbles(only_last=True)
            info = Davis.dataset[sequence]
            shape = (info["num_frames"], info["image_size"][1], info["image_size"][0])
            masks = method.answer(sequence, scribbles, shape, new)
            candidates = list(range(0, info["num_frames"], 2)) if run["candidates_rule"] == "even" else None
            before = sess.sample_last_scribble
            sess.submit_masks(masks, next_scribble_frame_candidates=candidates)
            if sess.sample_last_scribble is not before:
                robot_frames.append([sequence, sess.samples[sess.sample_idx][1], sess.interaction_nb,
                                     annotated_frames(sess.sample_last_scribble)])
        return sess.get_report(), sess.get_global_summary(), robot_frames


def _compare(key: str, official, tmp_path: Path, shared: Path | None):
    meta, arrays = official
    run = meta["runs"][key]["params"]
    root = _davis_folder(tmp_path / "davis", run["sequences"], meta, arrays, shared)
    report, summary, robot_frames = _play(root, run, tmp_path / "reports")
    expected = {c: arrays[f"report_{key}_{c}"] for c in ("sequence", "scribble_idx", "interaction", "object_id",
                                                         "frame", "jaccard", "contour", "j_and_f", "timing")}
    assert len(report) == len(expected["frame"]) > 0
    for column in ("sequence", "scribble_idx", "interaction", "object_id", "frame"):
        assert report[column].tolist() == expected[column].tolist(), column
    for column in ("jaccard", "contour", "j_and_f", "timing"):
        np.testing.assert_allclose(report[column].to_numpy(float), expected[column], rtol=0, atol=TOLERANCE,
                                   err_msg=column)
    assert robot_frames == meta["runs"][key]["robot_frames"]
    want = meta["runs"][key]["summary"]
    name = run["metric"]
    assert summary["auc"] == pytest.approx(want["auc"], abs=TOLERANCE)
    assert summary["metric_at_threshold"]["threshold"] == want["metric_at_threshold"]["threshold"]
    assert summary["metric_at_threshold"][name] == pytest.approx(want["metric_at_threshold"][name], abs=TOLERANCE)
    np.testing.assert_allclose(summary["curve"]["time"], want["curve"]["time"], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(summary["curve"][name], want["curve"][name], rtol=0, atol=TOLERANCE)
    return report


@pytest.mark.shared
@pytest.mark.slow
def test_real_and_synthetic_sequences_with_a_time_budget(official, tmp_path, davis2016_root):
    report = _compare("a", official, tmp_path, davis2016_root.parent.parent)
    # the budget dropped submissions: some samples stop before 8 interactions
    last = report.groupby(["sequence", "scribble_idx"])["interaction"].max()
    assert last.min() < 8 <= last.max()


def test_metric_j_and_frame_candidates(official, tmp_path):
    _compare("b", official, tmp_path, None)


def test_metric_f_without_an_interaction_limit(official, tmp_path):
    _compare("c", official, tmp_path, None)


def test_tied_frames_in_the_framework_numpys_order(official):
    _, arrays = official
    offsets = arrays["argsort_offsets"]
    differ_from_stable = 0
    for a, b in zip(offsets[:-1], offsets[1:]):
        values = arrays["argsort_values"][a:b]
        expected = arrays["argsort_order"][a:b]
        assert classic_argsort(values).tolist() == expected.tolist()
        differ_from_stable += expected.tolist() != np.argsort(values, kind="stable").tolist()
    assert differ_from_stable > 0   # the framework's order is not a stable sort's
