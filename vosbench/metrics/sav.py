"""SA-V's measures (sam2's ``sav_dataset`` evaluator): per-object J and F, as percentages.

One object is one folder of binary PNGs; objects may overlap. Its scored frames are its
annotated frames without the first and the last. The evaluator adds a frame's J and F to the
object's lists only from the first scored frame where the object has been seen so far, in the
ground truth or in the prediction: scored frames before that (both masks empty) are left out
rather than counted as 1. An object whose ground truth is empty on every scored frame has no
score (the official script stops with an assertion there; vosbench reports it as an error).

J is the usual intersection over union (1 when both are empty), F the DAVIS boundary F with a
tolerance of ``ceil(0.008 * diagonal)``. The object's J and F are the means x100; the global J
and F are the means over every object of every video, J&F their mean.
"""
from __future__ import annotations

import numpy as np

from vosbench.metrics.boundary import f_measure
from vosbench.metrics.region import jaccard


def object_frame_scores(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """J and F of the frames that count, and whether the object was ever in the ground truth.

    gt, pred: ``(T, H, W)`` boolean masks of the scored frames, in order.
    """
    gt = np.asarray(gt, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    present = gt.any(axis=(1, 2)) | pred.any(axis=(1, 2))
    seen = np.flatnonzero(present)
    if seen.size == 0:
        return np.zeros(0), np.zeros(0), False
    first = int(seen[0])
    j = np.asarray(jaccard(gt[first:], pred[first:]), dtype=np.float64).reshape(-1)
    f = np.array([f_measure(gt[t], pred[t]) for t in range(first, gt.shape[0])], dtype=np.float64)
    return j, f, bool(gt.any())


def object_summary(j: np.ndarray, f: np.ndarray) -> tuple[float, float]:
    """(J, F) of one object, as the evaluator reports them (percent)."""
    return float(np.mean(j) * 100), float(np.mean(f) * 100)


def combine(j_values, f_values) -> dict[str, float]:
    """Global J, F and J&F (percent) over every object scored."""
    j = float(np.array(j_values, dtype=np.float64).mean()) if len(j_values) else float("nan")
    f = float(np.array(f_values, dtype=np.float64).mean()) if len(f_values) else float("nan")
    return {"J&F": (j + f) / 2, "J": j, "F": f}


# ----------------------------------------------------------------------------- the metric
from vosbench.errors import InputError  # noqa: E402
from vosbench.metrics.base import Frame, Metric, SequenceInfo  # noqa: E402


class Sav(Metric):
    """SA-V's evaluator as one metric: per frame J and F of each object (NaN on scored frames before the
    object is first seen, in the ground truth or the prediction); per object and globally J&F, J and F
    (fractions: the evaluator prints them x100 with one decimal)."""

    name = "sav"
    fields = ("J", "F")
    columns = ("J&F-Mean", "J-Mean", "F-Mean")

    def begin(self, info: SequenceInfo):
        n = len(info.pairs)
        return {"info": info, "seen": np.zeros(n, dtype=bool), "in_gt": np.zeros(n, dtype=bool),
                "J": [], "F": []}

    def update(self, state, frame: Frame) -> None:
        info: SequenceInfo = state["info"]
        n = len(info.pairs)
        j, f = np.full(n, np.nan), np.full(n, np.nan)
        for k, (gid, pid) in enumerate(info.pairs):
            if frame.scored is not None and not frame.scored[k]:
                continue
            gt, pred = frame.gt_mask(gid), frame.pred_mask(pid)
            has_gt = bool(gt.any())
            state["in_gt"][k] |= has_gt
            state["seen"][k] |= has_gt or bool(pred.any())
            if state["seen"][k]:
                j[k] = float(jaccard(gt, pred))
                f[k] = f_measure(gt, pred)
        state["J"].append(j)
        state["F"].append(f)

    def finish(self, state):
        info: SequenceInfo = state["info"]
        missing = [gid for (gid, _), seen in zip(info.pairs, state["in_gt"]) if not seen]
        if missing:
            raise InputError(None, f"object(s) {missing} of {info.sequence!r} have an empty ground truth on every "
                                   "scored frame; SA-V's evaluator cannot score such an object.",
                             "Drop the object or give it ground truth between its first and last annotated frame.")
        n = len(info.pairs)
        return {f: (np.stack(state[f], axis=1) if state[f] else np.zeros((n, 0))) for f in self.fields}

    def accumulate(self, values):
        j = np.array([np.nanmean(row) for row in values["J"]], dtype=np.float64)
        f = np.array([np.nanmean(row) for row in values["F"]], dtype=np.float64)
        return {"J&F-Mean": (j + f) / 2, "J-Mean": j, "F-Mean": f}

    def summarize(self, per_object, sequences):
        totals = combine(per_object["J-Mean"], per_object["F-Mean"])
        return {"J&F-Mean": totals["J&F"], "J-Mean": totals["J"], "F-Mean": totals["F"]}
