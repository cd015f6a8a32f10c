"""The metric interface: every measure (J, F, T and each benchmark's own) is one `Metric` class.

A metric sees one sequence at a time, one frame at a time, and turns it into dense
per-pair, per-frame arrays (evaluate); it turns those arrays into per-object
columns (accumulate) and the per-object columns of a whole run into its global
figures (summarize). The models are TrackEval's ``eval_sequence`` /
``combine_sequences`` and pycocotools' ``evaluate`` / ``accumulate`` / ``summarize``.

Everything else is shared and lives outside the metric: reading and validating
masks, which frames count (the protocol), matching proposals to objects, the
score cache, the parallel runner and its joblib/Dask backend, the tables. The
runner reads each frame once and hands the same `Frame` to every metric of the
run, so metrics that need the same derived data (a mask's bounding box, its
boundary) share it through `Frame.region` / `Frame.memo` instead of computing
it twice. Frames stream: a metric keeps in its state only what it needs (T keeps
the previous frame's contour descriptors), so memory is bounded by a few frames,
not by the length of the video.

Metrics are registered in one place, `vosbench.metrics.registry`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable, Mapping, Sequence

import numpy as np



@dataclass(frozen=True)
class SequenceInfo:
    """What a metric is told about a sequence before its first frame.

    pairs: the rows of every array the metric returns: ``(ground-truth object id, predicted id)``.
        Semi-supervised: ``(k, k)`` for every object; unsupervised: every (object, proposal) pair
        (matching happens after the metrics, on their arrays).
    frames: names of the frames the metric will be given, in order (the columns of its arrays).
    shape: ``(H, W)`` of every mask of the sequence.
    binary: masks are foreground/background (DAVIS 2016): every non-zero value is object 1.
    """

    sequence: str
    frames: tuple[str, ...]
    pairs: tuple[tuple[int, int], ...]
    shape: tuple[int, int]
    binary: bool = False

    @property
    def object_ids(self) -> tuple[int, ...]:
        return tuple(dict.fromkeys(g for g, _ in self.pairs))

    @property
    def pred_ids(self) -> tuple[int, ...]:
        return tuple(dict.fromkeys(p for _, p in self.pairs))


class Frame:
    """One frame of one sequence, as every metric of a run sees it.

    gt, pred: ``(H, W) uint8`` id maps, or a mapping {id: (H, W) bool mask} where objects may
        overlap (SA-V's one folder per object); None where the frame has no ground truth /
        no predicted mask (a missing prediction is the empty mask for every id).
    void: ``(H, W)`` bool, pixels no measure looks at (DAVIS 2017 unsupervised: label 255), or None.
    scored: ``(len(pairs),)`` bool, the pairs the protocol scores in this frame (None: all). A metric
        may skip the others: the runner sets every unscored value to NaN after `finish` anyway.
    Derived data is computed on first request and shared by every metric of the run for this frame.
    """

    __slots__ = ("index", "name", "gt", "pred", "void", "scored", "_memo")

    def __init__(self, index: int, name: str, gt: np.ndarray | Mapping[int, np.ndarray] | None,
                 pred: np.ndarray | Mapping[int, np.ndarray] | None, void: np.ndarray | None = None,
                 scored: np.ndarray | None = None):
        self.scored = scored
        self.index = index
        self.name = name
        self.gt = gt
        self.pred = pred
        self.void = void
        self._memo: dict[Any, Any] = {}

    @property
    def shape(self) -> tuple[int, int]:
        for labels in (self.gt, self.pred):
            if isinstance(labels, np.ndarray):
                return labels.shape
            if labels:
                return next(iter(labels.values())).shape
        raise ValueError("a frame without any mask has no shape")

    def memo(self, key: Any, build: Callable[[], Any]) -> Any:
        """The value stored under `key` for this frame, built once by `build()` (shared by all metrics)."""
        try:
            return self._memo[key]
        except KeyError:
            value = self._memo[key] = build()
            return value

    def mask(self, side: str, object_id: int) -> np.ndarray:
        """Boolean ``(H, W)`` mask of `object_id` on `side` ("gt" or "pred"), void pixels removed."""
        return self.memo(("mask", side, object_id), lambda: self._mask(side, object_id))

    def gt_mask(self, object_id: int) -> np.ndarray:
        return self.mask("gt", object_id)

    def pred_mask(self, pred_id: int) -> np.ndarray:
        return self.mask("pred", pred_id)

    def _mask(self, side: str, object_id: int) -> np.ndarray:
        labels = self.gt if side == "gt" else self.pred
        if labels is None:
            out = np.zeros(self.shape, dtype=bool)
        elif isinstance(labels, np.ndarray):
            out = labels == object_id
        else:
            found = labels.get(object_id)
            out = np.zeros(self.shape, dtype=bool) if found is None else np.asarray(found, dtype=bool)
        if self.void is not None:
            out = out & ~self.void
        return out

    def label_boxes(self, side: str):
        """`vosbench.metrics.frames.LabelBoxes` of the id map on `side` ("gt" or "pred"): its largest id,
        and each id's pixel count and box, from one pass. The map must be an ``(H, W) uint8`` array."""
        from vosbench.metrics.frames import label_boxes

        return self.memo(("boxes", side), lambda: label_boxes(self.gt if side == "gt" else self.pred))

    def region(self, side: str, object_id: int):
        """The cropped region of `object_id` on `side` ("gt" or "pred") that the J and F kernels share
        (`vosbench.metrics.frames._Region`: bounding box, pixels; boundary and dilations on request)."""
        from vosbench.metrics.frames import FrameRegions

        def build():
            labels = self.gt if side == "gt" else self.pred
            boxes = self.label_boxes(side) if isinstance(labels, np.ndarray) else None
            return FrameRegions(labels, self.void, 0, self.shape, boxes=boxes)

        return self.memo(("regions", side), build).get(object_id)


class Metric(ABC):
    """One measure. Subclasses set the class attributes and implement `update` and `finish`.

    name: the registry key (``"J"``); fields: the per-frame arrays it returns (``("J",)``);
    columns: its per-object columns, which are also its global columns (``("J-Mean", "J-Recall",
    "J-Decay")``); lower_is_better: the columns where less is better (leaderboard ordering);
    version: bump when the same masks would give other numbers (old cached scores are then ignored).
    Options (keyword arguments) are the measure's own settings (F's boundary tolerance); they are
    part of the cache key through `token`.
    """

    name: ClassVar[str]
    fields: ClassVar[tuple[str, ...]]
    columns: ClassVar[tuple[str, ...]]
    lower_is_better: ClassVar[frozenset[str]] = frozenset()
    version: ClassVar[int] = 1

    def __init__(self, **options: Any):
        self.options = dict(options)

    def token(self) -> dict[str, Any]:
        """What identifies this metric's numbers in the score cache: name, version and options."""
        return {"name": self.name, "version": self.version,
                "options": {k: self.options[k] for k in sorted(self.options) if k not in self.summary_options}}

    # Options that only change `summarize` (not the cached per-frame arrays).
    summary_options: ClassVar[frozenset[str]] = frozenset()

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in sorted(self.options.items()))
        return f"{type(self).__name__}({opts})"

    # -- evaluate -------------------------------------------------------------
    def begin(self, info: SequenceInfo) -> Any:
        """The state of one sequence (default: a dict with the info and one row list per field)."""
        return {"info": info, "columns": []}

    @abstractmethod
    def update(self, state: Any, frame: Frame) -> None:
        """Take one frame (frames come in order, each once)."""

    @abstractmethod
    def finish(self, state: Any) -> dict[str, np.ndarray]:
        """{field: (len(info.pairs), len(info.frames)) float64}; NaN where the measure has no value."""

    def eval_sequence(self, info: SequenceInfo, frames: Iterable[Frame]) -> dict[str, np.ndarray]:
        """evaluate, standalone: `begin`, `update` for every frame, `finish`."""
        state = self.begin(info)
        for frame in frames:
            self.update(state, frame)
        return self.finish(state)

    # -- accumulate -----------------------------------------------------------
    @abstractmethod
    def accumulate(self, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per-object columns of one sequence.

        values: {field: (K, T)} as `finish` returned them for the scored pairs, with NaN on every frame
            the protocol does not score. Returns {column: (K,) float64}, one entry per `columns`.
        """

    # -- summarize (combine_sequences) ---------------------------------------
    def summarize(self, per_object: Mapping[str, np.ndarray], sequences: Sequence[str]) -> dict[str, float]:
        """Global figures from the per-object columns of every object of the run.

        per_object: {column: (N,)} over the run's N objects; sequences: (N,) the sequence of each.
        Default: the plain mean over objects of each column (the DAVIS rule; NaN if any is NaN).
        """
        return {c: (float(np.mean(per_object[c])) if len(per_object[c]) else float("nan")) for c in self.columns}


class PerFrameMetric(Metric):
    """A metric whose value for a pair in a frame depends on that frame only: implement `frame_values`."""

    def begin(self, info: SequenceInfo) -> Any:
        return {"info": info, "columns": {f: [] for f in self.fields}}

    @abstractmethod
    def frame_values(self, info: SequenceInfo, frame: Frame) -> dict[str, np.ndarray]:
        """{field: (len(info.pairs),) float64} for one frame."""

    def update(self, state: Any, frame: Frame) -> None:
        for field, column in self.frame_values(state["info"], frame).items():
            state["columns"][field].append(np.asarray(column, dtype=np.float64))

    def finish(self, state: Any) -> dict[str, np.ndarray]:
        info: SequenceInfo = state["info"]
        out = {}
        for field in self.fields:
            cols = state["columns"][field]
            out[field] = (np.stack(cols, axis=1) if cols else np.zeros((len(info.pairs), 0))).astype(np.float64)
        return out


def scored_values(values: np.ndarray) -> list[np.ndarray]:
    """Each row of a ``(K, T)`` array without its NaN frames (the frames a protocol scores)."""
    return [row[~np.isnan(row)] for row in np.atleast_2d(values)]
