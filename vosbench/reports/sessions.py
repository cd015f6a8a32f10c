"""Interactive sessions' results as tables: the per-interaction report and the J&F-versus-time curve.

An interactive run folder holds ``report.csv`` (one row per session, sequence,
scribble, interaction, object and frame: jaccard, contour, j_and_f, timing) and
``summary.json`` (AUC, J&F@60 s and the curve), as `vosbench interactive` writes them.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from vosbench.errors import InputError
from vosbench.reports.tables import TIDY_COLUMNS

REPORT_COLUMNS = ["session_id", "sequence", "scribble_idx", "interaction", "object_id", "frame", "jaccard",
                  "contour", "j_and_f", "timing"]


@dataclass
class InteractiveRun:
    """One interactive run: its per-frame report, its summary and its curve."""

    method: str
    report: pd.DataFrame
    summary: dict[str, Any]

    @property
    def curve(self) -> dict[str, list[float]]:
        return dict(self.summary["curve"])

    @property
    def auc(self) -> float:
        return float(self.summary["auc"])

    @property
    def jf_at_threshold(self) -> float:
        return float(self.summary["metric_at_threshold"]["J_AND_F"])


def is_interactive_folder(folder: str | os.PathLike) -> bool:
    folder = Path(folder)
    return (folder / "summary.json").is_file() and (folder / "report.csv").is_file()


def load_interactive(source: Any, method: str | None = None) -> InteractiveRun:
    """An interactive run from its folder or from a `vosbench.tracks.interactive` result object."""
    if hasattr(source, "report") and hasattr(source, "summary"):
        return InteractiveRun(method or str(getattr(source, "method", "method")), source.report.copy(),
                              dict(source.summary))
    folder = Path(source)
    if not is_interactive_folder(folder):
        raise InputError(folder, "is not an interactive run folder (report.csv and summary.json).",
                         "Pass the folder `vosbench interactive` wrote.")
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        report = pd.read_csv(folder / "report.csv")
    except (OSError, ValueError) as exc:
        raise InputError(folder, f"cannot be read ({exc}).", "Re-run the interactive session.") from exc
    missing = set(REPORT_COLUMNS) - set(report.columns)
    if missing or "curve" not in summary:
        raise InputError(folder / "report.csv", f"lacks {sorted(missing) or ['curve in summary.json']}.",
                         "Re-run the interactive session with this version of vosbench.")
    name = method
    if name is None:
        record = folder / "run.json"
        name = json.loads(record.read_text())["method"] if record.is_file() else folder.name
    return InteractiveRun(str(name), report, summary)


def interaction_table(run: InteractiveRun, by: str = "sequence") -> pd.DataFrame:
    """Rows: interactions; columns: sequences (or ``object_id``); value: J&F averaged as the framework
    does (frames first, then objects and scribbles). Also a ``mean`` column and the mean cumulative time."""
    report = run.report
    per_object = report.groupby(["session_id", "sequence", "scribble_idx", "interaction", "object_id"],
                                as_index=False).agg(j_and_f=("j_and_f", "mean"), timing=("timing", "first"))
    table = per_object.groupby(["interaction", by])["j_and_f"].mean().unstack(by)
    table["mean"] = per_object.groupby("interaction")["j_and_f"].mean()
    timing = per_object.groupby(["session_id", "sequence", "scribble_idx", "interaction"])["timing"].first()
    cumulative = timing.groupby(level=["session_id", "sequence", "scribble_idx"]).cumsum()
    table["mean cumulative time (s)"] = cumulative.groupby(level="interaction").mean()
    return table


def interactive_tidy(run: InteractiveRun, interaction: int | None = None) -> pd.DataFrame:
    """The scores after one interaction (default: the last) as a tidy frame, for the usual pivots and pictures.

    Several scribble files of one sequence are averaged per (object, frame).
    """
    report = run.report
    last = int(report["interaction"].max()) if interaction is None else int(interaction)
    data = report[report["interaction"] == last]
    if data.empty:
        raise KeyError(f"no scores for interaction {last}")
    grouped = data.groupby(["sequence", "object_id", "frame"], as_index=False)[["jaccard", "contour", "j_and_f"]].mean()
    parts = []
    for measure, column in (("J", "jaccard"), ("F", "contour"), ("J&F", "j_and_f")):
        parts.append(pd.DataFrame({"method": run.method, "sequence": grouped["sequence"].astype(str),
                                   "object": grouped["object_id"].astype(np.int64),
                                   "frame": grouped["frame"].astype(np.int64), "measure": measure,
                                   "value": grouped[column].astype(np.float64)}))
    return pd.concat(parts, ignore_index=True)[TIDY_COLUMNS]


def curves(runs: Mapping[str, InteractiveRun] | list[InteractiveRun]) -> dict[str, dict[str, list[float]]]:
    """{method: curve} of several runs, for `vosbench.reports.interactive_curves`."""
    items = runs.values() if isinstance(runs, Mapping) else runs
    return {run.method: run.curve for run in items}
