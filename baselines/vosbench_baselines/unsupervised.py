"""Unsupervised multi-object segmentation at CPU scale: detect, refine, associate, re-run from key frames.

This follows the pipeline that won the Alibaba/Youku video person segmentation challenge
(per-frame instance proposals, mask refinement, association by mask propagation with STM
and the Hungarian method, and key frames re-used as memory to recover missed objects),
with each stage made small enough for a CPU:

1. **Proposals** (per frame). *Motion saliency*: dense optical flow (Farneback) to the next
   frame, with the camera's motion removed by a RANSAC homography fitted to the flow; what
   is left is the objects' own motion. *Objectness*: the foreground probability of the
   `osvos` parent network (the shared encoder plus a decoder trained offline to segment
   DAVIS foreground objects; no first-frame fine-tuning). Connected regions of objectness,
   and moving regions the objectness missed, become proposals scored by objectness and motion.
2. **Refinement**: holes filled, small fragments dropped, boundaries smoothed.
3. **Association**: the key frame (the frame with the most confident proposals) seeds the
   object instances; their masks are propagated through the whole video, forwards and
   backwards, by a semi-supervised method (the `stm` baseline when registered; otherwise a
   flow-warping propagator, documented below). On every frame the Hungarian method matches
   proposals to propagated masks by IoU: a matched proposal becomes the object's mask, a
   missed object keeps its propagated mask, fragments inside a propagated mask join it.
4. **Key frames as memory**: the frame where unmatched confident proposals are strongest
   becomes a new key frame; its new objects get ids and propagation is re-run from all key
   frames so far (up to `max_key_frames`). At most 20 object ids per sequence.

Fallback propagator (when no `stm` method is registered): the previous mask is warped to
the next frame by the backward optical flow, which follows the object but drifts over long
occlusions; association still corrects it wherever a proposal matches.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterator, Sequence

import cv2
import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from vosbench.methods.base import SemiSupervisedMethod, UnsupervisedMethod, Video
from vosbench.methods.progress import phase_bar

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------
# Motion saliency
# ----------------------------------------------------------------------------------------


def optical_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense flow from RGB frame `a` to `b` (same size), ``(H, W, 2) float32`` in pixels."""
    ga = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    gb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    return cv2.calcOpticalFlowFarneback(ga, gb, None, pyr_scale=0.5, levels=4, winsize=15, iterations=3,
                                        poly_n=5, poly_sigma=1.2, flags=0)


def camera_motion(flow: np.ndarray, step: int = 8, seed: int = 0) -> np.ndarray:
    """The flow a homography explains (the camera's motion), fitted with RANSAC on a grid of flow vectors."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[step // 2:h:step, step // 2:w:step]
    src = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    dst = src + flow[ys.ravel(), xs.ravel()]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    if len(src) >= 8:
        cv2.setRNGSeed(seed)
        homography, _ = cv2.findHomography(src, dst, cv2.RANSAC, 1.0, maxIters=500)
    else:
        homography = None
    if homography is None:
        # Too few vectors or a degenerate fit: treat the median flow as the camera's translation.
        return np.broadcast_to(np.median(flow.reshape(-1, 2), axis=0), flow.shape).astype(np.float32)
    points = np.stack([grid_x, grid_y, np.ones_like(grid_x)], -1) @ homography.T
    mapped = points[..., :2] / np.where(np.abs(points[..., 2:]) < 1e-6, 1e-6, points[..., 2:])
    return (mapped - np.stack([grid_x, grid_y], -1)).astype(np.float32)


def motion_saliency(flow: np.ndarray, seed: int = 0) -> np.ndarray:
    """0..1 map of motion the camera does not explain.

    The residual magnitude r is squashed by r / (r + tau), tau = max(1 px, 3 x the median
    residual): background noise maps near 0, independent motion of a few pixels near 1.
    """
    residual = np.linalg.norm(flow - camera_motion(flow, seed=seed), axis=-1)
    tau = max(1.0, 3.0 * float(np.median(residual)))
    return (residual / (residual + tau)).astype(np.float32)


# ----------------------------------------------------------------------------------------
# Proposals and refinement
# ----------------------------------------------------------------------------------------


@dataclass
class Proposal:
    mask: np.ndarray   # (H, W) bool
    score: float


def refine_mask(mask: np.ndarray, min_fraction: float = 0.002) -> np.ndarray:
    """Fill holes, close small gaps, drop fragments smaller than `min_fraction` of the frame."""
    mask = mask.astype(bool)
    if not mask.any():
        return mask
    size = max(3, int(round(0.01 * min(mask.shape))) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)
    mask = ndimage.binary_fill_holes(mask)
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
    keep = np.zeros(n + 1, bool)
    keep[1:] = sizes >= min_fraction * mask.size
    return keep[labels]


def fuse_saliency(objectness: np.ndarray, motion: np.ndarray | None, motion_floor: float = 0.5) -> np.ndarray:
    """Appearance times motion: ``objectness x (floor + (1 - floor) x motion)``.

    DAVIS's primary objects are the ones that move: of two equally object-like regions the
    moving one scores higher, while `motion_floor` keeps an object that pauses. Without
    motion (one-frame videos) objectness alone is used.
    """
    if motion is None:
        return objectness
    return objectness * (motion_floor + (1 - motion_floor) * motion)


def frame_proposals(objectness: np.ndarray, motion: np.ndarray | None, threshold: float = 0.5,
                    min_fraction: float = 0.002, max_proposals: int = 20, motion_floor: float = 0.5
                    ) -> list[Proposal]:
    """Instance proposals of one frame from its objectness and motion-saliency maps.

    Regions: connected components of objectness > threshold, plus strongly moving regions
    (motion > threshold, objectness > 0.1) that objectness left out. Score: the region's
    mean fused saliency (`fuse_saliency`), so moving objects rank first.

    (On DAVIS 2016 *train* sequences, cutting regions from the fused map instead lost slow
    objects on moving water: the motion only ranks.)
    """
    fused = fuse_saliency(objectness, motion, motion_floor)
    regions = [refine_mask(objectness > threshold, min_fraction)]
    if motion is not None:
        moving = refine_mask((motion > threshold) & (objectness <= threshold) & (objectness > 0.1), min_fraction)
        regions.append(moving)
    proposals = []
    for region in regions:
        labels, n = ndimage.label(region)
        for k in range(1, n + 1):
            mask = labels == k
            proposals.append(Proposal(mask, float(fused[mask].mean())))
    proposals.sort(key=lambda p: -p.score)
    return proposals[:max_proposals]


def smooth_motion(maps: list[np.ndarray | None], sigma_fraction: float = 0.02) -> list[np.ndarray | None]:
    """Average each frame's motion saliency with its neighbours' and blur it (flow noise is local)."""
    out: list[np.ndarray | None] = []
    for t, current in enumerate(maps):
        if current is None:
            out.append(None)
            continue
        near = [m for m in maps[max(0, t - 1):t + 2] if m is not None and m.shape == current.shape]
        mean = np.mean(near, axis=0).astype(np.float32)
        sigma = max(0.5, sigma_fraction * min(mean.shape))
        out.append(cv2.GaussianBlur(mean, (0, 0), sigma))
    return out


# ----------------------------------------------------------------------------------------
# Association
# ----------------------------------------------------------------------------------------


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def associate(propagated: dict[int, np.ndarray], proposals: Sequence[Proposal], min_iou: float = 0.3
              ) -> tuple[dict[int, np.ndarray], list[Proposal]]:
    """Hungarian matching of proposals to propagated object masks on one frame.

    Returns the frame's object masks (matched proposal, or the propagated mask when the
    object was missed; proposals lying mostly inside a propagated mask join that object)
    and the proposals left unmatched.
    """
    ids = list(propagated)
    result = {i: propagated[i].copy() for i in ids}
    if not proposals:
        return result, []
    cost = np.ones((len(ids), len(proposals)))
    for r, i in enumerate(ids):
        for c, p in enumerate(proposals):
            cost[r, c] = 1.0 - mask_iou(propagated[i], p.mask)
    rows, cols = linear_sum_assignment(cost) if ids else (np.array([], int), np.array([], int))
    used = set()
    for r, c in zip(rows, cols):
        if 1.0 - cost[r, c] >= min_iou:
            result[ids[r]] = proposals[c].mask.copy()
            used.add(int(c))
    unmatched = []
    for c, p in enumerate(proposals):
        if c in used:
            continue
        area = p.mask.sum()
        inside = [(np.logical_and(p.mask, propagated[i]).sum() / max(area, 1), i) for i in ids]
        best = max(inside, default=(0.0, None))
        if best[0] >= 0.5:
            result[best[1]] |= p.mask   # a fragment of a known object
        else:
            unmatched.append(p)
    return result, unmatched


class FlowWarpPropagator(SemiSupervisedMethod):
    """Propagate the given masks frame to frame by moving each labelled pixel along the optical flow.

    Pixels are pushed forwards (splatted) rather than pulled backwards: pulling gives the
    background uncovered behind a moving object the object's label, because flow is smooth
    across the object's edge, and the mask grows with every frame. Splatting leaves pinholes,
    which a small closing fills.
    """

    name: ClassVar[str] = "flow-warp"

    def segment(self, video: Video) -> Iterator[np.ndarray]:
        previous = np.asarray(video.given_masks.get(0, np.zeros(video.size, np.uint8)), np.uint8)
        previous_frame = np.asarray(video.frames[0])
        yield previous
        h, w = video.size
        kernel = np.ones((3, 3), np.uint8)
        for t in range(1, len(video.frames)):
            frame = np.asarray(video.frames[t])
            forward = optical_flow(previous_frame, frame)
            warped = np.zeros((h, w), np.uint8)
            ys, xs = np.nonzero(previous)
            ny = np.rint(ys + forward[ys, xs, 1]).astype(int)
            nx = np.rint(xs + forward[ys, xs, 0]).astype(int)
            inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
            warped[ny[inside], nx[inside]] = previous[ys[inside], xs[inside]]
            closed = np.zeros_like(warped)
            for object_id in np.unique(warped[warped > 0]):
                filled = cv2.morphologyEx((warped == object_id).astype(np.uint8), cv2.MORPH_CLOSE, kernel)
                closed[(filled > 0) & (closed == 0)] = object_id
            warped = closed
            given = video.given_masks.get(t)
            if given is not None:
                warped = np.where(given > 0, given, warped).astype(np.uint8)
            yield warped
            previous, previous_frame = warped, frame


# ----------------------------------------------------------------------------------------
# The method
# ----------------------------------------------------------------------------------------


def _resize(image: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    if image.shape[:2] == size:
        return image
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


class UnsupervisedPipeline(UnsupervisedMethod):
    """Detect, refine, associate (propagation + Hungarian), re-run from key frames.

    Options: propagator ("stm" when registered, else "flow-warp", the fallback; any
    registered semi-supervised method name), objectness_weights (the `osvos` parent's
    weights file; default the packaged one), short_side (working resolution, 240),
    motion_floor (0.5, see `fuse_saliency`),
    max_key_frames (3), max_objects (20), device, seed, pretrained (False: encoder
    without the ImageNet file, for tests).
    """

    name: ClassVar[str] = "unsupervised"

    def __init__(self, device: str = "auto", propagator: str | None = None, objectness_weights: str | None = None,
                 short_side: int = 240, max_key_frames: int = 3, max_objects: int = 20, seed: int = 0,
                 pretrained: bool = True, motion_floor: float = 0.5, **options: Any):
        super().__init__(device=device, propagator=propagator, objectness_weights=objectness_weights,
                         short_side=short_side, max_key_frames=max_key_frames, max_objects=max_objects, seed=seed,
                         pretrained=pretrained, motion_floor=motion_floor, **options)
        self.motion_floor = float(motion_floor)
        self.propagator_name = propagator
        self.short_side = int(short_side)
        self.max_key_frames = int(max_key_frames)
        self.max_objects = min(int(max_objects), self.max_proposals)
        self.seed = int(seed)
        self.objectness_weights = objectness_weights
        self.pretrained = bool(pretrained)
        self._objectness = None
        self._propagator: SemiSupervisedMethod | None = None
        # The masks depend on the weights of both parts: record what they are, so that a run
        # folder made with other objectness or propagator weights is never resumed from.
        self.options["objectness_weights_sha256"] = self.objectness_model().options.get("weights_sha256")
        self.options["propagator_options"] = {"name": self.propagator_choice(), **self.propagator().options}

    # -- parts ---------------------------------------------------------------------------
    def propagator_choice(self) -> str:
        """The propagator's name: the option, else "stm" when registered, else the flow-warping fallback."""
        from vosbench.methods.registry import available_methods

        return self.propagator_name or ("stm" if "stm" in available_methods() else FlowWarpPropagator.name)

    def propagator(self) -> SemiSupervisedMethod:
        if self._propagator is None:
            from vosbench.errors import InputError
            from vosbench.methods.registry import load_propagator

            name = self.propagator_choice()
            if name != FlowWarpPropagator.name:
                try:
                    # It runs from every key frame on masks the pipeline proposed itself.
                    self._propagator = load_propagator(name, self.device)
                    log.info("%s: propagating masks with %s", self.name, name)
                except InputError as exc:
                    if self.propagator_name:   # asked for by name: no silent substitute
                        raise
                    log.warning("%s: the %s method cannot be loaded (%s); propagating masks by optical-flow "
                                "warping instead", self.name, name, exc)
            if self._propagator is None:
                log.info("%s: propagating masks by optical-flow warping", self.name)
                self._propagator = FlowWarpPropagator(device=self.device)
        return self._propagator

    def objectness_model(self):
        if self._objectness is None:
            from vosbench_baselines.osvos import OSVOS

            self._objectness = OSVOS(device=self.device, weights=self.objectness_weights, pretrained=self.pretrained,
                                     short_side=self.short_side)
        return self._objectness

    def objectness(self, frame: np.ndarray) -> np.ndarray:
        """Foreground probability of one (working-resolution) frame."""
        import torch

        from vosbench_baselines.single_frame import to_tensor

        model = self.objectness_model()
        net = model.parent()
        with torch.no_grad():
            logits = net(to_tensor(frame, model.torch_device))[0, 0]
        return torch.sigmoid(logits).cpu().numpy()

    # -- the pipeline ----------------------------------------------------------------------
    def working_frames(self, video: Video) -> list[np.ndarray]:
        h, w = video.size
        factor = min(1.0, self.short_side / min(h, w))
        size = (max(1, round(h * factor)), max(1, round(w * factor)))
        return [_resize(np.asarray(video.frames[t]), size) for t in range(len(video.frames))]

    def detect(self, frames: list[np.ndarray], progress: Callable | None = None) -> list[list[Proposal]]:
        motion = []
        for t, frame in enumerate(phase_bar(frames, desc="motion", unit="frame")):
            other = frames[t + 1] if t + 1 < len(frames) else (frames[t - 1] if t else None)
            motion.append(motion_saliency(optical_flow(frame, other), seed=self.seed) if other is not None else None)
        motion = smooth_motion(motion)
        return [frame_proposals(self.objectness(frame), motion[t], max_proposals=self.max_objects,
                                motion_floor=self.motion_floor)
                for t, frame in enumerate(phase_bar(frames, desc="objectness", unit="frame"))]

    def propagate_from(self, frames: list[np.ndarray], key: int, seed_map: np.ndarray
                       ) -> list[tuple[int, np.ndarray] | None]:
        """One key frame's id map propagated forwards and backwards: per frame (steps from the key, id map)."""
        n = len(frames)
        out: list[tuple[int, np.ndarray] | None] = [None] * n
        present = sorted(int(i) for i in np.unique(seed_map) if i)
        if not present:
            return out
        for order in (list(range(key, n)), list(range(key, -1, -1))):
            clip = Video(name=f"key{key}", frames=[frames[t] for t in order],
                         frame_names=[f"{t:05d}" for t in order], given_masks={0: seed_map}, object_ids=present)
            for step, masks in enumerate(self.propagator().segment(clip)):
                masks = _resize(np.asarray(masks, np.uint8), frames[0].shape[:2], nearest=True)
                out[order[step]] = (step, masks)
        return out

    def propagate(self, frames: list[np.ndarray], key_masks: dict[int, np.ndarray], ids: list[int],
                  runs: dict[int, list] | None = None) -> list[dict[int, np.ndarray]]:
        """Masks of every object on every frame, propagated from the key frames (forwards and backwards).

        Each key frame's id map seeds a run in both directions; on each frame the run from the
        nearest key frame wins (the later key on a tie). runs: cache of finished runs by key
        frame, so that adding a key frame propagates only from it.
        """
        runs = {} if runs is None else runs
        n = len(frames)
        out: list[dict[int, np.ndarray]] = [{i: np.zeros(frames[0].shape[:2], bool) for i in ids} for _ in range(n)]
        distance = np.full(n, np.inf)
        for key in phase_bar(sorted(key_masks), desc="propagation from key frames", unit="key"):
            if key not in runs:
                runs[key] = self.propagate_from(frames, key, key_masks[key])
            for t, entry in enumerate(runs[key]):
                if entry is not None and entry[0] <= distance[t]:
                    out[t] = {i: entry[1] == i for i in ids}
                    distance[t] = entry[0]
        return out

    def segment(self, video: Video) -> Iterator[np.ndarray]:
        frames = self.working_frames(video)
        proposals = self.detect(frames)
        n = len(frames)
        # Seed key frame: the frame with the most confident proposal (ties: more proposals).
        strength = [(round(props[0].score, 3) if props else 0.0, len(props)) for props in proposals]
        key = max(range(n), key=lambda t: strength[t]) if n else 0
        key_masks: dict[int, np.ndarray] = {}
        ids: list[int] = []
        seed_map = np.zeros(frames[0].shape[:2], np.uint8)
        for p in proposals[key]:
            if len(ids) >= self.max_objects:
                break
            ids.append(len(ids) + 1)
            seed_map[p.mask & (seed_map == 0)] = ids[-1]
        key_masks[key] = seed_map
        final: list[dict[int, np.ndarray]] = []
        runs: dict[int, list] = {}
        for _round in range(self.max_key_frames):
            propagated = self.propagate(frames, key_masks, ids, runs)
            final, leftovers = [], []
            for t in range(n):
                masks, unmatched = associate(propagated[t], proposals[t])
                final.append(masks)
                leftovers.append(unmatched)
            # A new key frame where confident proposals are still unexplained.
            unexplained = [sum(p.score for p in u if p.score >= 0.5) for u in leftovers]
            candidate = int(np.argmax(unexplained)) if n else 0
            if len(ids) >= self.max_objects or unexplained[candidate] <= 0 or candidate in key_masks:
                break
            new_map = np.zeros_like(seed_map)
            for i in ids:   # known objects on the new key frame keep their ids (memory)
                new_map[final[candidate][i] & (new_map == 0)] = i
            for p in leftovers[candidate]:
                if p.score < 0.5 or len(ids) >= self.max_objects:
                    continue
                ids.append(len(ids) + 1)
                new_map[p.mask & (new_map == 0)] = ids[-1]
            key_masks[candidate] = new_map
            log.debug("%s: %s: key frame %d adds objects up to id %d", self.name, video.name, candidate, ids[-1])
        h, w = video.size
        for t in range(n):
            yield upsample_objects(final[t] if final else {}, (h, w))


def upsample_objects(masks: dict[int, np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Id map at `size` from working-resolution object masks, each resized smoothly (not blocky).

    Larger objects are drawn first so that smaller ones in front of them stay visible.
    """
    label = np.zeros(size, np.uint8)
    for i in sorted(masks, key=lambda i: -int(masks[i].sum())):
        if not masks[i].any():
            continue
        soft = cv2.resize(masks[i].astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        label[soft >= 0.5] = i
    return label


__all__ = ["UnsupervisedPipeline", "FlowWarpPropagator", "motion_saliency", "camera_motion", "optical_flow",
           "frame_proposals", "associate", "refine_mask", "Proposal"]
