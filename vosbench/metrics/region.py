"""Region similarity J (Jaccard index) as the DAVIS toolkits define it."""
from __future__ import annotations

import numpy as np


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
