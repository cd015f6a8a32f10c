"""Per-object, per-frame J and F of a whole sequence: the hot loop of every evaluation."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from vosbench.metrics.boundary import BOUNDARY_THRESHOLD, boundary_radius, f_measure_cropped


def object_frame_scores(gt: np.ndarray, pred: np.ndarray, object_ids: Sequence[int],
                        void: np.ndarray | None = None, pred_ids: Sequence[int] | None = None,
                        bound_th: float = BOUNDARY_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """J and F of each object in each frame.

    gt, pred: ``(T, H, W) uint8`` id maps. Object ``object_ids[k]`` of the ground truth
    is compared with id ``pred_ids[k]`` of the prediction (the same ids by default).
    void: optional ``(T, H, W)`` boolean map of pixels to ignore.
    Returns two float64 arrays of shape ``(K, T)``.
    """
    if gt.shape != pred.shape or gt.ndim != 3:
        raise ValueError(f"gt and pred must be (T, H, W) of one shape, got {gt.shape} and {pred.shape}")
    object_ids = list(object_ids)
    pred_ids = object_ids if pred_ids is None else list(pred_ids)
    if len(pred_ids) != len(object_ids):
        raise ValueError("object_ids and pred_ids must have the same length")
    n_frames, height, width = gt.shape
    radius = boundary_radius(height, width, bound_th)
    j = np.empty((len(object_ids), n_frames), dtype=np.float64)
    f = np.empty_like(j)
    for t in range(n_frames):
        gt_t, pred_t = gt[t], pred[t]
        keep = None if void is None else ~void[t]
        for k, (gid, pid) in enumerate(zip(object_ids, pred_ids)):
            g = gt_t == gid
            p = pred_t == pid
            if keep is not None:
                g &= keep
                p &= keep
            inter = np.count_nonzero(g & p)
            union = np.count_nonzero(g | p)
            j[k, t] = 1.0 if union == 0 else inter / union
            f[k, t] = 1.0 if union == 0 else f_measure_cropped(g, p, radius)
    return j, f
