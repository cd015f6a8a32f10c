"""Leaderboard files: rows upserted by `vosbench run`, published masks rebuilt into the official table."""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from vosbench.errors import InputError
from vosbench.reports.leaderboard import (COLUMNS, Source, leaderboard_paths, read_leaderboard, record_run,
                                          update_leaderboard)
from vosbench.tracks import EvalParams, Result, SequenceScores


def make_result(j_values: list[list[float]], seed: int = 0) -> Result:
    """A Result of one object per sequence with the given per-frame J (F = J - 0.1)."""
    sequences = []
    for k, values in enumerate(j_values):
        j = np.asarray([values], dtype=float)
        sequences.append(SequenceScores(sequence=f"seq{k}", frames=[f"{t:05d}" for t in range(j.shape[1])],
                                        object_ids=[1], j=j, f=j - 0.1))
    return Result(sequences, EvalParams(), dataset="synthetic", split="val")


@dataclass
class FakeRecord:
    method: str = "flow-warp"
    track: str = "semi"
    dataset: str = "synthetic"
    split: str = "val"
    resolution: str = "480p"
    device: str = "cpu"
    n_sequences: int = 2
    n_frames: int = 8
    n_objects: int = 2
    seconds: float = 4.0
    seconds_per_frame: float = 0.5
    masks_dir: str = "runs/x/masks"
    started: str = "2026-01-01T00:00:00+00:00"
    vosbench_version: str = "0.1.0"
    options: dict = field(default_factory=dict)


def test_record_run_writes_three_files_with_the_measured_figures(tmp_path):
    result = make_result([[0.9, 0.8, 0.7, 0.6], [0.5, 0.5, 0.5, 0.5]])
    md = record_run(FakeRecord(), result, tmp_path)
    paths = leaderboard_paths(tmp_path, "synthetic", "val", "semi")
    assert md == paths["md"]
    assert all(p.is_file() for p in paths.values())
    table = read_leaderboard(paths["json"])
    assert len(table) == 1
    row = table.iloc[0]
    assert row["source"] == Source.THIS_RUN.value
    assert row["method"] == "flow-warp"
    for column in ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]:
        assert row[column] == pytest.approx(result.summary[column])
    assert row["seconds_per_frame"] == 0.5 and row["device"] == "cpu"
    csv = pd.read_csv(paths["csv"])
    assert list(csv.columns) == COLUMNS
    assert csv.loc[0, "J-Mean"] == pytest.approx(result.summary["J-Mean"], abs=1e-5)
    text = md.read_text()
    assert "flow-warp" in text and "this run" in text and f"{result.summary['J&F-Mean']:.3f}" in text


def test_record_run_upserts_by_method_and_options(tmp_path):
    record_run(FakeRecord(), make_result([[0.2, 0.2, 0.2]]), tmp_path)
    record_run(FakeRecord(options={"size": 64}), make_result([[0.4, 0.4, 0.4]]), tmp_path)
    record_run({**FakeRecord().__dict__, "method": "other"}, make_result([[0.3, 0.3, 0.3]]), tmp_path)
    # The same method and options again: replaces its row.
    record_run(FakeRecord(seconds_per_frame=0.25), make_result([[0.9, 0.9, 0.9]]), tmp_path)
    table = read_leaderboard(leaderboard_paths(tmp_path, "synthetic", "val", "semi")["json"])
    assert len(table) == 3
    assert list(table["method"]) == ["flow-warp", "flow-warp", "other"]  # best J&F first
    assert table.loc[0, "J-Mean"] == pytest.approx(0.9) and table.loc[0, "seconds_per_frame"] == 0.25
    assert json.loads(table.loc[1, "options"]) == {"size": 64}


def test_concurrent_runs_keep_every_row(tmp_path):
    def one(k: int):
        record_run(FakeRecord(method=f"m{k}"), make_result([[0.1 * k] * 3]), tmp_path)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    table = read_leaderboard(leaderboard_paths(tmp_path, "synthetic", "val", "semi")["json"])
    assert sorted(table["method"]) == [f"m{k}" for k in range(6)]


def test_record_without_dataset_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="dataset"):
        record_run({**FakeRecord().__dict__, "dataset": ""}, make_result([[0.5] * 3]), tmp_path)
    assert not any(tmp_path.iterdir())


def test_corrupt_leaderboard_names_the_file(tmp_path):
    paths = leaderboard_paths(tmp_path, "synthetic", "val", "semi")
    paths["json"].write_text("{not json")
    with pytest.raises(InputError, match="synthetic-val-semi.json"):
        update_leaderboard([], tmp_path, dataset="synthetic", split="val", track="semi")
