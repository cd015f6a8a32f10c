"""``scribble-propagation``: the reference interactive method, in the spirit of interaction-and-propagation.

Each interaction:

1. *Interaction*: the new scribbles become a mask of their frame: per object to
   correct, GrabCut in a box around its scribbles and its previous region, its
   scribbles (drawn with a brush) sure foreground, other ids' scribbles sure
   background, its previous region (or a band around its scribbles) probable
   foreground.
2. *Propagation*: a semi-supervised method (default: the registered ``flow-warp``;
   any registered name or instance, e.g. ``stm`` later) carries that mask forward
   and backward through the sequence, up to (not into) the nearest frames that
   earlier interactions corrected, whose masks are kept.

``propagator="zero-motion"`` copies the mask to every frame (no motion model):
a floor, and a propagator that needs nothing but numpy.
"""
from __future__ import annotations

import logging
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
    from vosbench.methods.registry import available_methods, load_propagator

    if propagator == DEFAULT_PROPAGATOR and propagator not in available_methods():
        log.warning("the propagator %r is not installed; scribble-propagation falls back to %r",
                    propagator, ZeroMotion.name)
        return ZeroMotion(device=device)
    # It carries masks made from scribbles, not annotations (e.g. STM runs without fine-tuning).
    return load_propagator(propagator, device)


def _box(mask: np.ndarray, margin: float, pad: int) -> tuple[slice, slice]:
    """The bounding box of `mask` grown by `margin` times its longer side (plus `pad` pixels) on each side."""
    ys, xs = np.nonzero(mask)
    dy = dx = int(margin * max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)) + pad
    return (slice(max(int(ys.min()) - dy, 0), int(ys.max()) + dy + 1),
            slice(max(int(xs.min()) - dx, 0), int(xs.max()) + dx + 1))


def scribbles_to_frame_mask(image: np.ndarray, scribble_map: np.ndarray, previous: np.ndarray | None,
                            brush: int = 3, margin: float = 0.5, iterations: int = 3,
                            work_size: int = 240) -> np.ndarray:
    """One frame's id map from its new scribbles (``scribble_map``: ids, -1 elsewhere) and the previous mask.

    Per object to correct (scribbled, or whose previous region a scribble of another id
    touches), GrabCut in a box around its scribbles and previous region: its scribbles
    are sure foreground, other ids' scribbles sure background, its previous region
    probable foreground (or, without one, a band around its scribbles), the rest of the
    box probable background; outside the box the previous mask stays.
    """
    height, width = scribble_map.shape
    drawn = scribble_map >= 0
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (brush, brush))
    band = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3 * brush, 3 * brush))
    out = np.zeros((height, width), np.uint8) if previous is None else previous.astype(np.uint8).copy()
    near_scribble = cv2.dilate(drawn.astype(np.uint8), band).astype(bool)
    targets = {int(o) for o in np.unique(scribble_map[drawn]) if o > 0}
    if previous is not None:
        targets |= {int(o) for o in np.unique(previous[near_scribble]) if o > 0}
    bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    for obj in sorted(targets):
        own = cv2.dilate((scribble_map == obj).astype(np.uint8), kernel).astype(bool)
        others = drawn & (scribble_map != obj)
        before = out == obj
        # GrabCut runs on the box grown again by its size, whose outer ring is sure
        # background: colour samples of the surroundings for its background model.
        inner_rows, inner_cols = _box(own | before, margin, 2 * brush)
        ring = np.zeros((height, width), bool)
        ring[inner_rows, inner_cols] = True
        rows, cols = _box(ring, 0.5, 0)
        probable = before if before.any() else cv2.dilate(own.astype(np.uint8), band).astype(bool)
        crop = bgr[rows, cols]
        box_h, box_w = crop.shape[:2]
        # GrabCut's cost grows with the box: large boxes are segmented at most `work_size`
        # pixels across and the result is scaled back (seeds kept wherever they cover a pixel).
        scale = min(1.0, work_size / max(box_h, box_w))
        size = (max(1, round(box_w * scale)), max(1, round(box_h * scale)))

        def shrink(m: np.ndarray, any_cover: bool) -> np.ndarray:
            if scale == 1.0:
                return m[rows, cols]
            area = cv2.resize(m[rows, cols].astype(np.float32), size, interpolation=cv2.INTER_AREA)
            return area > 0 if any_cover else area >= 0.5

        gc = np.where(shrink(ring, False), cv2.GC_PR_BGD, cv2.GC_BGD).astype(np.uint8)
        gc[shrink(probable, False)] = cv2.GC_PR_FGD
        gc[shrink(others, True)] = cv2.GC_BGD
        gc[shrink(own, True)] = cv2.GC_FGD
        small = np.ascontiguousarray(crop if scale == 1.0 else cv2.resize(crop, size, interpolation=cv2.INTER_AREA))
        try:
            cv2.grabCut(small, gc, None, np.zeros((1, 65)), np.zeros((1, 65)), iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:   # one class only in the box: keep the seeds as they are
            pass
        fg = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD))
        if scale != 1.0:
            fg = cv2.resize(fg.astype(np.float32), (box_w, box_h), interpolation=cv2.INTER_LINEAR) >= 0.5
        fg &= ring[rows, cols]
        region = out[rows, cols]
        region[before[rows, cols] & ~fg] = 0
        region[fg] = obj
    for obj in np.unique(scribble_map[drawn]):   # scribbled pixels always take their id
        out[cv2.dilate((scribble_map == obj).astype(np.uint8), kernel).astype(bool)] = int(obj)
    return out


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
