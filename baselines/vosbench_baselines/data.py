"""Training samples from any vosbench `Dataset` split (DAVIS train, the synthetic set, ...).

* `TrainingFrames` reads (and caches in memory as uint8) the frames of a split and its
  masks resized to the frame size with nearest-neighbour (DAVIS 2016 ships the train
  frames at 240p but the masks at 480p).
* `ClipSampler` draws random clips of N frames of one sequence, in order or reversed,
  with gaps of up to `max_skip` frames; optionally a clip made of one frame under N
  random affine warps (static-image training), and optionally a second object pasted in
  from another sequence (so that multi-object aggregation is trained on single-object data).
* `FrameSampler` draws single augmented frames with their masks.

Every sampler takes a seed and keeps a `numpy.random.Generator`; `state_dict` /
`load_state_dict` let a training run resume the exact sample stream.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np

from vosbench.errors import InputError
from vosbench.io import VOID_LABEL
from vosbench.io.datasets import Dataset

log = logging.getLogger(__name__)


class TrainingFrames:
    """Frames and masks of a dataset split, read once and kept as uint8.

    Masks are id maps (0 background, 1..K objects); void (255) is read as background.
    Only sequences with at least `min_frames` annotated frames are used.
    """

    def __init__(self, dataset: Dataset, sequences: Sequence[str] | None = None, min_frames: int = 1,
                 cache: bool = True):
        self.dataset = dataset
        names = list(sequences) if sequences is not None else dataset.sequence_names()
        self.frames: dict[str, list[str]] = {}
        for name in names:
            annotated = set(dataset.annotated_frames(name))
            frames = [f for f in dataset.frame_names(name) if f in annotated]
            if len(frames) >= min_frames:
                self.frames[name] = frames
        if not self.frames:
            raise InputError(getattr(dataset, "root", None), "has no sequence with annotated frames to train on.",
                             "Point --data at a dataset root whose --split lists sequences with ground truth.")
        self.sequences = sorted(self.frames)
        self._cache = cache
        self._images: dict[tuple[str, int], np.ndarray] = {}
        self._masks: dict[tuple[str, int], np.ndarray] = {}

    def __len__(self) -> int:
        return sum(len(f) for f in self.frames.values())

    def length(self, sequence: str) -> int:
        return len(self.frames[sequence])

    def image(self, sequence: str, index: int) -> np.ndarray:
        key = (sequence, index)
        image = self._images.get(key)
        if image is None:
            image = self.dataset.read_frame(sequence, self.frames[sequence][index])
            if self._cache:
                self._images[key] = image
        return image

    def mask(self, sequence: str, index: int) -> np.ndarray:
        key = (sequence, index)
        mask = self._masks.get(key)
        if mask is None:
            mask = self.dataset.read_annotation(sequence, self.frames[sequence][index]).astype(np.uint8)
            mask[mask == VOID_LABEL] = 0
            height, width = self.image(sequence, index).shape[:2]
            if mask.shape != (height, width):
                mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
            if self._cache:
                self._masks[key] = mask
        return mask


class InMemoryFrames:
    """Frames and masks already in memory, as one sequence, in the shape of `TrainingFrames`
    (online fine-tuning samples its clips from the first frame, or from scenes made of it)."""

    sequences = ["frames"]

    def __init__(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray]):
        if len(images) != len(masks) or not images:
            raise ValueError("InMemoryFrames needs as many masks as images, at least one")
        self._images, self._masks = list(images), list(masks)

    def length(self, sequence: str) -> int:
        return len(self._images)

    def image(self, sequence: str, index: int) -> np.ndarray:
        return self._images[index]

    def mask(self, sequence: str, index: int) -> np.ndarray:
        return self._masks[index]


def dreamed_frames(image: np.ndarray, mask: np.ndarray, count: int, rng: np.random.Generator,
                   shift: float = 0.15, scale: tuple[float, float] = (0.85, 1.15), rotation: float = 10.0
                   ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """`count` scenes made from one annotated frame, the first being the frame itself.

    As in Lucid Data Dreaming (Khoreva et al., IJCV 2019): the objects are cut out, the hole
    they leave is filled in (OpenCV's inpainting), and each object is pasted back moved by up
    to `shift` of the frame's size, zoomed within `scale` and turned by up to `rotation`
    degrees, independently of the background and of the other objects (later ids in front).
    A network fine-tuned on them learns the objects' look rather than where they sit.
    image (H, W, 3) uint8; mask (H, W) ids 0..K.
    """
    height, width = mask.shape
    objects = [int(i) for i in np.unique(mask) if i not in (0, VOID_LABEL)]
    if count < 1:
        raise ValueError("count must be >= 1")
    if not objects:
        return [image] * count, [mask] * count
    images, masks = [image], [mask]
    # The hole grown a little, so that no rim of the objects stays in the background; filled at a
    # quarter of the size (inpainting costs grow with the hole's area; the fill is blurred anyway).
    hole = cv2.dilate((mask > 0).astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
    small = (max(1, width // 4), max(1, height // 4))
    small_hole = cv2.dilate(cv2.resize(hole, small, interpolation=cv2.INTER_NEAREST), np.ones((3, 3), np.uint8))
    filled = cv2.inpaint(cv2.resize(image, small, interpolation=cv2.INTER_AREA), small_hole, 5, cv2.INPAINT_TELEA)
    filled = cv2.resize(filled, (width, height), interpolation=cv2.INTER_LINEAR)
    background = np.where(hole[..., None] > 0, filled, image)
    for _ in range(count - 1):
        scene, scene_mask = background.copy(), np.zeros_like(mask)
        for obj in objects:
            region = (mask == obj).astype(np.uint8)
            ys, xs = np.nonzero(region)
            zoom = float(np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1]))))
            matrix = cv2.getRotationMatrix2D((float(xs.mean()), float(ys.mean())),
                                             float(rng.uniform(-rotation, rotation)), zoom)
            matrix[:, 2] += rng.uniform(-shift, shift, size=2) * np.array([width, height])
            moved = cv2.warpAffine(region, matrix, (width, height), flags=cv2.INTER_NEAREST, borderValue=0) > 0
            pixels = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT_101)
            scene[moved] = pixels[moved]
            scene_mask[moved] = obj
        images.append(scene)
        masks.append(scene_mask)
    return images, masks


@dataclass
class Augment:
    """Random geometry and colour shared by a clip (plus a small per-frame jitter).

    crop: output (height, width). scale: zoom range relative to the source frame;
    the crop is then taken at a random place that keeps the first frame's object in view.
    """

    crop: tuple[int, int] = (240, 240)
    scale: tuple[float, float] = (0.8, 1.3)
    flip: bool = True
    rotation: float = 10.0          # degrees, whole clip
    frame_jitter: float = 0.03      # per-frame relative scale/shift jitter
    frame_rotation: float = 3.0     # per-frame degrees
    brightness: float = 0.15
    contrast: float = 0.15
    saturation: float = 0.15


@dataclass
class Clip:
    """``images (T, H, W, 3) uint8``, ``masks (T, H, W) uint8`` ids 0..num_objects."""

    images: np.ndarray
    masks: np.ndarray
    num_objects: int
    source: list[tuple[str, int]] = field(default_factory=list)


def _affine(center_src: tuple[float, float], center_dst: tuple[float, float], scale: float, angle: float,
            flip: bool) -> np.ndarray:
    """2x3 matrix mapping source pixels to output pixels: rotate/scale about a source point
    that lands on `center_dst`, mirrored horizontally when `flip`."""
    theta = math.radians(angle)
    a, b = scale * math.cos(theta), scale * math.sin(theta)
    m = np.array([[a, b], [-b, a]], dtype=np.float64)
    if flip:
        m = np.array([[-1.0, 0.0], [0.0, 1.0]]) @ m
    offset = np.array(center_dst) - m @ np.array(center_src)
    return np.hstack([m, offset[:, None]])


def _color(image: np.ndarray, rng: np.random.Generator, aug: Augment) -> np.ndarray:
    x = image.astype(np.float32)
    if aug.saturation:
        gray = x.mean(axis=2, keepdims=True)
        x = gray + (x - gray) * (1.0 + rng.uniform(-aug.saturation, aug.saturation))
    if aug.contrast:
        x = (x - x.mean()) * (1.0 + rng.uniform(-aug.contrast, aug.contrast)) + x.mean()
    if aug.brightness:
        x = x * (1.0 + rng.uniform(-aug.brightness, aug.brightness))
    return np.clip(x, 0, 255).astype(np.uint8)


class ClipSampler:
    """Random training clips from `TrainingFrames`.

    clip_length: frames per clip (the first carries the given mask).
    max_skip: largest gap between consecutive sampled frames.
    static_fraction: share of clips made of one frame under `clip_length` random warps.
    mix_fraction: share of clips that get a second object pasted in from another sequence.
    """

    def __init__(self, data: TrainingFrames, clip_length: int = 3, max_skip: int = 5,
                 augment: Augment | None = None, static_fraction: float = 0.0, mix_fraction: float = 0.0,
                 seed: int = 0, min_object_pixels: int = 150):
        if clip_length < 1:
            raise ValueError("clip_length must be >= 1")
        self.data = data
        self.clip_length = clip_length
        self.max_skip = max(1, int(max_skip))
        self.augment = augment or Augment()
        self.static_fraction = static_fraction
        self.mix_fraction = mix_fraction
        self.min_object_pixels = min_object_pixels
        self.rng = np.random.default_rng(seed)
        # Sequences are drawn in proportion to their length, as frames are.
        lengths = np.array([data.length(s) for s in data.sequences], dtype=np.float64)
        self._weights = lengths / lengths.sum()

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "max_skip": self.max_skip}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.max_skip = int(state.get("max_skip", self.max_skip))

    # -- picking frames -------------------------------------------------------------------
    def _pick_indices(self, sequence: str) -> list[int]:
        n = self.data.length(sequence)
        gaps = self.rng.integers(1, self.max_skip + 1, size=self.clip_length - 1)
        span = int(gaps.sum())
        if span >= n:  # short sequence: shrink the gaps evenly
            gaps = np.maximum(1, (gaps * (n - 1) // max(span, 1))).astype(int) if n > 1 else np.zeros_like(gaps)
            span = int(gaps.sum())
        start = int(self.rng.integers(0, max(1, n - span)))
        indices = [min(n - 1, start + int(g)) for g in np.concatenate([[0], np.cumsum(gaps)])]
        if self.rng.random() < 0.5:
            indices.reverse()
        return indices

    # -- geometry ------------------------------------------------------------------------
    def _clip_transform(self, mask0: np.ndarray) -> tuple[np.ndarray, bool, float, float]:
        """A centre in the source, zoom, flip and rotation that keep the first object in view."""
        aug = self.augment
        out_h, out_w = aug.crop
        src_h, src_w = mask0.shape
        # Base zoom fits the crop's short side to ~the frame's short side, then random zoom.
        base = min(out_h, out_w) / min(src_h, src_w)
        scale = base * float(np.exp(self.rng.uniform(np.log(aug.scale[0]), np.log(aug.scale[1]))))
        ys, xs = np.nonzero(mask0)
        half_h, half_w = out_h / (2 * scale), out_w / (2 * scale)
        if len(ys):
            # Centre near the object (so it is in the crop), with random offset inside the margin.
            cy = float(self.rng.uniform(ys.min(), ys.max() + 1))
            cx = float(self.rng.uniform(xs.min(), xs.max() + 1))
        else:
            cy, cx = float(self.rng.uniform(0, src_h)), float(self.rng.uniform(0, src_w))
        # Keep the crop inside the frame where the frame is big enough.
        cy = float(np.clip(cy, min(half_h, src_h / 2), max(src_h - half_h, src_h / 2)))
        cx = float(np.clip(cx, min(half_w, src_w / 2), max(src_w - half_w, src_w / 2)))
        flip = bool(aug.flip and self.rng.random() < 0.5)
        angle = float(self.rng.uniform(-aug.rotation, aug.rotation))
        return np.array([cx, cy]), flip, scale, angle

    def _warp(self, image: np.ndarray, mask: np.ndarray, center: np.ndarray, scale: float, angle: float,
              flip: bool, jitter: bool) -> tuple[np.ndarray, np.ndarray]:
        aug = self.augment
        out_h, out_w = aug.crop
        if jitter:
            scale *= float(np.exp(self.rng.uniform(-aug.frame_jitter, aug.frame_jitter)))
            shift = self.rng.uniform(-aug.frame_jitter, aug.frame_jitter, size=2) * np.array([out_w, out_h]) / scale
            center = center + shift
            angle += float(self.rng.uniform(-aug.frame_rotation, aug.frame_rotation))
        matrix = _affine((float(center[0]), float(center[1])), (out_w / 2, out_h / 2), scale, angle, flip)
        warped = cv2.warpAffine(image, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT_101)
        warped_mask = cv2.warpAffine(mask, matrix, (out_w, out_h), flags=cv2.INTER_NEAREST,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return warped, warped_mask

    def _render(self, sequence: str, indices: list[int], static: bool) -> tuple[np.ndarray, np.ndarray]:
        mask0 = self.data.mask(sequence, indices[0])
        center, flip, scale, angle = self._clip_transform(mask0)
        images, masks = [], []
        for t, index in enumerate(indices):
            image, mask = self.data.image(sequence, index), self.data.mask(sequence, index)
            if static:
                # Larger warps between the frames of a static clip stand in for motion.
                s = scale * float(np.exp(self.rng.uniform(-0.15, 0.15))) if t else scale
                c = center + (self.rng.uniform(-0.1, 0.1, size=2) * np.array(self.augment.crop[::-1]) / scale
                              if t else 0)
                a = angle + (float(self.rng.uniform(-15, 15)) if t else 0.0)
                warped = self._warp(image, mask, c, s, a, flip, jitter=False)
            else:
                warped = self._warp(image, mask, center, scale, angle, flip, jitter=t > 0)
            images.append(_color(warped[0], self.rng, self.augment))
            masks.append(warped[1])
        return np.stack(images), np.stack(masks)

    # -- public --------------------------------------------------------------------------
    def sample(self) -> Clip:
        """One clip whose first frame shows every object it carries."""
        for _ in range(20):
            clip = self._sample_once()
            first = clip.masks[0]
            if clip.num_objects and all((first == k).sum() >= self.min_object_pixels
                                        for k in range(1, clip.num_objects + 1)):
                return clip
        return clip

    def _sample_once(self) -> Clip:
        sequence = self.data.sequences[int(self.rng.choice(len(self.data.sequences), p=self._weights))]
        static = self.rng.random() < self.static_fraction
        if static:
            indices = [int(self.rng.integers(0, self.data.length(sequence)))] * self.clip_length
        else:
            indices = self._pick_indices(sequence)
        images, masks = self._render(sequence, indices, static)
        masks, num_objects = _relabel(masks)
        source = [(sequence, i) for i in indices]
        if self.mix_fraction and len(self.data.sequences) > 1 and self.rng.random() < self.mix_fraction:
            others = [s for s in self.data.sequences if s != sequence]
            other = others[int(self.rng.integers(0, len(others)))]
            o_static = self.rng.random() < self.static_fraction
            o_indices = ([int(self.rng.integers(0, self.data.length(other)))] * self.clip_length if o_static
                         else self._pick_indices(other))
            o_images, o_masks = self._render(other, o_indices, o_static)
            o_masks, o_count = _relabel(o_masks)
            # The pasted objects go in front (ids after the clip's own), shrunk so they
            # occlude only part of the scene.
            o_images, o_masks = self._shrink(o_images, o_masks)
            keep = num_objects
            for k in range(1, o_count + 1):
                if keep + 1 > 255:
                    break
                region = o_masks == k
                if not region[0].any():
                    continue
                keep += 1
                images[region] = o_images[region]
                masks[region] = keep
            masks, num_objects = _relabel(masks)
            source += [(other, i) for i in o_indices]
        return Clip(images=images, masks=masks, num_objects=num_objects, source=source)

    def _shrink(self, images: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = masks.shape[1:]
        factor = float(self.rng.uniform(0.4, 0.8))
        dy, dx = (float(self.rng.uniform(0, h * (1 - factor))), float(self.rng.uniform(0, w * (1 - factor))))
        matrix = np.array([[factor, 0, dx], [0, factor, dy]], dtype=np.float64)
        out_i = np.stack([cv2.warpAffine(im, matrix, (w, h), flags=cv2.INTER_LINEAR) for im in images])
        out_m = np.stack([cv2.warpAffine(m, matrix, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
                          for m in masks])
        return out_i, out_m

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``images (B, T, H, W, 3) uint8``, ``masks (B, T, H, W) uint8``, ``num_objects (B,)``."""
        clips = [self.sample() for _ in range(size)]
        return (np.stack([c.images for c in clips]), np.stack([c.masks for c in clips]),
                np.array([c.num_objects for c in clips], dtype=np.int64))


def _relabel(masks: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber the objects of a clip 1..K in the order of their ids, dropping ids absent from frame 0
    (an object must be given on the first frame to be tracked)."""
    present = [int(i) for i in np.unique(masks[0]) if i != 0]
    lut = np.zeros(256, dtype=np.uint8)
    for new, old in enumerate(present, start=1):
        lut[old] = new
    return lut[masks], len(present)


class FrameSampler:
    """Random single frames with their masks, augmented like the first frame of a clip."""

    def __init__(self, data: TrainingFrames, augment: Augment | None = None, seed: int = 0):
        self._clips = ClipSampler(data, clip_length=1, augment=augment, seed=seed)

    @property
    def rng(self) -> np.random.Generator:
        return self._clips.rng

    def state_dict(self) -> dict:
        return self._clips.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self._clips.load_state_dict(state)

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """``image (H, W, 3) uint8``, ``mask (H, W) uint8``."""
        clip = self._clips.sample()
        return clip.images[0], clip.masks[0]

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        samples = [self.sample() for _ in range(size)]
        return np.stack([s[0] for s in samples]), np.stack([s[1] for s in samples])
