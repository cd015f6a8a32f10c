"""Per-object statistics over frames: Mean, Recall and Decay, as the DAVIS toolkits define them."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

RECALL_THRESHOLD = 0.5
DECAY_BINS = 4


def mean(values: np.ndarray) -> float:
    """nanmean over frames (NaN when there is no frame)."""
    values = np.asarray(values, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return float(np.nanmean(values)) if values.size else float("nan")


def recall(values: np.ndarray, threshold: float = RECALL_THRESHOLD) -> float:
    """Fraction of frames scoring strictly above `threshold` (NaN frames count as misses)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan")
    with np.errstate(invalid="ignore"):
        return float(np.mean(values > threshold))


def decay_bin_edges(n_frames: int, n_bins: int = DECAY_BINS, uint8_ids: bool = False) -> np.ndarray:
    """Edges of the quantised bins: ``round(linspace(1, N, n_bins + 1) + 1e-10) - 1``.

    Neighbouring bins share an endpoint (bin i is ``x[ids[i] : ids[i+1] + 1]``).
    The official code casts the edges to uint8, which wraps past 256 frames and
    turns Decay into NaN; `uint8_ids=True` reproduces that, the default does not.
    """
    ids = np.round(np.linspace(1, n_frames, n_bins + 1) + 1e-10) - 1
    return ids.astype(np.uint8 if uint8_ids else np.int64)


def decay(values: np.ndarray, n_bins: int = DECAY_BINS, uint8_ids: bool = False) -> float:
    """Mean of the first quantised bin minus the mean of the last (performance loss over time)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan")
    ids = decay_bin_edges(len(values), n_bins, uint8_ids)
    bins = [values[ids[i]:ids[i + 1] + 1] for i in range(n_bins)]
    return mean(bins[0]) - mean(bins[-1])


@dataclass(frozen=True)
class Statistics:
    mean: float
    recall: float
    decay: float


def statistics(values: np.ndarray, uint8_ids: bool = False) -> Statistics:
    """Mean, Recall and Decay of one object's per-frame scores."""
    return Statistics(mean(values), recall(values), decay(values, uint8_ids=uint8_ids))


def object_statistics(values: np.ndarray, prefix: str, uint8_ids: bool = False) -> dict[str, np.ndarray]:
    """Mean, Recall and Decay of each row of a ``(K, T)`` array over its scored (non-NaN) frames, as
    the per-object columns ``{prefix}-Mean``, ``{prefix}-Recall``, ``{prefix}-Decay`` of ``(K,)``."""
    rows = [statistics(row[~np.isnan(row)], uint8_ids=uint8_ids) for row in np.atleast_2d(values)]
    return {f"{prefix}-Mean": np.array([s.mean for s in rows], dtype=np.float64),
            f"{prefix}-Recall": np.array([s.recall for s in rows], dtype=np.float64),
            f"{prefix}-Decay": np.array([s.decay for s in rows], dtype=np.float64)}
