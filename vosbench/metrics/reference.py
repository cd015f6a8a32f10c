"""Slow, obviously-correct reference implementations of J and F.

Written straight from the definitions on full frames with scikit-image's
dilation, so that the fast kernels can be tested against them.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import binary_dilation
from skimage.morphology import disk


def jaccard_reference(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> float:
    gt = np.asarray(gt, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    valid = np.ones_like(gt) if void is None else ~np.asarray(void, dtype=bool)
    inter = union = 0
    for g, p, v in zip(gt.ravel(), pred.ravel(), valid.ravel()):
        if not v:
            continue
        inter += bool(g and p)
        union += bool(g or p)
    return 1.0 if union == 0 else inter / union


def seg2bmap_reference(seg: np.ndarray) -> np.ndarray:
    """A pixel is boundary when it differs from one of the neighbours the DAVIS rule looks at."""
    seg = np.asarray(seg, dtype=bool)
    h, w = seg.shape
    b = np.zeros_like(seg)
    for y in range(h):
        for x in range(w):
            if y < h - 1 and x < w - 1:
                neighbours = [(y, x + 1), (y + 1, x), (y + 1, x + 1)]   # E, S, SE
            elif y == h - 1 and x < w - 1:
                neighbours = [(y, x + 1)]                              # last row: E
            elif x == w - 1 and y < h - 1:
                neighbours = [(y + 1, x)]                              # last column: S
            else:
                neighbours = []                                         # bottom-right corner
            b[y, x] = any(seg[y, x] != seg[n] for n in neighbours)
    return b


def f_measure_reference(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None,
                        bound_th: float = 0.008) -> float:
    gt = np.asarray(gt, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    if void is not None:
        gt = gt & ~np.asarray(void, dtype=bool)
        pred = pred & ~np.asarray(void, dtype=bool)
    radius = bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(*gt.shape))
    gt_b = seg2bmap_reference(gt)
    pred_b = seg2bmap_reference(pred)
    footprint = disk(int(radius))
    gt_dil = binary_dilation(gt_b, structure=footprint)
    pred_dil = binary_dilation(pred_b, structure=footprint)
    n_gt, n_pred = gt_b.sum(), pred_b.sum()
    if n_pred == 0 and n_gt > 0:
        precision, rec = 1.0, 0.0
    elif n_pred > 0 and n_gt == 0:
        precision, rec = 0.0, 1.0
    elif n_pred == 0 and n_gt == 0:
        precision, rec = 1.0, 1.0
    else:
        precision = (pred_b & gt_dil).sum() / float(n_pred)
        rec = (gt_b & pred_dil).sum() / float(n_gt)
    if precision + rec == 0:
        return 0.0
    return 2 * precision * rec / (precision + rec)
