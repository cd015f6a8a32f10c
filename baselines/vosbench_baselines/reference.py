"""Reference methods that need no training and no weights: they run anywhere, on the CPU.

flow-warp: propagate the previous frame's mask with dense optical flow (OpenCV),
    the classic training-free semi-supervised baseline.
first-frame: repeat the first-frame mask on every frame; a sanity floor that any
    real method must beat.
"""
from __future__ import annotations

import enum
import logging
from typing import Iterator

import cv2
import numpy as np

from vosbench.errors import VosbenchError
from vosbench.methods.base import SemiSupervisedMethod, Video

log = logging.getLogger(__name__)


def _cpu_only(name: str, device: str, options: dict) -> str:
    if options.get("weights") is not None:
        raise VosbenchError(f"{name} needs no weights; drop --weights.")
    if device not in ("auto", "cpu"):
        log.info("%s runs on the CPU only (asked for %s)", name, device)
    return "cpu"


def _blank(video: Video) -> np.ndarray:
    height, width = video.size
    return np.zeros((height, width), dtype=np.uint8)


def _introduce(labels: np.ndarray, given: np.ndarray | None) -> np.ndarray:
    """Paint the objects first given on this frame over the propagated labels."""
    if given is None:
        return labels
    labels = labels.copy()
    new = given != 0
    labels[new] = given[new]
    return labels


class FirstFrame(SemiSupervisedMethod):
    """Every frame gets the mask of the frame its objects were given on (no motion at all)."""

    name = "first-frame"

    def __init__(self, device: str = "cpu", **options):
        super().__init__(device=_cpu_only(self.name, device, options),
                         **{k: v for k, v in options.items() if v is not None})

    def segment(self, video: Video) -> Iterator[np.ndarray]:
        labels = _blank(video)
        for t in range(len(video.frame_names)):
            labels = _introduce(labels, video.given_masks.get(t))
            yield labels


class FlowAlgorithm(str, enum.Enum):
    DIS = "dis"                # OpenCV's DIS optical flow (fast, robust to large motion)
    FARNEBACK = "farneback"    # OpenCV's Farneback polynomial-expansion flow


class FlowWarp(SemiSupervisedMethod):
    """Warp the previous frame's per-object soft masks into the next frame along backward optical flow.

    For frame t the flow is computed from frame t to frame t-1, so every pixel of
    frame t looks up where it came from (no holes, unlike forward splatting). The
    one-hot masks of frame t-1, lightly blurred so that object borders are soft,
    are sampled there with `cv2.remap`; the label is the argmax. Pixels whose source
    lies outside the frame become background: objects re-entering the frame are
    lost, which is what a flow-only method can do.

    occlusion_check: also compute the forward flow and make background the pixels
    where it does not undo the backward flow (uncovered background, which otherwise
    trails behind a moving object). It helps on the generated data (rigid objects over
    textured backgrounds: J&F 0.54 -> 0.58) but hurts on real video, where deforming
    objects fail the check and erode (5 DAVIS 2016 val sequences: 0.42 -> 0.26), and it
    doubles the time, so it is off by default.

    Deterministic: no randomness, single-image OpenCV calls.
    """

    name = "flow-warp"

    def __init__(self, device: str = "cpu", flow: FlowAlgorithm | str = FlowAlgorithm.DIS,
                 softness: float = 1.0, occlusion_check: bool = False, **options):
        flow = FlowAlgorithm(flow)
        if softness < 0:
            raise VosbenchError(f"flow-warp softness must be >= 0, got {softness}")
        super().__init__(device=_cpu_only(self.name, device, options), flow=flow.value, softness=float(softness),
                         occlusion_check=bool(occlusion_check), **{k: v for k, v in options.items() if v is not None})
        self.flow = flow
        self.softness = float(softness)
        self.occlusion_check = bool(occlusion_check)

    def flow_field(self, target_gray: np.ndarray, source_gray: np.ndarray) -> np.ndarray:
        """Per pixel of `target_gray`, the displacement to its match in `source_gray`."""
        if self.flow is FlowAlgorithm.DIS:
            dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
            # The preset stops at half resolution, which underestimates the motion of small objects
            # (a 3 px/frame object was tracked at 2); full resolution with small patches follows it,
            # and scored higher on both DAVIS 2016 and the generated data.
            dis.setFinestScale(0)
            dis.setPatchSize(4)
            dis.setPatchStride(2)
            return dis.calc(target_gray, source_gray, None)
        # Averaging windows scale with the frame: a fixed large window smooths small objects' motion away.
        winsize = max(5, int(min(target_gray.shape) / 32) | 1)
        return cv2.calcOpticalFlowFarneback(target_gray, source_gray, None, pyr_scale=0.5, levels=4,
                                            winsize=winsize, iterations=3, poly_n=7, poly_sigma=1.5, flags=0)

    def _disoccluded(self, current: np.ndarray, previous: np.ndarray, backward: np.ndarray,
                     map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
        """Pixels of the current frame whose backward flow the forward flow does not undo.

        Forward-backward consistency (Sundaram, Brox and Keutzer, ECCV 2010): where a moving
        object uncovers the background, the backward flow there is a guess smoothed from the
        object's motion, and warping would drag the object's label along behind it.
        """
        forward = self.flow_field(previous, current)
        forward_at = cv2.remap(forward, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mismatch = np.sum((backward + forward_at) ** 2, axis=2)
        scale = np.sum(backward ** 2, axis=2) + np.sum(forward_at ** 2, axis=2)
        return mismatch > 0.01 * scale + 0.5

    def _warp(self, labels: np.ndarray, ids: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
        scores = np.empty((len(ids),) + labels.shape, dtype=np.float32)
        for k, object_id in enumerate(ids):
            soft = (labels == object_id).astype(np.float32)
            if self.softness > 0:
                soft = cv2.GaussianBlur(soft, (0, 0), self.softness)
            # Sources outside the frame: background (k == 0) is certain there, objects are not.
            scores[k] = cv2.remap(soft, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                  borderValue=1.0 if k == 0 else 0.0)
        return ids[np.argmax(scores, axis=0)].astype(np.uint8)

    def propagate(self, labels: np.ndarray, ids: np.ndarray, previous_gray: np.ndarray,
                  current_gray: np.ndarray) -> np.ndarray:
        """The label map of the previous frame (ids: background 0 and its object ids) moved
        onto the current frame (both frames grayscale uint8 of the labels' size)."""
        if not labels.any():
            return labels
        height, width = labels.shape
        grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        flow = self.flow_field(current_gray, previous_gray)
        map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
        labels = self._warp(labels, ids, map_x, map_y)
        if self.occlusion_check:
            labels[self._disoccluded(current_gray, previous_gray, flow, map_x, map_y)] = 0
        return labels

    def segment(self, video: Video) -> Iterator[np.ndarray]:
        ids = np.array([0] + sorted(set(video.object_ids)), dtype=np.int64)
        labels = _introduce(_blank(video), video.given_masks.get(0))
        ids = np.union1d(ids, np.unique(labels)).astype(np.int64)
        previous = cv2.cvtColor(video.frames[0], cv2.COLOR_RGB2GRAY)
        yield labels
        for t in range(1, len(video.frame_names)):
            current = cv2.cvtColor(video.frames[t], cv2.COLOR_RGB2GRAY)
            labels = self.propagate(labels, ids, previous, current)
            given = video.given_masks.get(t)
            if given is not None:
                ids = np.union1d(ids, np.unique(given)).astype(np.int64)
            labels = _introduce(labels, given)
            previous = current
            yield labels
