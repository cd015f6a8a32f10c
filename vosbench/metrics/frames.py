"""Per-object, per-frame J and F of a whole sequence: the hot loop of every evaluation.

Work is split so that nothing is done once per (object, frame) pair that can be
done once per mask: in each frame, every ground-truth object and every
predicted id is turned once into a `_Region` (its bounding box, its pixels,
its boundary map, and -- when a pair first needs it -- the boundary dilated by
the matching disk, all cropped to the box). A pair then only intersects two small crops. This is what makes the
unsupervised track's (proposal x object) matrix cheap, and keeps the
semi-supervised diagonal free of full-frame passes except one per id map
(`label_boxes`: every id's pixel count and box).

Cropping is exact: a boundary pixel (see `seg2bmap`) lies inside the mask's
box grown by one pixel, and the dilated boundary inside that box grown by the
radius, so counts over the crops equal counts over the whole frame.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from vosbench.metrics.boundary import (BOUNDARY_THRESHOLD, _precision_recall_to_f, boundary_radius, dilate_disk,
                                       seg2bmap)

try:  # the optional compiled kernels (pyproject's ext-modules); the Python paths below give the same numbers
    from vosbench.metrics._native import boundary_matches as _native_boundary_matches
    from vosbench.metrics._native import label_boxes as _native_label_boxes
except ImportError:  # pragma: no cover - installed without a C compiler
    _native_boundary_matches = _native_label_boxes = None

# Radii the native kernel takes (its distances are bytes); larger ones go the Python way.
_NATIVE_MAX_RADIUS = 254


def native_kernel_available() -> bool:
    """Whether F's boundary matching and the regions' boxes run in the compiled kernels (else in
    OpenCV/numpy; same numbers)."""
    return _native_boundary_matches is not None


class LabelBoxes(NamedTuple):
    """What one pass over an id map tells: its largest id (0 when empty), and for each non-zero id
    present its pixel count and bounding box, ``{id: (count, y0, y1, x0, x1)}`` (ends exclusive)."""

    top: int
    boxes: dict[int, tuple[int, int, int, int, int]]


def label_boxes(labels: np.ndarray, native: bool = True) -> LabelBoxes:
    """The `LabelBoxes` of a ``(H, W) uint8`` id map (any strides).

    native: use the compiled kernel when it is built (one pass over the map); False: numpy and
    OpenCV, a count and a box per id, its reference."""
    if native and _native_label_boxes is not None:
        return LabelBoxes(*_native_label_boxes(labels))
    import cv2

    if labels.dtype != np.uint8 or labels.ndim != 2:
        raise ValueError("labels must be a 2-D uint8 array")
    if labels.strides[1] != 1:
        labels = np.ascontiguousarray(labels)  # OpenCV takes rows of adjacent bytes
    boxes = {}
    x, y, w, h = cv2.boundingRect(labels) if labels.size else (0, 0, 0, 0)
    if w:
        crop = labels[y:y + h, x:x + w]
        top = int(crop.max())
        # Few ids (the usual case): try each; many: find those present with one count of every value.
        present = range(1, top + 1) if top <= 16 else np.flatnonzero(np.bincount(crop.ravel(), minlength=256)[1:]) + 1
        for object_id in present:
            mask = (crop == object_id).view(np.uint8)
            n = int(np.count_nonzero(mask))
            if n:
                bx, by, bw, bh = cv2.boundingRect(mask)
                boxes[int(object_id)] = (n, y + by, y + by + bh, x + bx, x + bx + bw)
    return LabelBoxes(max(boxes, default=0), boxes)


class _Region:
    """One binary mask of one frame, reduced to its bounding box.

    box: (y0, y1, x0, x1) of the mask grown by one pixel and clipped to the frame
    (where its boundary lives); mask: the mask cropped to box. Computed on first use:
    bmap, n_b: its boundary over box; `dilated(radius)`: the boundary dilated by the
    disk, cropped to the box grown by the radius (J alone never pays for boundaries).
    """

    __slots__ = ("empty", "box", "mask", "n", "_bmap", "_n_b", "_dil", "_radius", "_frame_shape")

    def __init__(self, mask: np.ndarray | None, radius: int = 0, need_boundary: bool = True,
                 offset: tuple[int, int] = (0, 0), frame_shape: tuple[int, int] | None = None):
        """mask: the binary mask, or a crop of it at `offset` in a frame of `frame_shape`
        (the crop must hold every pixel of the mask). radius: the default dilation radius (`dil`)."""
        self.empty = True
        self.n = 0
        self._bmap = None
        self._n_b = 0
        self._dil: dict[int, tuple] = {}
        self._radius = radius
        if mask is None:
            return
        import cv2  # here, not at the top: the compiled scoring path never needs OpenCV in a worker

        x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
        if w == 0:
            return
        self.empty = False
        oy, ox = offset
        height, width = frame_shape or mask.shape
        self._frame_shape = (height, width)
        # The box in frame coordinates, grown by one pixel, and the same box in the crop given.
        y0, x0 = max(y + oy - 1, 0), max(x + ox - 1, 0)
        y1, x1 = min(y + oy + h + 1, height), min(x + ox + w + 1, width)
        self.box = (y0, y1, x0, x1)
        if (y0 >= oy and x0 >= ox and y1 - oy <= mask.shape[0] and x1 - ox <= mask.shape[1]):
            self.mask = mask[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
        else:  # the grown box leaves the crop: pad with the background it stands for
            self.mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
            sy0, sx0 = max(y0 - oy, 0), max(x0 - ox, 0)
            sy1, sx1 = min(y1 - oy, mask.shape[0]), min(x1 - ox, mask.shape[1])
            self.mask[sy0 + oy - y0:sy1 + oy - y0, sx0 + ox - x0:sx1 + ox - x0] = mask[sy0:sy1, sx0:sx1]
        self.n = int(np.count_nonzero(self.mask))

    @classmethod
    def of_box(cls, mask: np.ndarray, box: tuple[int, int, int, int], n: int, radius: int,
               frame_shape: tuple[int, int]) -> "_Region":
        """A non-empty region whose box (the mask's, grown by one pixel and clipped) and pixel count
        are already known; mask: its pixels over that box."""
        region = cls(None, radius)
        region.empty = False
        region.box = box
        region.mask = mask
        region.n = n
        region._frame_shape = frame_shape
        return region

    @property
    def bmap(self) -> np.ndarray:
        if self._bmap is None:
            self._bmap = seg2bmap(self.mask)
            self._n_b = int(np.count_nonzero(self._bmap))
        return self._bmap

    @property
    def n_b(self) -> int:
        if self.empty:
            return 0
        if self._bmap is None:
            self.bmap
        return self._n_b

    def dilated(self, radius: int) -> tuple[tuple[int, int, int, int], np.ndarray]:
        """(dil_box, dil): the boundary dilated by the disk of `radius`, over the box grown by it."""
        found = self._dil.get(radius)
        if found is None:
            y0, y1, x0, x1 = self.box
            height, width = self._frame_shape
            dy0, dx0 = max(y0 - radius, 0), max(x0 - radius, 0)
            dy1, dx1 = min(y1 + radius, height), min(x1 + radius, width)
            window = np.zeros((dy1 - dy0, dx1 - dx0), dtype=np.uint8)
            window[y0 - dy0:y1 - dy0, x0 - dx0:x1 - dx0] = self.bmap.view(np.uint8)
            found = self._dil[radius] = ((dy0, dy1, dx0, dx1), dilate_disk(window, radius).view(bool))
        return found

    def dil_box_for(self, radius: int) -> tuple[int, int, int, int]:
        y0, y1, x0, x1 = self.box
        height, width = self._frame_shape
        return max(y0 - radius, 0), min(y1 + radius, height), max(x0 - radius, 0), min(x1 + radius, width)

    @property
    def dil_box(self) -> tuple[int, int, int, int]:
        return self.dil_box_for(self._radius)

    @property
    def dil(self) -> np.ndarray:
        """The boundary dilated by the default disk, over dil_box; computed on first use."""
        return self.dilated(self._radius)[1]


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]):
    y0, y1 = max(a[0], b[0]), min(a[1], b[1])
    x0, x1 = max(a[2], b[2]), min(a[3], b[3])
    if y0 >= y1 or x0 >= x1:
        return None
    return y0, y1, x0, x1


def _crop(array: np.ndarray, box: tuple[int, int, int, int], part: tuple[int, int, int, int]) -> np.ndarray:
    return array[part[0] - box[0]:part[1] - box[0], part[2] - box[2]:part[3] - box[2]]


def _count_and(a: np.ndarray, a_box, b: np.ndarray, b_box) -> int:
    part = _overlap(a_box, b_box)
    if part is None:
        return 0
    return int(np.count_nonzero(_crop(a, a_box, part) & _crop(b, b_box, part)))


def _count_matches(bmap_region: "_Region", dil_region: "_Region", radius: int) -> int:
    """Boundary pixels of one region inside the dilated boundary of the other (no dilation if too far)."""
    if _overlap(bmap_region.box, dil_region.dil_box_for(radius)) is None:
        return 0
    dil_box, dil = dil_region.dilated(radius)
    return _count_and(bmap_region.bmap, bmap_region.box, dil, dil_box)


def pair_j(g: _Region, p: _Region) -> float:
    """J of one ground-truth region against one predicted region of the same frame (1 when both are empty)."""
    if g.empty and p.empty:
        return 1.0
    inter = 0 if (g.empty or p.empty) else _count_and(g.mask, g.box, p.mask, p.box)
    return inter / (g.n + p.n - inter)


def pair_f(g: _Region, p: _Region, radius: int, native: bool = True) -> float:
    """F of one ground-truth region against one predicted region, boundaries matched within `radius`.

    native: use the compiled kernel when it is built (False: the OpenCV/numpy path, its reference)."""
    if g.empty and p.empty:
        return 1.0
    if native and _native_boundary_matches is not None and radius <= _NATIVE_MAX_RADIUS and not (g.empty or p.empty):
        # Boundaries, matching and counts in one call, straight from the two crops: no dilated image.
        n_g, n_p, gt_match, pred_match = _native_boundary_matches(g.mask, g.box[0], g.box[2],
                                                                  p.mask, p.box[0], p.box[2], radius)
        return _precision_recall_to_f(n_p, n_g, pred_match, gt_match)
    if g.n_b == 0 or p.n_b == 0:
        return _precision_recall_to_f(p.n_b, g.n_b, 0, 0)
    pred_match = _count_matches(p, g, radius)
    gt_match = _count_matches(g, p, radius)
    return _precision_recall_to_f(p.n_b, g.n_b, pred_match, gt_match)


def pair_scores(g: _Region, p: _Region, with_f: bool = True) -> tuple[float, float]:
    """J and F of one ground-truth region against one predicted region of the same frame
    (F within the regions' default radius)."""
    j = pair_j(g, p)
    if not with_f:
        return j, float("nan")
    if g.empty and p.empty:
        return 1.0, 1.0
    return j, pair_f(g, p, g._radius if not g.empty else p._radius)


def _background_region(labels: np.ndarray, keep: np.ndarray | None, radius: int, with_f: bool) -> _Region:
    mask = labels == 0
    if keep is not None:
        mask &= keep
    return _Region(mask, radius)


def _check(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None):
    """The arrays as the kernels need them: C-contiguous uint8 id maps and a boolean void map."""
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape or gt.ndim != 3:
        raise ValueError(f"gt and pred must be (T, H, W) of one shape, got {gt.shape} and {pred.shape}")
    if void is not None:
        void = np.ascontiguousarray(void, dtype=bool)
        if void.shape != gt.shape:
            raise ValueError(f"void must have the shape of gt {gt.shape}, got {void.shape}")
    for name, array in (("gt", gt), ("pred", pred)):
        if array.dtype != np.uint8 and array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError(f"{name} ids must lie in 0..255")
    return np.ascontiguousarray(gt, dtype=np.uint8), np.ascontiguousarray(pred, dtype=np.uint8), void


def object_frame_scores(gt: np.ndarray, pred: np.ndarray, object_ids: Sequence[int],
                        void: np.ndarray | None = None, pred_ids: Sequence[int] | None = None,
                        bound_th: float = BOUNDARY_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """J and F of each object in each frame.

    gt, pred: ``(T, H, W) uint8`` id maps. Object ``object_ids[k]`` of the ground truth
    is compared with id ``pred_ids[k]`` of the prediction (the same ids by default).
    void: optional ``(T, H, W)`` boolean map of pixels to ignore.
    Returns two float64 arrays of shape ``(K, T)``.
    """
    gt, pred, void = _check(gt, pred, void)
    object_ids = [int(i) for i in object_ids]
    pred_ids = object_ids if pred_ids is None else [int(i) for i in pred_ids]
    if len(pred_ids) != len(object_ids):
        raise ValueError("object_ids and pred_ids must have the same length")
    n_frames, height, width = gt.shape
    radius = boundary_radius(height, width, bound_th)
    j = np.empty((len(object_ids), n_frames), dtype=np.float64)
    f = np.empty_like(j)
    for t in range(n_frames):
        frame_void = None if void is None else void[t]
        g_regions = FrameRegions(gt[t], frame_void, radius, (height, width))
        p_regions = FrameRegions(pred[t], frame_void, radius, (height, width))
        for k, (gid, pid) in enumerate(zip(object_ids, pred_ids)):
            j[k, t], f[k, t] = pair_scores(g_regions.get(gid), p_regions.get(pid))
    return j, f


def pairwise_frame_scores(gt: np.ndarray, pred: np.ndarray, object_ids: Sequence[int], pred_ids: Sequence[int],
                          void: np.ndarray | None = None,
                          bound_th: float = BOUNDARY_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """J and F of every (predicted id, ground-truth object) pair in every frame.

    Returns two float64 arrays of shape ``(P, K, T)``: ``[p, k, t]`` compares
    ``pred == pred_ids[p]`` with ``gt == object_ids[k]`` in frame t. Equal to
    calling `object_frame_scores` once per predicted id, with each mask's
    boundary and dilation computed once per frame instead of once per pair.
    """
    gt, pred, void = _check(gt, pred, void)
    object_ids = [int(i) for i in object_ids]
    pred_ids = [int(i) for i in pred_ids]
    n_frames, height, width = gt.shape
    radius = boundary_radius(height, width, bound_th)
    j = np.empty((len(pred_ids), len(object_ids), n_frames), dtype=np.float64)
    f = np.empty_like(j)
    for t in range(n_frames):
        frame_void = None if void is None else void[t]
        g_regions = FrameRegions(gt[t], frame_void, radius, (height, width))
        p_regions = FrameRegions(pred[t], frame_void, radius, (height, width))
        for p_index, pid in enumerate(pred_ids):
            for k, gid in enumerate(object_ids):
                j[p_index, k, t], f[p_index, k, t] = pair_scores(g_regions.get(gid), p_regions.get(pid))
    return j, f


class FrameRegions:
    """The `_Region` of every id of one side (ground truth or prediction) of one frame, made on request.

    labels: a ``(H, W) uint8`` id map, a mapping {id: (H, W) bool mask} (objects that may overlap),
    or None (every id is empty). void: pixels to leave out, or None. boxes: the id map's
    `label_boxes`, when the caller has them (else computed here). Shared by the J and F metrics of
    a run through `Frame.region`.

    An id map is read once, by `label_boxes`: each id's region is then its box grown by one pixel
    (where its boundary lives), compared with the id; nothing else passes over the whole frame.
    """

    __slots__ = ("labels", "keep", "radius", "shape", "_boxes", "_regions")

    def __init__(self, labels, void: np.ndarray | None, radius: int, shape: tuple[int, int],
                 boxes: LabelBoxes | None = None):
        self.labels = labels
        self.keep = None if (void is None or not void.any()) else ~void
        self.radius = radius
        self.shape = shape
        self._regions: dict[int, _Region] = {}
        self._boxes = None
        if isinstance(labels, np.ndarray):
            self._boxes = (boxes if boxes is not None else label_boxes(labels)).boxes

    def get(self, object_id: int) -> _Region:
        found = self._regions.get(object_id)
        if found is None:
            found = self._regions[object_id] = self._make(int(object_id))
        return found

    def _make(self, object_id: int) -> _Region:
        labels = self.labels
        if labels is None:
            return _Region(None, self.radius)
        if isinstance(labels, np.ndarray):
            if object_id == 0:
                return _background_region(labels, self.keep, self.radius, True)
            found = self._boxes.get(object_id)
            if found is None:  # absent from this frame, or no id a uint8 map can hold
                return _Region(None, self.radius)
            n, y0, y1, x0, x1 = found
            height, width = self.shape
            box = (max(y0 - 1, 0), min(y1 + 1, height), max(x0 - 1, 0), min(x1 + 1, width))
            mask = labels[box[0]:box[1], box[2]:box[3]] == object_id
            if self.keep is None:
                return _Region.of_box(mask, box, n, self.radius, self.shape)
            # Void pixels removed: the region's own box may be smaller; measure it on this crop.
            mask &= self.keep[box[0]:box[1], box[2]:box[3]]
            return _Region(mask, self.radius, offset=(box[0], box[2]), frame_shape=self.shape)
        found = labels.get(object_id)
        if found is None:
            return _Region(None, self.radius)
        mask = np.ascontiguousarray(found, dtype=bool)
        if self.keep is not None:
            mask = mask & self.keep
        return _Region(mask, self.radius, frame_shape=self.shape)
