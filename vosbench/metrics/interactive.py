"""The J&F-versus-time curve of the interactive track, J&F@60s and AUC, as pure array functions.

A curve is built from one mean J&F and one mean cumulative time per interaction
(interaction 1 first). As in the DAVIS interactive framework:

- the curve starts at (0, 0);
- a final point holds the last J&F at `final_time`. **vosbench's rule for the final
  point:** `final_time` is the time budget of an average sample, ``max_time x mean
  number of objects per sequence`` (what the framework's evaluation server uses,
  and its local evaluation when a time limit is set); without a time limit it is
  ``max_interactions x the largest single timing`` (the framework's local rule
  then). Where the framework would put the final point before the last measured
  time (a curve going back in time), vosbench puts it at the last measured time
  instead, so the curve never goes backwards; with the official budgets this
  cannot happen, as no sample may spend more than its budget;
- J&F@t = ``np.interp(t, time, J&F)`` (the last value past the end);
- AUC = ``trapezoid(J&F, time) / time.max()`` (0 when the curve has no extent).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_THRESHOLD = 60.0


@dataclass(frozen=True)
class Curve:
    """A J&F-versus-time curve: `time` increasing from 0, `value` the J&F at each time."""

    time: np.ndarray
    value: np.ndarray

    def at(self, threshold: float = DEFAULT_THRESHOLD) -> float:
        return value_at(self.time, self.value, threshold)

    def auc(self) -> float:
        return area_under_curve(self.time, self.value)


def final_time(max_time: float | None, mean_objects: float, max_interactions: int | None = None,
               max_timing: float | None = None) -> float:
    """Where the final point of the curve goes (see the module docstring)."""
    if max_time:
        return float(mean_objects) * float(max_time)
    if max_interactions is None or max_timing is None:
        raise ValueError("without max_time the final point needs max_interactions and the largest timing")
    return float(max_interactions) * float(max_timing)


def build_curve(cumulative_time, values, end_time: float | None, monotone: bool = True) -> Curve:
    """The curve from per-interaction mean cumulative times and mean J&F values.

    Prepends (0, 0); appends (end_time, last value) when `end_time` is given, moved to
    the last measured time if it lies before it, unless `monotone` is False (the
    framework's curve, which then goes back in time).
    """
    t = np.asarray(cumulative_time, dtype=np.float64).ravel()
    v = np.asarray(values, dtype=np.float64).ravel()
    if t.shape != v.shape:
        raise ValueError(f"times and values differ in length: {t.size} and {v.size}")
    if t.size and np.any(np.diff(t) < 0):
        raise ValueError("cumulative times must not decrease")
    t = np.concatenate(([0.0], t))
    v = np.concatenate(([0.0], v))
    if end_time is not None:
        t = np.concatenate((t, [max(float(end_time), float(t[-1])) if monotone else float(end_time)]))
        v = np.concatenate((v, v[-1:]))
    return Curve(time=t, value=v)


def value_at(time, value, threshold: float = DEFAULT_THRESHOLD) -> float:
    """The curve's value at `threshold` seconds by linear interpolation (J&F@60s by default)."""
    return float(np.interp(float(threshold), np.asarray(time, dtype=np.float64), np.asarray(value, dtype=np.float64)))


def area_under_curve(time, value) -> float:
    """Area under the curve divided by its largest time (the framework's AUC)."""
    time = np.asarray(time, dtype=np.float64)
    value = np.asarray(value, dtype=np.float64)
    if time.size == 0 or time.max() == 0.0:
        return 0.0
    return float(np.trapezoid(value, x=time) / time.max())


def _batched_ids(y_true: np.ndarray, y_pred: np.ndarray, nb_objects: int | None) -> tuple[np.ndarray, np.ndarray, list[int]]:
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.ndim != 3 or y_pred.ndim != 3:
        raise ValueError(f"y_true and y_pred must be (frames, H, W), got {y_true.shape} and {y_pred.shape}")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same shape: {y_true.shape} != {y_pred.shape}")
    if nb_objects is None:
        ids = np.unique(y_true[(y_true > 0) & (y_true < 255)]).astype(int).tolist()
    else:
        ids = list(range(1, int(nb_objects) + 1))
    if not ids:
        raise ValueError("the ground truth has no object (ids 1..254)")
    return y_true, y_pred, ids


def batched_jaccard(y_true, y_pred, average_over_objects: bool = True, nb_objects: int | None = None) -> np.ndarray:
    """J of each frame and object, ``(frames, objects)``, or averaged over objects ``(frames,)``.

    The DAVIS interactive framework's ``batched_jaccard``: objects are the ids 1..nb_objects,
    or the ids present in `y_true` (255 excluded) when nb_objects is None; no void; an empty
    union scores 1.
    """
    y_true, y_pred, ids = _batched_ids(y_true, y_pred, nb_objects)
    out = np.empty((len(y_true), len(ids)), dtype=np.float64)
    for k, obj in enumerate(ids):
        g, p = y_true == obj, y_pred == obj
        union = np.count_nonzero(g | p, axis=(1, 2))
        inter = np.count_nonzero(g & p, axis=(1, 2))
        out[:, k] = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
    return out.mean(axis=1) if average_over_objects else out


def batched_f_measure(y_true, y_pred, average_over_objects: bool = True, nb_objects: int | None = None,
                      bound_th: float = 0.008) -> np.ndarray:
    """F (boundary measure) of each frame and object, as the framework's ``batched_f_measure``."""
    from vosbench.metrics.frames import object_frame_scores

    y_true, y_pred, ids = _batched_ids(y_true, y_pred, nb_objects)
    if min(int(y_true.min()), int(y_pred.min())) < 0 or max(int(y_true.max()), int(y_pred.max())) > 255:
        raise ValueError("ids must lie within 0..255")
    _, f = object_frame_scores(y_true.astype(np.uint8), y_pred.astype(np.uint8), ids, bound_th=bound_th)
    out = f.T
    return out.mean(axis=1) if average_over_objects else out
