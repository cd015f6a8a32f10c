"""Region similarity J (Jaccard index) as the DAVIS toolkits define it: the kernel and the metric."""
from __future__ import annotations

import numpy as np

from vosbench.metrics.base import Frame, PerFrameMetric, SequenceInfo
from vosbench.metrics.frames import pair_j
from vosbench.metrics.statistics import object_statistics


def jaccard(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> np.ndarray:
    """|P ∩ G| / |P ∪ G| over non-void pixels, over the last two axes.

    Both masks are boolean-like of shape ``(..., H, W)``. A frame whose union is
    empty scores 1 (nothing to find, nothing found), as in the official code.
    Returns float64 of shape ``(...)`` (a 0-d array for single frames).
    """
    gt = np.asarray(gt, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    if void is not None:
        keep = ~np.asarray(void, dtype=bool)
        gt = gt & keep
        pred = pred & keep
    inter = np.count_nonzero(gt & pred, axis=(-2, -1))
    union = np.count_nonzero(gt | pred, axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        j = np.asarray(inter / union, dtype=np.float64)
    return np.where(union == 0, 1.0, j)


class RegionJ(PerFrameMetric):
    """Region similarity J of each (object, predicted id) pair in each frame; Mean, Recall and Decay per object.

    Option decay_uint8_ids: reproduce the official Decay bug (uint8 bin edges); it changes the
    per-object Decay only, not the per-frame values (so it is not part of the cache key).
    """

    name = "J"
    fields = ("J",)
    columns = ("J-Mean", "J-Recall", "J-Decay")
    lower_is_better = frozenset({"J-Decay"})
    summary_options = frozenset({"decay_uint8_ids"})

    def __init__(self, decay_uint8_ids: bool = False):
        super().__init__(decay_uint8_ids=bool(decay_uint8_ids))

    def frame_values(self, info: SequenceInfo, frame: Frame) -> dict[str, np.ndarray]:
        out = np.full(len(info.pairs), np.nan)
        for k, (gid, pid) in enumerate(info.pairs):
            if frame.scored is None or frame.scored[k]:
                out[k] = pair_j(frame.region("gt", gid), frame.region("pred", pid))
        return {"J": out}

    def accumulate(self, values):
        return object_statistics(values["J"], "J", self.options["decay_uint8_ids"])

