"""benchmarks/interactive_leaderboard.py: rows played (and resumed) one by one, then the leaderboard files."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "interactive_leaderboard.py"


def _script():
    spec = importlib.util.spec_from_file_location("interactive_leaderboard", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_play_then_write(tmp_path):
    from vosbench.io.synthetic import default_dataset_root

    script = _script()
    root = default_dataset_root()
    sequence = (root / "ImageSets" / "2017" / "val.txt").read_text().split()[0]
    runs, out = tmp_path / "runs", tmp_path / "leaderboards"
    play = ["play", "--gt", str(root), "--dataset", "synthetic", "--sequences", sequence, "--label", "grabcut row",
            "--method", "s2m-stm", "--option", 'interaction="grabcut"', "--max-interactions", "2",
            "--runs", str(runs)]
    assert script.main(play) == 0
    row = json.loads((runs / "grabcut_row" / "row.json").read_text())
    assert row["clock"] == "cpu" and row["options"]["interaction"] == "grabcut"
    assert "--option 'interaction=\"grabcut\"'" in row["command"]
    walls = json.loads((runs / "grabcut_row" / "wall_seconds" / f"{sequence}__001.json").read_text())
    assert len(walls) == 2 and all(w > 0 for w in walls)
    # A second play takes the finished sample from the checkpoint: same report.
    report = (runs / "grabcut_row" / "report.csv").read_text()
    assert script.main(play) == 0
    assert (runs / "grabcut_row" / "report.csv").read_text() == report

    assert script.main(["write", "--runs", str(runs), "--out", str(out), "--note", "a note"]) == 0
    table = pd.read_csv(out / "synthetic-val-interactive.csv")
    assert list(table["method"]) == ["grabcut row"] and list(table["source"]) == ["this run"]
    assert table["AUC"].iloc[0] == pytest.approx(row["summary"]["auc"], abs=1e-5)
    assert {"J&F after 1", "J&F after 2"} <= set(table.columns) and "J&F after 3" not in table.columns
    assert (out / "synthetic-val-interactive.png").stat().st_size > 0
    text = (out / "synthetic-val-interactive.md").read_text()
    board, published = text.split("## Published interactive figures")
    assert "grabcut row" in board and "MiVOS" not in board and "MiVOS" in published and "- a note" in board
    payload = json.loads((out / "synthetic-val-interactive.json").read_text())
    assert payload["track"] == "interactive" and payload["rows"][0]["method"] == "grabcut row"
