"""DAVIS 2016 has one toolkit for every track: its unsupervised track drops the first and last frame too."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
from tiny_davis import moving_boxes, write_davis, write_sequence

import vosbench
from vosbench.cli import main
from vosbench.io.factory import DatasetKind
from vosbench.tracks import EvalParams, Track

N_FRAMES = 7


@pytest.mark.parametrize("dataset", [DatasetKind.DAVIS2016, "davis2016"])
def test_official_davis2016_unsupervised_is_the_davis2016_toolkit(dataset):
    params = EvalParams.official(Track.UNSUPERVISED, dataset=dataset)
    assert params.track is Track.UNSUPERVISED
    assert params.skip_first_last and not params.apply_void and not params.annotated_only
    # The same frames and masks as the DAVIS 2016 semi-supervised track; only the track differs.
    assert params == replace(EvalParams.official(Track.SEMI, dataset=dataset), track=Track.UNSUPERVISED)
    assert "first and last frame excluded (the DAVIS 2016 toolkit's rule for every track)" in params.describe()


@pytest.mark.parametrize("dataset", [DatasetKind.DAVIS2017, None])
def test_official_davis2017_unsupervised_scores_every_frame_with_void(dataset):
    params = EvalParams.official("unsupervised", dataset=dataset)
    assert not params.skip_first_last and params.apply_void
    assert "all frames" in params.describe() and "DAVIS 2016" not in params.describe()
    assert EvalParams.official("semi", dataset=dataset).skip_first_last


def _tiny_pair(tmp_path, year: int):
    """A one-object ground truth and a prediction that is right except on its first and last frame."""
    gt = {f"s{k}": moving_boxes(N_FRAMES, 24, 32, n_objects=1, seed=k) for k in range(2)}
    root = write_davis(tmp_path / f"gt{year}", gt, year=year)
    results = tmp_path / f"res{year}"
    for name, masks in gt.items():
        pred = masks.copy()
        pred[0] = pred[-1] = 0
        write_sequence(results / name, pred)
    return root, results


def test_davis2016_unsupervised_skips_the_first_and_last_frame(tmp_path):
    root, results = _tiny_pair(tmp_path, 2016)
    result = vosbench.evaluate(root, results, dataset="davis2016", track="unsupervised", cache=False)
    frames = result.per_frame.groupby("sequence")["frame"].apply(list)
    assert all(f == [f"{t:05d}" for t in range(1, N_FRAMES - 1)] for f in frames)
    assert result.summary["J-Mean"] == pytest.approx(1.0) and result.summary["F-Mean"] == pytest.approx(1.0)

    # DAVIS 2017's unsupervised rule scores every frame: the blank first and last frames count.
    root17, results17 = _tiny_pair(tmp_path, 2017)
    result17 = vosbench.evaluate(root17, results17, dataset="davis2017", track="unsupervised", cache=False)
    assert len(result17.per_frame) == 2 * N_FRAMES
    assert result17.summary["J-Mean"] == pytest.approx((N_FRAMES - 2) / N_FRAMES)


def test_cli_commands_use_the_davis2016_rule(tmp_path, capsys):
    root, results = _tiny_pair(tmp_path, 2016)
    out = tmp_path / "out"
    assert main(["evaluate", "--gt", str(root), "--results", str(results), "--dataset", "davis2016", "--track",
                 "unsupervised", "--out", str(out), "--no-cache", "--no-progress"]) == 0
    written = json.loads((out / "results-val.json").read_text())
    assert written["protocol"]["skip_first_last"] and written["global"]["J-Mean"] == pytest.approx(1.0)
    # Under the DAVIS 2016 rule a missing first or last mask is not needed, as in the semi-supervised track.
    for name in ("s0", "s1"):
        (results / name / "00000.png").unlink()
    assert main(["validate", "--gt", str(root), "--results", str(results), "--dataset", "davis2016",
                 "--track", "unsupervised"]) == 0
    assert "valid" in capsys.readouterr().out
