"""``scribble-propagation``: the reference interactive method, in the spirit of interaction-and-propagation.

Each interaction:

1. *Interaction*: the new scribbles become a mask of their frame. Scribble
   pixels (drawn with a brush) are sure seeds of their object id; the method's
   previous mask of that frame, shrunk and cleared around the new scribbles,
   gives the other seeds (with no previous mask and no background scribble the
   image border is background); a marker watershed on the RGB frame fills the rest.
2. *Propagation*: a semi-supervised method (default: the registered ``flow-warp``;
   any registered name or instance, e.g. ``stm`` later) carries that mask forward
   and backward through the sequence, up to (not into) the nearest frames that
   earlier interactions corrected, whose masks are kept.

``propagator="zero-motion"`` copies the mask to every frame (no motion model):
a floor, and a propagator that needs nothing but numpy.
"""
from __future__ import annotations

import logging
import math
from typing import Any, ClassVar, Iterator, Mapping

import cv2
import numpy as np

from vosbench.io.scribbles import annotated_frames, scribbles_to_masks
from vosbench.methods.base import InteractiveMethod, SemiSupervisedMethod, Video

log = logging.getLogger(__name__)

DEFAULT_PROPAGATOR = "flow-warp"


class ZeroMotion(SemiSupervisedMethod):
    """Propagates by copying the given mask to every frame."""

    name: ClassVar[str] = "zero-motion"

    def segment(self, video: Video) -> Iterator[np.ndarray]:
        start = min(video.given_masks)
        mask = np.zeros(video.size, dtype=np.uint8)
        for t in range(len(video.frames)):
            if t in video.given_masks:
                mask = video.given_masks[t].astype(np.uint8)
            yield mask if t >= start else np.zeros_like(mask)


def _resolve_propagator(propagator: str | SemiSupervisedMethod, device: str) -> SemiSupervisedMethod:
    if isinstance(propagator, SemiSupervisedMethod):
        return propagator
    if propagator == ZeroMotion.name:
        return ZeroMotion(device=device)
    from vosbench.methods.registry import available_methods, load_method

    if propagator == DEFAULT_PROPAGATOR and propagator not in available_methods():
        log.warning("the propagator %r is not installed; scribble-propagation falls back to %r",
                    propagator, ZeroMotion.name)
        return ZeroMotion(device=device)
    method = load_method(propagator, device=device)
    if not isinstance(method, SemiSupervisedMethod):
        raise TypeError(f"propagator {propagator!r} is not a semi-supervised method")
    return method


def scribbles_to_frame_mask(image: np.ndarray, scribble_map: np.ndarray, previous: np.ndarray | None,
                            brush: int = 3) -> np.ndarray:
    """One frame's id map from its scribbles (``scribble_map``: ids, -1 elsewhere) and the previous mask."""
    height, width = scribble_map.shape
    markers = np.zeros((height, width), dtype=np.int32)
    drawn = scribble_map >= 0
    if brush > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (brush, brush))
        thick = cv2.dilate((scribble_map + 1).astype(np.uint16), kernel).astype(np.int32) - 1
        # dilation takes the largest id where brushes overlap; the thin line keeps its own id
        thick[drawn] = scribble_map[drawn]
        scribble_map, drawn = thick, thick >= 0
    if previous is not None and previous.any():
        # Previous regions seed their ids away from their borders and from the new scribbles.
        clear_radius = max(3, int(round(0.03 * math.hypot(height, width))))
        near = cv2.dilate(drawn.astype(np.uint8), cv2.getStructuringElement(
            cv2.MORPH_ELLIPSE, (2 * clear_radius + 1, 2 * clear_radius + 1))).astype(bool)
        shrink = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
        for obj in np.unique(previous):
            core = cv2.erode((previous == obj).astype(np.uint8), shrink).astype(bool) & ~near
            markers[core] = int(obj) + 1
    else:
        background = np.zeros((height, width), dtype=bool)
        background[[0, -1], :] = True
        background[:, [0, -1]] = True
        markers[background & ~drawn] = 1
    markers[drawn] = scribble_map[drawn] + 1
    labels = cv2.watershed(cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR), markers)
    # Watershed lines (-1) take the largest neighbouring label.
    lines = labels < 0
    if lines.any():
        grown = cv2.dilate(np.where(lines, 0, labels).astype(np.float32), np.ones((3, 3), np.uint8))
        labels = np.where(lines, grown.astype(np.int32), labels)
    return np.clip(labels - 1, 0, 255).astype(np.uint8)


class ScribblePropagation(InteractiveMethod):
    """Scribbles -> mask of the scribbled frame -> propagation through the sequence."""

    name: ClassVar[str] = "scribble-propagation"

    def __init__(self, device: str = "auto", propagator: str | SemiSupervisedMethod = DEFAULT_PROPAGATOR,
                 brush: int = 3, **options: Any):
        super().__init__(device=device, propagator=propagator, brush=brush, **options)
        self.brush = int(brush)
        self._propagator_spec = propagator
        self._propagator: SemiSupervisedMethod | None = None
        self._corrected: dict[str, list[int]] = {}

    @property
    def propagator(self) -> SemiSupervisedMethod:
        if self._propagator is None:
            self._propagator = _resolve_propagator(self._propagator_spec, self.device)
        return self._propagator

    def _propagate(self, video: Video, frames: list[int], mask: np.ndarray, object_ids: list[int]) -> list[np.ndarray]:
        """Masks of `frames` (consecutive, starting at the scribbled frame) propagated from `mask`."""
        view = Video(name=video.name, frames=[video.frames[t] for t in frames],
                     frame_names=[video.frame_names[t] for t in frames], given_masks={0: mask},
                     object_ids=object_ids)
        out = []
        for k, m in enumerate(self.propagator.segment(view)):
            out.append(mask if k == 0 else np.asarray(m, dtype=np.uint8))
            if len(out) == len(frames):
                break
        return out

    def interact(self, video: Video, scribbles: Mapping[str, Any], previous_masks: np.ndarray | None) -> np.ndarray:
        n_frames = len(video.frames)
        height, width = video.size
        if previous_masks is None:
            self._corrected[video.name] = []
            masks = np.zeros((n_frames, height, width), dtype=np.uint8)
        else:
            masks = np.array(previous_masks, dtype=np.uint8, copy=True)
        corrected = self._corrected.setdefault(video.name, [])
        object_ids = list(video.object_ids) or sorted(
            {int(s["object_id"]) for f in scribbles["scribbles"] for s in f if s["object_id"] > 0})
        drawn = scribbles_to_masks(scribbles, height, width)
        for t in annotated_frames(scribbles):
            prev = None if previous_masks is None else masks[t]
            frame_mask = scribbles_to_frame_mask(video.frames[t], drawn[t], prev, self.brush)
            later = [c for c in corrected if c > t]
            earlier = [c for c in corrected if c < t]
            forward = list(range(t, min(later) if later else n_frames))
            backward = list(range(t, (max(earlier) if earlier else -1), -1))
            for idx, m in zip(forward, self._propagate(video, forward, frame_mask, object_ids)):
                masks[idx] = m
            for idx, m in zip(backward, self._propagate(video, backward, frame_mask, object_ids)):
                masks[idx] = m
            corrected.append(t)
        return masks
