"""Evaluation loops written for the DAVIS interactive framework run on vosbench.

``interactive_scripts/`` holds three scripts written here the way published methods'
evaluation loops are written (MiVOS's ``eval_interactive_davis.py``; MANet's and ATNet's
test loops; GIS-RAmap's evaluation), with a toy model. Each differs from a framework
script only in its import line. The GIS-RAmap-style one also runs with its original
``davisinteractive`` import lines, unchanged, through ``python -m vosbench.interactive.compat``.
"""
from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tiny_davis import moving_boxes, write_davis
from vosbench.io.scribbles import write_scribbles
from vosbench.tracks.interactive.report import REPORT_COLUMNS
from vosbench.tracks.interactive.robot import ScribbleRobot

SCRIPTS = Path(__file__).parent / "interactive_scripts"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def davis(tmp_path):
    sequences = {"boxes-a": moving_boxes(8, 48, 64, 2, seed=1), "boxes-b": moving_boxes(6, 48, 64, 1, seed=2)}
    root = write_davis(tmp_path / "davis", sequences)
    robot = ScribbleRobot()
    for name, gt in sequences.items():   # "human" scribble files: the robot on an empty prediction
        for k, frame in enumerate((None, len(gt) - 1), start=1):
            write_scribbles(root / "Scribbles" / name / f"{k:03d}.json",
                            robot.interact(name, np.zeros_like(gt), gt, frame=frame))
    return root, sequences


def _run(script: Path, davis_root: Path, out: Path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", [str(script), str(davis_root), str(out)])
    monkeypatch.chdir(out.parent)
    runpy.run_path(str(script), run_name="__main__")


def _check_outputs(out: Path, n_samples: int, max_interactions: int) -> tuple[pd.DataFrame, dict]:
    reports = [p for p in out.glob("result_*.csv") if not p.name.endswith(".tmp.csv")]
    assert len(reports) == 1 and not list(out.glob("*.tmp.csv"))
    report = pd.read_csv(reports[0], index_col=0)
    assert list(report.columns) == REPORT_COLUMNS
    per_sample = report.groupby(["sequence", "scribble_idx"])["interaction"].max()
    assert len(per_sample) == n_samples and (per_sample == max_interactions).all()
    summaries = list(out.glob("*summary.json"))
    assert len(summaries) == 1
    summary = json.loads(summaries[0].read_text())
    assert set(summary) == {"auc", "metric_at_threshold", "curve"}
    return report, summary


def test_mivos_style_loop(davis, tmp_path, monkeypatch):
    root, _ = davis
    out = tmp_path / "mivos"
    _run(SCRIPTS / "mivos_style.py", root, out, monkeypatch)
    report, summary = _check_outputs(out, 4, 8)
    assert "J_AND_F" in summary["metric_at_threshold"]
    # the script passes the frames it has not interacted with as the next candidates: within a
    # sample the robot never comes back to a frame while others are left
    frames: dict = {}
    for sequence, idx, this_idx in json.loads((out / "interactions.json").read_text()):
        frames.setdefault((sequence, idx), []).append(this_idx[0])
    assert len(frames) == 4
    for (sequence, _), used in frames.items():
        n_frames = 8 if sequence == "boxes-a" else 6
        assert len(set(used[:n_frames])) == min(len(used), n_frames)


def test_manet_style_loop(davis, tmp_path, monkeypatch):
    root, _ = davis
    out = tmp_path / "manet"
    out.mkdir()
    _run(SCRIPTS / "manet_style.py", root, out, monkeypatch)
    report, summary = _check_outputs(out, 4, 8)
    assert "J" in summary["curve"] and "J" in summary["metric_at_threshold"]
    log = json.loads((out / "interactions.json").read_text())
    assert [entry[1] for entry in log] == list(range(1, 9)) * 4      # n_interaction, as the script counts
    # the next frame is the one of lowest J (metric_to_optimize="J") among those the robot has not used
    first = report[(report["sequence"] == "boxes-a") & (report["scribble_idx"] == 1)]
    per_frame = first[first["interaction"] == 1].groupby("frame")["jaccard"].mean()
    assert log[1][2] == int(per_frame.idxmin()) or per_frame.min() == per_frame[log[1][2]]


def test_gis_ramap_style_loop(davis, tmp_path, monkeypatch):
    root, _ = davis
    out = tmp_path / "gis"
    out.mkdir()
    _run(SCRIPTS / "gis_ramap_style.py", root, out, monkeypatch)
    report, summary = _check_outputs(out, 4, 8)
    per_sample = json.loads((out / "per_sample_jaccard.json").read_text())
    assert sorted(per_sample) == ["boxes-a_1", "boxes-a_2", "boxes-b_1", "boxes-b_2"]
    # the script's own J (batched_jaccard) is the report's
    first = report[(report["sequence"] == "boxes-a") & (report["scribble_idx"] == 1)]
    np.testing.assert_allclose(first.groupby("interaction")["jaccard"].mean(), per_sample["boxes-a_1"], atol=1e-12)


@pytest.mark.slow
def test_an_unchanged_framework_script_runs_through_the_compat_entry(davis, tmp_path):
    root, _ = davis
    text = (SCRIPTS / "gis_ramap_style.py").read_text()
    changed = "from vosbench.interactive import DavisInteractiveSession, utils as interactive_utils, batched_jaccard"
    assert changed in text
    original = text.replace(changed, "from davisinteractive.session import DavisInteractiveSession\n"
                                     "from davisinteractive import utils as interactive_utils\n"
                                     "from davisinteractive.metrics import batched_jaccard")
    framework_script = tmp_path / "gis_framework.py"
    framework_script.write_text(original.replace(   # it imports common.py from the scripts' folder
        "sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))",
        f"sys.path.insert(0, {str(SCRIPTS)!r})"))
    out = tmp_path / "compat"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "vosbench.interactive.compat", str(framework_script), str(root),
                           str(out)], capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "AUC" in done.stdout
    _check_outputs(out, 4, 8)


def test_compat_entry_refuses_a_missing_script(tmp_path):
    from vosbench.interactive.compat import main

    assert main([str(tmp_path / "nope.py")]) == 2
