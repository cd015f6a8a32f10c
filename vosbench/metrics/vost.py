"""VOST's measures (its evaluation package, derived from the DAVIS 2017 toolkit): J and J_tr.

J is the DAVIS region similarity per object and frame over the annotated frames without the
first and the last (no F, no void: the ground truth's 255 pixels count as background). J_tr
("J last" in the package's tables) is the same statistics over the last quarter of those
frames: from index ``floor(0.75 * n)`` on. Mean, Recall and Decay follow the DAVIS toolkit,
Decay with its uint8 bin edges (NaN beyond 256 frames), as the package computes it.
"""
from __future__ import annotations

import math

import numpy as np

from vosbench.metrics.statistics import Statistics, statistics


def last_quarter_start(n_frames: int) -> int:
    """First index of the frames J_tr is computed over."""
    return int(math.floor(n_frames * 0.75))


def object_statistics(j: np.ndarray) -> tuple[Statistics, Statistics]:
    """(J, J_tr) statistics of one object's per-frame J."""
    j = np.asarray(j, dtype=np.float64)
    return statistics(j, uint8_ids=True), statistics(j[last_quarter_start(len(j)):], uint8_ids=True)


def combine(j_stats: list[Statistics], tr_stats: list[Statistics]) -> dict[str, float]:
    """The package's global table: the means over objects."""
    def m(values):
        with np.errstate(invalid="ignore"):
            return float(np.mean(values)) if len(values) else float("nan")

    return {"J-Mean": m([s.mean for s in j_stats]), "J-Recall": m([s.recall for s in j_stats]),
            "J-Decay": m([s.decay for s in j_stats]), "J_last-Mean": m([s.mean for s in tr_stats]),
            "J_last-Recall": m([s.recall for s in tr_stats]), "J_last-Decay": m([s.decay for s in tr_stats])}


# ----------------------------------------------------------------------------- the metric
from vosbench.metrics.base import Frame, PerFrameMetric, SequenceInfo  # noqa: E402
from vosbench.metrics.region import jaccard  # noqa: E402


class Vost(PerFrameMetric):
    """VOST's package as one metric: per frame J; per object and globally J's and J_tr's Mean, Recall and
    Decay (the package's CSV calls J_tr "J_last")."""

    name = "vost"
    fields = ("J",)
    columns = ("J-Mean", "J-Recall", "J-Decay", "J_tr-Mean", "J_tr-Recall", "J_tr-Decay")
    lower_is_better = frozenset({"J-Decay", "J_tr-Decay"})

    def frame_values(self, info: SequenceInfo, frame: Frame) -> dict[str, np.ndarray]:
        out = np.full(len(info.pairs), np.nan)
        for k, (gid, pid) in enumerate(info.pairs):
            if frame.scored is None or frame.scored[k]:
                out[k] = float(jaccard(frame.gt_mask(gid), frame.pred_mask(pid)))
        return {"J": out}

    def accumulate(self, values):
        rows = [object_statistics(row[~np.isnan(row)]) for row in np.atleast_2d(values["J"])]
        names = ("mean", "recall", "decay")
        out = {}
        for prefix, which in (("J", 0), ("J_tr", 1)):
            for stat, label in zip(names, ("Mean", "Recall", "Decay")):
                out[f"{prefix}-{label}"] = np.array([getattr(r[which], stat) for r in rows], dtype=np.float64)
        return out
