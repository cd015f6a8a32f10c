"""The official DAVIS 2016 numbers of 7 published methods, reproduced from their masks."""
from __future__ import annotations

import json

import numpy as np
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


@pytest.mark.shared
@pytest.mark.parametrize("method", METHODS)
def test_per_frame_matches_official(results, davis2016_root, method):
    official = json.loads((davis2016_root / "results" / method / "official_per_frame.json").read_text())
    frame = results[method].per_frame
    compared = 0
    for sequence, group in frame.groupby("sequence"):
        for measure in ("J", "F"):
            expected = np.array(official[sequence][measure], dtype=float)
            got = group[measure].to_numpy()
            assert got.shape == expected.shape, (sequence, measure)
            np.testing.assert_array_less(np.abs(got - expected), 0.0005 + 1e-9)
            compared += got.size
    assert compared == 2 * len(frame) and len(frame) > 1000


@pytest.mark.shared
@pytest.mark.parametrize("method", METHODS)
def test_global_matches_official_leaderboard(results, davis2016_root, method):
    official = json.loads((davis2016_root / "results" / "official_global_val.json").read_text())[method]
    summary = results[method].summary
    for key, column in GLOBAL_KEYS.items():
        assert abs(summary[column] - official[key]) <= 0.001 + 1e-9, (key, summary[column], official[key])


@pytest.mark.shared
def test_cli_writes_official_csvs(davis2016_root, tmp_path):
    status = main(["evaluate", "--gt", str(davis2016_root), "--results", str(davis2016_root / "results" / "osvos"),
                   "--dataset", "davis2016", "--out", str(tmp_path), "--no-cache", "--no-progress", "--jobs", "2"])
    assert status == 0
    import pandas as pd

    glob = pd.read_csv(tmp_path / "global_results-val.csv")
    assert list(glob.columns) == ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
    official = json.loads((davis2016_root / "results" / "official_global_val.json").read_text())["osvos"]
    assert abs(glob["J-Mean"][0] - official["Jmean"]) <= 0.001 + 1e-9
    per_seq = pd.read_csv(tmp_path / "per-sequence_results-val.csv")
    assert list(per_seq.columns) == ["Sequence", "J-Mean", "F-Mean"] and len(per_seq) == 20
    assert per_seq["Sequence"][0] == "blackswan_1"
