"""The official DAVIS 2016 numbers of 7 published methods, reproduced from their masks."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import vosbench
from vosbench.cli import main

METHODS = ["osvos", "stm", "premvos", "onavos", "andiff", "ranet", "fseg"]
GLOBAL_KEYS = {"Jmean": "J-Mean", "Jrecall": "J-Recall", "Jdecay": "J-Decay",
               "Fmean": "F-Mean", "Frecall": "F-Recall", "Fdecay": "F-Decay"}


@pytest.fixture(scope="module")
def results(davis2016_root):
    return {m: vosbench.evaluate(davis2016_root, davis2016_root / "results" / m, dataset="davis2016",
                                 track="semi", jobs=2, cache=False)
            for m in METHODS}


def assert_per_frame_matches_official(frame: pd.DataFrame, davis2016_root, method: str) -> None:
    """Every published per-frame J and F (frames 1..n-2) within their rounding, and no other frame scored.

    frame: a per-frame table (`Result.per_frame`, or the per-frame CSV `vosbench evaluate` writes).
    """
    official = json.loads((davis2016_root / "results" / method / "official_per_frame.json").read_text())
    compared = 0
    for sequence, group in frame.groupby("sequence"):
        for measure in ("J", "F"):
            expected = np.array(official[sequence][measure], dtype=float)
            got = group[measure].to_numpy()
            assert got.shape == expected.shape, (sequence, measure)
            np.testing.assert_array_less(np.abs(got - expected), 0.0005 + 1e-9)
            compared += got.size
    assert compared == 2 * len(frame) and len(frame) > 1000


def assert_global_matches_official(summary, davis2016_root, method: str) -> None:
    """The six J and F figures of the official leaderboard row within 0.001 (`summary`: our column names)."""
    official = json.loads((davis2016_root / "results" / "official_global_val.json").read_text())[method]
    for key, column in GLOBAL_KEYS.items():
        assert abs(summary[column] - official[key]) <= 0.001 + 1e-9, (key, summary[column], official[key])


@pytest.mark.shared
@pytest.mark.parametrize("method", METHODS)
def test_per_frame_matches_official(results, davis2016_root, method):
    assert_per_frame_matches_official(results[method].per_frame, davis2016_root, method)


@pytest.mark.shared
@pytest.mark.parametrize("method", METHODS)
def test_global_matches_official_leaderboard(results, davis2016_root, method):
    assert_global_matches_official(results[method].summary, davis2016_root, method)


@pytest.mark.shared
def test_cli_writes_official_csvs(davis2016_root, tmp_path):
    status = main(["evaluate", "--gt", str(davis2016_root), "--results", str(davis2016_root / "results" / "osvos"),
                   "--dataset", "davis2016", "--out", str(tmp_path), "--no-cache", "--no-progress", "--jobs", "2"])
    assert status == 0
    glob = pd.read_csv(tmp_path / "global_results-val.csv")
    assert list(glob.columns) == ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
    official = json.loads((davis2016_root / "results" / "official_global_val.json").read_text())["osvos"]
    assert abs(glob["J-Mean"][0] - official["Jmean"]) <= 0.001 + 1e-9
    per_seq = pd.read_csv(tmp_path / "per-sequence_results-val.csv")
    assert list(per_seq.columns) == ["Sequence", "J-Mean", "F-Mean"] and len(per_seq) == 20
    assert per_seq["Sequence"][0] == "blackswan_1"


# -- the unsupervised track: DAVIS 2016 scores it with the same toolkit (frames 1..n-2, binary masks) --------

UNSUPERVISED_METHODS = ["fseg"]


@pytest.fixture(scope="module")
def unsupervised_results(davis2016_root):
    # Cached (in the test session's own VOSBENCH_HOME) so that the CLI test below reuses these scores;
    # the cache key holds the protocol, so a CLI that chose other rules would score afresh and fail.
    return {m: vosbench.evaluate(davis2016_root, davis2016_root / "results" / m, dataset="davis2016",
                                 track="unsupervised", jobs=2)
            for m in UNSUPERVISED_METHODS}


@pytest.mark.shared
@pytest.mark.parametrize("method", UNSUPERVISED_METHODS)
def test_unsupervised_per_frame_matches_official(unsupervised_results, davis2016_root, method):
    result = unsupervised_results[method]
    assert "first and last frame excluded" in result.params.describe()
    assert_per_frame_matches_official(result.per_frame, davis2016_root, method)


@pytest.mark.shared
@pytest.mark.parametrize("method", UNSUPERVISED_METHODS)
def test_unsupervised_global_matches_official_leaderboard(unsupervised_results, davis2016_root, method):
    assert_global_matches_official(unsupervised_results[method].summary, davis2016_root, method)


@pytest.mark.shared
def test_cli_unsupervised_reproduces_fseg(unsupervised_results, davis2016_root, tmp_path):
    status = main(["evaluate", "--gt", str(davis2016_root), "--results", str(davis2016_root / "results" / "fseg"),
                   "--dataset", "davis2016", "--track", "unsupervised", "--out", str(tmp_path), "--no-progress",
                   "--jobs", "2"])
    assert status == 0
    written = json.loads((tmp_path / "results-val.json").read_text())
    assert written["protocol"]["skip_first_last"] and written["protocol"]["track"] == "unsupervised"
    assert_global_matches_official(written["global"], davis2016_root, "fseg")
    assert_per_frame_matches_official(pd.read_csv(tmp_path / "per-frame_results-val.csv"), davis2016_root, "fseg")
