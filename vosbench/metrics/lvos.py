"""LVOS's measures (the lvos-evaluation toolkit, v1 and v2): which frames count, the two boundary
maps, the V (variance) measure and the J&F of the four means.

Frames: each object has a ``frame_range`` (start, end, frame_nums) in ``{split}_meta.json``. The
toolkit walks ``range(start, end, 5)``, skips the first step and any step numbered
``frame_nums - 1``, and writes the others into an array of ``frame_nums - 2`` zeros, which is the
object's per-frame J (or F). Steps the walk does not reach stay 0 and count as 0 in every mean.

Boundary: the toolkit has two paths for the boundary map. The pure-Python one is the DAVIS
``seg2bmap`` (a pixel differs from its east, south or south-east neighbour). The compiled one
(``_get_binary_c``, used only after a separate ``build_ext`` step) computes
``seg XOR (east OR south OR south-east)`` instead, which is another boundary: a foreground pixel
counts only when all three neighbours are background. The two give different F. The package as
installed (``setup.py`` builds no extension, and none is shipped) runs the pure-Python path, so
that is the default here (``compiled=False``); ``compiled=True`` reproduces the other.

V: per object, ``sqrt(round(sum((mean(JF) - JF)²) / n, 4))`` with ``JF = (J + F) / 2`` per frame;
the variance is rounded to 4 decimals before the square root, as the toolkit does.

J&F: ``(J_seen + F_seen + J_unseen + F_unseen) / 4`` where each term is the mean over the objects
of the seen (unseen) videos; NaN when one of the groups is empty.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from vosbench.metrics.boundary import BOUNDARY_THRESHOLD, _precision_recall_to_f, boundary_radius, dilate_disk, seg2bmap

FRAME_STEP = 5


def scored_steps(start: int, end: int, frame_nums: int, step: int = FRAME_STEP) -> tuple[list[int], list[int], int]:
    """(frame indices, positions in the per-object array, array length) of one object.

    The array has ``frame_nums - 2`` entries; positions not listed stay 0.
    """
    length = int(frame_nums) - 2
    frames, positions = [], []
    for k, frame in enumerate(range(int(start), int(end), step)):
        if k == 0 or k == int(frame_nums) - 1:
            continue
        frames.append(frame)
        positions.append(k - 1)
    return frames, positions, length


def compiled_seg2bmap(seg: np.ndarray) -> np.ndarray:
    """The compiled path's boundary map: ``seg XOR (E OR S OR SE)`` inside, DAVIS's rule on the last row/column."""
    seg = np.asarray(seg, dtype=bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ (e | s | se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def f_measure(gt: np.ndarray, pred: np.ndarray, compiled: bool = False, bound_th: float = BOUNDARY_THRESHOLD) -> float:
    """Boundary F of one frame (two boolean ``(H, W)`` masks) with either boundary path.

    Both maps lie inside the masks' bounding box grown by one pixel, so the work is done on that
    box grown by the matching radius (a crop edge inside the frame holds background on both sides).
    """
    gt = np.ascontiguousarray(gt, dtype=bool)
    pred = np.ascontiguousarray(pred, dtype=bool)
    height, width = gt.shape
    radius = boundary_radius(height, width, bound_th)
    union = gt | pred
    rows = np.flatnonzero(union.any(axis=1))
    if rows.size == 0:
        return 1.0
    cols = np.flatnonzero(union.any(axis=0))
    margin = radius + 2
    y0, y1 = max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, height)
    x0, x1 = max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, width)
    bmap = compiled_seg2bmap if compiled else seg2bmap
    gt_b = bmap(gt[y0:y1, x0:x1])
    pred_b = bmap(pred[y0:y1, x0:x1])
    n_gt, n_pred = int(np.count_nonzero(gt_b)), int(np.count_nonzero(pred_b))
    if n_gt == 0 or n_pred == 0:
        return _precision_recall_to_f(n_pred, n_gt, 0, 0)
    gt_dil = dilate_disk(gt_b.astype(np.uint8), radius).astype(bool)
    pred_dil = dilate_disk(pred_b.astype(np.uint8), radius).astype(bool)
    return _precision_recall_to_f(n_pred, n_gt, int(np.count_nonzero(pred_b & gt_dil)),
                                  int(np.count_nonzero(gt_b & pred_dil)))


def variance(j: np.ndarray, f: np.ndarray) -> float:
    """The V measure of one object from its per-frame J and F arrays (zeros included)."""
    jf = (np.asarray(j, dtype=np.float64) + np.asarray(f, dtype=np.float64)) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(jf) if jf.size else np.float64("nan")
        value = np.float64(np.nansum((mean - jf) ** 2)) / np.float64(jf.size) if jf.size else np.float64("nan")
    return math.sqrt(round(value, 4)) if not np.isnan(value) else float("nan")


def object_mean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan")
    return float(np.nanmean(values))


def combine(j_means: Sequence[float], f_means: Sequence[float], v_values: Sequence[float],
            unseen: Sequence[bool]) -> dict[str, float]:
    """The global table of the toolkit from per-object J, F, V means and each object's unseen flag."""
    unseen = np.asarray(unseen, dtype=bool)

    def group(values, mask):
        values = np.asarray(values, dtype=np.float64)[mask]
        with np.errstate(invalid="ignore"):
            return float(np.mean(values)) if values.size else float("nan")

    js, ju = group(j_means, ~unseen), group(j_means, unseen)
    fs, fu = group(f_means, ~unseen), group(f_means, unseen)
    vs, vu = group(v_values, ~unseen), group(v_values, unseen)
    return {"J&F-Mean": ((js + fs) + (ju + fu)) / 4.0, "J-Mean": (js + ju) / 2, "J-seen-Mean": js,
            "J-unseen-Mean": ju, "F-Mean": (fs + fu) / 2, "F-seen-Mean": fs, "F-unseen-Mean": fu,
            "V-Mean": (vs + vu) / 2, "V-seen-Mean": vs, "V-unseen-Mean": vu}


# ----------------------------------------------------------------------------- the metric
from vosbench.metrics.base import Frame, PerFrameMetric, SequenceInfo  # noqa: E402
from vosbench.metrics.region import jaccard  # noqa: E402


class Lvos(PerFrameMetric):
    """The LVOS toolkit as one metric: per frame J and F (pure-Python boundary path by default,
    ``compiled_boundary=True`` for the compiled one); per object J-Mean, F-Mean and V-Mean; globally
    J&F-Mean (the mean of the seen and unseen J and F), J, F and V with their seen/unseen parts.

    unseen: the videos of unseen categories (a summary option: it does not change the per-frame values).
    """

    name = "lvos"
    fields = ("J", "F")
    columns = ("J-Mean", "F-Mean", "V-Mean")
    global_columns = ("J&F-Mean", "J-Mean", "J-seen-Mean", "J-unseen-Mean", "F-Mean", "F-seen-Mean",
                      "F-unseen-Mean", "V-Mean", "V-seen-Mean", "V-unseen-Mean")
    lower_is_better = frozenset({"V-Mean", "V-seen-Mean", "V-unseen-Mean"})
    summary_options = frozenset({"unseen"})

    def __init__(self, unseen=(), compiled_boundary: bool = False):
        super().__init__(unseen=tuple(sorted(str(v) for v in unseen)), compiled_boundary=bool(compiled_boundary))

    def frame_values(self, info: SequenceInfo, frame: Frame) -> dict[str, np.ndarray]:
        n = len(info.pairs)
        j, f = np.full(n, np.nan), np.full(n, np.nan)
        for k, (gid, pid) in enumerate(info.pairs):
            if frame.scored is not None and not frame.scored[k]:
                continue
            gt, pred = frame.gt_mask(gid), frame.pred_mask(pid)
            j[k] = float(jaccard(gt, pred))
            f[k] = f_measure(gt, pred, compiled=self.options["compiled_boundary"])
        return {"J": j, "F": f}

    def accumulate(self, values):
        out = {c: [] for c in self.columns}
        for j, f in zip(values["J"], values["F"]):
            keep = ~np.isnan(j)
            out["J-Mean"].append(object_mean(j[keep]))
            out["F-Mean"].append(object_mean(f[keep]))
            out["V-Mean"].append(variance(j[keep], f[keep]))
        return {c: np.array(v, dtype=np.float64) for c, v in out.items()}

    def summarize(self, per_object, sequences):
        unseen_videos = set(self.options["unseen"])
        unseen = [s in unseen_videos for s in sequences]
        return combine(per_object["J-Mean"], per_object["F-Mean"], per_object["V-Mean"], unseen)
