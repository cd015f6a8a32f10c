"""The interactive report (the framework's columns) and its summary: the curve, J&F@60s, AUC."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from vosbench.metrics.interactive import Curve, area_under_curve, build_curve, final_time, value_at

log = logging.getLogger(__name__)

REPORT_COLUMNS = ["session_id", "sequence", "scribble_idx", "interaction", "object_id", "frame",
                  "jaccard", "contour", "j_and_f", "timing"]


@dataclass(frozen=True)
class SampleInfo:
    """One sample of a session: a sequence, the index of its first scribble, its number of objects."""

    sequence: str
    scribble_idx: int
    nb_objects: int


def interaction_rows(session_id: str, sequence: str, scribble_idx: int, interaction: int, timing: float,
                     jaccard: np.ndarray, contour: np.ndarray) -> pd.DataFrame:
    """Report rows of one interaction. `jaccard`, `contour`: ``(objects, frames)``; rows frame-major."""
    n_obj, n_frames = jaccard.shape
    objects, frames = np.meshgrid(np.arange(n_obj) + 1, np.arange(n_frames))
    j = jaccard.T.ravel()
    f = contour.T.ravel()
    n = j.size
    return pd.DataFrame({
        "session_id": [session_id] * n, "sequence": [sequence] * n, "scribble_idx": np.full(n, scribble_idx),
        "interaction": np.full(n, interaction), "object_id": objects.ravel(), "frame": frames.ravel(),
        "jaccard": j, "contour": f, "j_and_f": 0.5 * j + 0.5 * f, "timing": np.full(n, float(timing)),
    }, columns=REPORT_COLUMNS)


METRIC_COLUMNS = {"J": "jaccard", "F": "contour", "J_AND_F": "j_and_f"}


def per_interaction_means(report: pd.DataFrame, samples: Sequence[SampleInfo],
                          max_interactions: int, column: str = "j_and_f") -> tuple[np.ndarray, np.ndarray]:
    """Mean cumulative time and mean J&F after each interaction 1..max_interactions.

    As the framework: J&F is averaged over frames per (sample, object), then over
    every (sample, object) (objects weigh equally); timing is averaged over samples
    and summed over interactions. An interaction a sample never submitted (time
    budget spent, or dropped past it) keeps the sample's previous J&F (0 before the
    first) at zero time.
    """
    n_int = int(max_interactions)
    jf_sum = np.zeros(n_int)
    n_rows = 0
    time_sum = np.zeros(n_int)
    groups = {key: g for key, g in report.groupby(["sequence", "scribble_idx"], sort=False)} if len(report) else {}
    for sample in samples:
        g = groups.get((sample.sequence, sample.scribble_idx))
        prev_jf = np.zeros(sample.nb_objects)
        by_interaction = {} if g is None else {int(i): gi for i, gi in g.groupby("interaction")}
        for i in range(1, n_int + 1):
            gi = by_interaction.get(i)
            if gi is None:
                timing = 0.0
                jf = prev_jf
            else:
                per_obj = gi.groupby("object_id")[column].mean()
                jf = np.array([per_obj.get(k, np.nan) for k in range(1, sample.nb_objects + 1)], dtype=np.float64)
                timing = float(gi["timing"].mean())
                if np.isnan(jf).any():
                    raise ValueError(f"report of {sample.sequence} #{sample.scribble_idx} interaction {i} "
                                     "lacks an object")
            jf_sum[i - 1] += jf.sum()
            time_sum[i - 1] += timing
            prev_jf = jf
        n_rows += sample.nb_objects
    if not samples:
        return np.zeros(n_int), np.zeros(n_int)
    mean_jf = jf_sum / n_rows
    mean_time = np.cumsum(time_sum / len(samples))
    return mean_time, mean_jf


def summarize(report: pd.DataFrame, samples: Sequence[SampleInfo], max_interactions: int | None,
              max_time: float | None, threshold: float = 60.0, metric: str = "J_AND_F",
              monotone: bool = True) -> tuple[dict[str, Any], Curve]:
    """The summary ``{auc, metric_at_threshold: {threshold, <metric>}, curve: {time, <metric>}}`` and its curve.

    samples: every sample of the evaluated set, those never played included (they count as
        zeros, as the framework fills them). metric: ``J``, ``F`` or ``J_AND_F``.
    max_interactions None (a time limit only): the largest interaction of the report, as the
        framework does.
    monotone False: the final point stays where the framework puts it even when that is
        before the last measured time (see `vosbench.metrics.interactive`).
    """
    if metric not in METRIC_COLUMNS:
        raise ValueError(f"metric must be one of {sorted(METRIC_COLUMNS)}, got {metric!r}")
    if max_interactions is None:
        max_interactions = int(report["interaction"].max()) if len(report) else 1
    times, values = per_interaction_means(report, samples, max_interactions, METRIC_COLUMNS[metric])
    sequences: dict[str, int] = {}
    for s in samples:
        sequences.setdefault(s.sequence, s.nb_objects)
    mean_objects = float(np.mean(list(sequences.values()))) if sequences else 0.0
    max_timing = float(report["timing"].max()) if len(report) else 0.0
    end = final_time(max_time, mean_objects, max_interactions, max_timing)
    curve = build_curve(times, values, end, monotone=monotone)
    summary = {
        "auc": area_under_curve(curve.time, curve.value),
        "metric_at_threshold": {"threshold": threshold, metric: value_at(curve.time, curve.value, threshold)},
        "curve": {"time": curve.time.tolist(), metric: curve.value.tolist()},
    }
    return summary, curve


def dumps_summary(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, sort_keys=True) + "\n"
