"""Per-frame arrays of one scored sequence (what a worker returns and the cache stores). numpy only: the
workers that score sequences never import pandas."""
from __future__ import annotations

from typing import Any

import numpy as np

from vosbench.metrics.base import Metric
from vosbench.tracks.params import EvalParams


class SequenceScores:
    """Every per-frame array of one sequence: ``values[field]`` is ``(K, T)``; NaN marks frames not scored.

    object_ids: the ground-truth object ids, in output order.
    values: {field: (K, T) float64} as the run's metrics returned them ("J", "F", "T", ...).
        ``j`` and ``f`` (the historical arguments and attributes) are the "J" and "F" fields.
    labels: how each object is named in the tables (``seq_k``); for the unsupervised
        track ``k`` counts matched proposals, as the official toolkit writes them.
    proposal_ids: unsupervised only: the proposal matched to each object (0 = none).
    """

    def __init__(self, sequence: str, frames: list[str], object_ids: list[int], j: np.ndarray | None = None,
                 f: np.ndarray | None = None, labels: list[str] | None = None, proposal_ids: list[int] | None = None,
                 values: dict[str, np.ndarray] | None = None):
        self.sequence = sequence
        self.frames = list(frames)
        self.object_ids = list(object_ids)
        self.values: dict[str, np.ndarray] = dict(values or {})
        if j is not None:
            self.values["J"] = j
        if f is not None:
            self.values["F"] = f
        self.labels = list(labels) if labels else [f"{sequence}_{k}" for k in range(1, len(self.object_ids) + 1)]
        self.proposal_ids = proposal_ids

    @property
    def j(self) -> np.ndarray:
        return self.values["J"]

    @property
    def f(self) -> np.ndarray:
        return self.values["F"]

    def __repr__(self) -> str:
        return (f"SequenceScores({self.sequence!r}, {len(self.frames)} frames, objects={self.object_ids}, "
                f"fields={list(self.values)})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SequenceScores):
            return NotImplemented
        return (self.sequence == other.sequence and self.frames == other.frames and self.object_ids == other.object_ids
                and self.labels == other.labels and self.proposal_ids == other.proposal_ids
                and self.values.keys() == other.values.keys()
                and all(np.array_equal(v, other.values[k], equal_nan=True) for k, v in self.values.items()))

    def to_arrays(self) -> dict[str, Any]:
        arrays = {f"field:{name}": value for name, value in self.values.items()}
        arrays.update({"object_ids": np.asarray(self.object_ids, dtype=np.int64),
                       "frames": np.asarray(self.frames), "labels": np.asarray(self.labels),
                       "proposal_ids": np.asarray(self.proposal_ids if self.proposal_ids is not None else [],
                                                  dtype=np.int64),
                       "sequence": np.asarray(self.sequence)})
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Any) -> "SequenceScores":
        proposals = [int(x) for x in arrays["proposal_ids"]]
        values = {key[len("field:"):]: np.asarray(arrays[key]) for key in arrays.keys() if key.startswith("field:")}
        return cls(sequence=str(arrays["sequence"]), frames=[str(x) for x in arrays["frames"]],
                   object_ids=[int(x) for x in arrays["object_ids"]], labels=[str(x) for x in arrays["labels"]],
                   proposal_ids=proposals or None, values=values)


def default_metrics(params: EvalParams, fields: set[str]) -> list[Metric]:
    """The built-in metrics that made `fields` (for Results built from arrays alone, e.g. J and F)."""
    from vosbench.metrics.registry import make_metrics

    names = [name for name in ("J", "F", "T") if name in fields]
    return make_metrics(names, params.metric_options())
