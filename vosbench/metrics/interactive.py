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


def build_curve(cumulative_time, values, end_time: float | None) -> Curve:
    """The curve from per-interaction mean cumulative times and mean J&F values.

    Prepends (0, 0); appends (end_time, last value) when `end_time` is given.
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
        t = np.concatenate((t, [max(float(end_time), float(t[-1]))]))
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
