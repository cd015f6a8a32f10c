"""A small DAVIS 2017-layout dataset generated from a seed, so that a first run needs no download.

Each sequence shows textured objects cut from scikit-image's bundled sample
photographs (astronaut, cat, coffee, rocket, ...) in smooth random shapes,
moving, turning and scaling over a panning natural background (grass, gravel,
brick, the Hubble deep field, ...). Objects occlude each other in a fixed depth
order, some leave the frame and come back, and some sequences carry void (255)
bands along object borders in the ground truth, as DAVIS 2017 does.

Every object is visible on the first frame: the DAVIS 2017 protocol counts
objects from the first annotation, so an object entering later would not be
scored. Objects that leave the frame and re-enter test what "entering" costs a
method.

The same seed and parameters give byte-identical masks; frames are JPEGs as in
DAVIS. The dataset is built in a temporary folder beside its destination and
renamed into place, so a folder with the final name is always complete.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage

from vosbench.errors import InputError
from vosbench.io.identity import SYNTHETIC_MANIFEST
from vosbench.io.masks import VOID_LABEL, write_mask
from vosbench.io.paths import vosbench_home

log = logging.getLogger(__name__)

# Bump when the same seed and parameters would give different data, so cached copies are not reused.
GENERATOR_VERSION = 2
MANIFEST_NAME = SYNTHETIC_MANIFEST
RESOLUTION_FOLDER = "480p"   # the folder name DAVIS tools expect, whatever the frame size
OBJECT_TEXTURES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "retina")
BACKGROUNDS = ("grass", "gravel", "brick", "hubble_deep_field", "stereo_motorcycle", "moon")


@dataclass(frozen=True)
class SyntheticParams:
    """Sizes of a generated dataset. The defaults keep a first run to seconds.

    n_sequences: all sequences; a third (rounded down) go to train, the rest to val.
    max_objects: each sequence holds 2..max_objects objects (1 when max_objects is 1).
    void_fraction / leave_fraction: share of sequences with void borders in the ground
        truth / with an object that leaves the frame and comes back.
    void_width: width in pixels of the void band on each side of an object border.
    """

    n_sequences: int = 6
    n_frames: int = 20
    height: int = 240
    width: int = 320
    max_objects: int = 3
    void_fraction: float = 0.5
    leave_fraction: float = 0.5
    void_width: int = 1
    jpeg_quality: int = 90

    def __post_init__(self):
        if self.n_sequences < 1 or self.n_frames < 2 or self.max_objects < 1:
            raise ValueError("a synthetic dataset needs >= 1 sequence, >= 2 frames and >= 1 object")
        if self.height < 32 or self.width < 32:
            raise ValueError("synthetic frames must be at least 32x32 pixels")

    @property
    def n_train(self) -> int:
        return self.n_sequences // 3

    @property
    def n_val(self) -> int:
        return self.n_sequences - self.n_train

    def key(self, seed: int) -> str:
        """Content key of the dataset these parameters and this seed produce."""
        text = json.dumps({"params": dataclasses.asdict(self), "seed": int(seed), "version": GENERATOR_VERSION},
                          sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


# -- source images ----------------------------------------------------------------

@lru_cache(maxsize=None)
def _sample_image(name: str) -> np.ndarray:
    """An RGB uint8 sample image bundled with scikit-image (no download)."""
    from skimage import data

    image = getattr(data, name)()
    if isinstance(image, tuple):        # stereo_motorcycle: (left, right, disparity)
        image = image[0]
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = (image > 0).astype(np.uint8) * 255 if image.dtype == bool else image.astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


# -- one sequence -----------------------------------------------------------------

@dataclass
class _Object:
    object_id: int
    texture_name: str
    texture: np.ndarray          # float32 RGB source
    tex_center: np.ndarray       # (x, y) in the texture
    tex_scale: float             # texture pixels per object pixel
    radius: float                # base radius in frame pixels
    harmonics: np.ndarray        # (k, amplitude, phase) rows of the radial shape
    depth: int                   # 0 = furthest back
    center0: np.ndarray
    velocity: np.ndarray
    wobble: np.ndarray           # (amp_x, amp_y, freq, phase)
    scale_amp: float
    scale_freq: float
    angle0: float
    spin: float
    leave: np.ndarray | None = None   # direction * distance of an excursion out of the frame

    def pose(self, t: int, n_frames: int) -> tuple[np.ndarray, float, float]:
        amp_x, amp_y, freq, phase = self.wobble
        center = self.center0 + self.velocity * t + np.array([amp_x, amp_y]) * math.sin(freq * t + phase)
        if self.leave is not None:
            center = center + self.leave * math.sin(math.pi * t / (n_frames - 1))
        scale = 1.0 + self.scale_amp * math.sin(self.scale_freq * t)
        angle = self.angle0 + self.spin * t
        return center, scale, angle

    @property
    def reach(self) -> float:
        """Largest distance of the outline from the centre at scale 1."""
        return self.radius * (1.0 + float(np.abs(self.harmonics[:, 1]).sum()))

    def render(self, t: int, n_frames: int, height: int, width: int):
        """The object on frame t: the (rows, cols) slices of its bounding box in the frame, and
        within that box its soft coverage (float32, 0..1) and colours (float32 RGB). None when out of view."""
        center, scale, angle = self.pose(t, n_frames)
        extent = self.reach * scale + 2
        x0, x1 = max(0, int(math.floor(center[0] - extent))), min(width, int(math.ceil(center[0] + extent)) + 1)
        y0, y1 = max(0, int(math.floor(center[1] - extent))), min(height, int(math.ceil(center[1] + extent)) + 1)
        if x0 >= x1 or y0 >= y1:
            return None
        grid_y, grid_x = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        dx, dy = grid_x - center[0], grid_y - center[1]
        cos_a, sin_a = math.cos(angle), math.sin(angle)
        u = (cos_a * dx + sin_a * dy) / scale
        v = (-sin_a * dx + cos_a * dy) / scale
        r = np.hypot(u, v)
        phi = np.arctan2(v, u)
        edge = np.ones_like(r)
        for k, amplitude, phase in self.harmonics:
            edge += amplitude * np.cos(k * phi + phase)
        # Signed distance to the outline along the ray, in frame pixels: the anti-aliased edge.
        alpha = np.clip((self.radius * edge - r) * scale + 0.5, 0.0, 1.0).astype(np.float32)
        map_x = (self.tex_center[0] + u * self.tex_scale).astype(np.float32)
        map_y = (self.tex_center[1] + v * self.tex_scale).astype(np.float32)
        colours = cv2.remap(self.texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        return (slice(y0, y1), slice(x0, x1)), alpha, colours

    def coverage(self, t: int, n_frames: int, height: int, width: int) -> np.ndarray:
        """Where the object lies on frame t, ignoring occlusion (bool, frame-sized)."""
        full = np.zeros((height, width), dtype=bool)
        rendered = self.render(t, n_frames, height, width)
        if rendered is not None:
            box, alpha, _ = rendered
            full[box] = alpha >= 0.5
        return full

    def describe(self) -> dict:
        return {"id": self.object_id, "texture": self.texture_name, "depth": self.depth,
                "leaves_and_returns": self.leave is not None}


def _make_object(rng: np.random.Generator, object_id: int, params: SyntheticParams, texture_name: str) -> _Object:
    h, w = params.height, params.width
    short = min(h, w)
    texture = _sample_image(texture_name).astype(np.float32)
    th, tw = texture.shape[:2]
    radius = float(rng.uniform(0.11, 0.19) * short)
    n_harm = int(rng.integers(2, 5))
    ks = rng.choice(np.arange(2, 7), size=n_harm, replace=False)
    harmonics = np.array([(k, rng.uniform(0.04, 0.22) / math.sqrt(k - 1), rng.uniform(0, 2 * math.pi))
                          for k in sorted(ks)])
    crop_radius = rng.uniform(0.18, 0.35) * min(th, tw)
    tex_center = np.array([rng.uniform(crop_radius, tw - crop_radius), rng.uniform(crop_radius, th - crop_radius)])
    margin = radius * 1.1
    center0 = np.array([rng.uniform(margin, w - margin), rng.uniform(margin, h - margin)])
    speed = rng.uniform(0.004, 0.012) * short * (20 / params.n_frames) ** 0.5
    heading = rng.uniform(0, 2 * math.pi)
    return _Object(
        object_id=object_id, texture_name=texture_name, texture=texture, tex_center=tex_center,
        tex_scale=float(crop_radius / (radius * 1.4)), radius=radius, harmonics=harmonics, depth=0,
        center0=center0, velocity=speed * np.array([math.cos(heading), math.sin(heading)]),
        wobble=np.array([rng.uniform(0, 0.06) * short, rng.uniform(0, 0.06) * short,
                         rng.uniform(0.1, 0.4), rng.uniform(0, 2 * math.pi)]),
        scale_amp=float(rng.uniform(0.0, 0.25)), scale_freq=float(rng.uniform(0.05, 0.25)),
        angle0=float(rng.uniform(0, 2 * math.pi)), spin=float(rng.uniform(-0.05, 0.05)))


def _send_out_and_back(obj: _Object, params: SyntheticParams) -> None:
    """Give the object an excursion that takes it fully out of the frame mid-sequence and back."""
    h, w = params.height, params.width
    x, y = obj.center0
    # Head for the nearest border; a sine bump peaks mid-sequence, outside the frame near its top.
    distances = {(-1, 0): x, (1, 0): w - x, (0, -1): y, (0, 1): h - y}
    direction, distance = min(distances.items(), key=lambda item: item[1])
    extent = obj.reach * (1 + obj.scale_amp) + 2   # largest reach of the outline from its centre
    obj.velocity = obj.velocity * 0.3
    obj.leave = np.array(direction, dtype=float) * (distance + extent) / 0.85


def _render_background(rng: np.random.Generator, params: SyntheticParams, name: str):
    h, w = params.height, params.width
    image = _sample_image(name).astype(np.float32)
    if name in ("grass", "gravel", "brick", "moon"):   # grey textures: give them a natural tint
        image = image * rng.uniform(0.65, 1.1, size=3).astype(np.float32)
    # Large enough to pan and zoom without leaving the image.
    fit = max(1.6 * h / image.shape[0], 1.6 * w / image.shape[1])
    image = cv2.resize(image, None, fx=fit, fy=fit, interpolation=cv2.INTER_AREA if fit < 1 else cv2.INTER_CUBIC)
    bh, bw = image.shape[:2]
    n = params.n_frames
    pan = rng.uniform(-1, 1, size=2) * np.array([bw - w * 1.1, bh - h * 1.1]) * 0.35 / n
    start = np.array([(bw - w) / 2, (bh - h) / 2]) - pan * n / 2
    zoom_rate = rng.uniform(-0.08, 0.08) / n

    def frame(t: int) -> np.ndarray:
        zoom = 1.0 + zoom_rate * t
        ox, oy = start + pan * t
        # Output pixel (x, y) shows background pixel (ox + x / zoom, oy + y / zoom).
        matrix = np.array([[1 / zoom, 0, ox], [0, 1 / zoom, oy]], dtype=np.float64)
        return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REFLECT_101)

    return frame


def _void_band(ids: np.ndarray, width: int) -> np.ndarray:
    """Pixels within `width` of a border between two labels, at least one of them an object."""
    size = 2 * width + 1
    high = ndimage.maximum_filter(ids, size=size, mode="nearest")
    low = ndimage.minimum_filter(ids, size=size, mode="nearest")
    return (high != low) & (high > 0)


def _render_sequence(rng: np.random.Generator, params: SyntheticParams, index: int, n_objects: int,
                     with_void: bool, with_leaver: bool, background_name: str):
    """Frames (uint8 RGB), masks (uint8 ids) and a description; retried until every object shows on frame 0."""
    h, w, n = params.height, params.width, params.n_frames
    for _attempt in range(50):
        textures = rng.choice(len(OBJECT_TEXTURES), size=n_objects, replace=n_objects > len(OBJECT_TEXTURES))
        objects = [_make_object(rng, k + 1, params, OBJECT_TEXTURES[int(i)]) for k, i in enumerate(textures)]
        order = rng.permutation(n_objects)
        for depth, k in enumerate(order):
            objects[int(k)].depth = depth
        front = max(objects, key=lambda o: o.depth)
        if n_objects >= 2:
            # The front object crosses the centre of another mid-sequence: an occlusion in every sequence.
            behind = min(objects, key=lambda o: o.depth)
            t_mid = n / 2
            target, _, _ = behind.pose(int(t_mid), n)
            front.center0 = target - front.velocity * t_mid - np.array(front.wobble[:2]) * math.sin(
                front.wobble[2] * t_mid + front.wobble[3])
        if with_leaver:
            _send_out_and_back(objects[int(rng.integers(n_objects))], params)
        covers = [o.coverage(0, n, h, w) for o in objects]
        ok = True
        for obj, full in zip(objects, covers):
            hidden = np.zeros_like(full)
            for other, cover in zip(objects, covers):
                if other.depth > obj.depth:
                    hidden |= cover
            area = obj.radius ** 2 * math.pi
            if (full & ~hidden).sum() < 0.4 * area or full.sum() < 0.7 * area:
                ok = False
        if ok:
            break
    else:  # pragma: no cover - 50 unlucky draws in a row
        raise RuntimeError(f"could not place {n_objects} visible objects in sequence {index}")

    background = _render_background(rng, params, background_name)
    by_depth = sorted(objects, key=lambda o: o.depth)
    frames, masks = [], []
    visible = np.zeros((n_objects, n), dtype=np.int64)
    unoccluded = np.zeros((n_objects, n), dtype=np.int64)
    for t in range(n):
        image = background(t)
        ids = np.zeros((h, w), dtype=np.uint8)
        for obj in by_depth:
            rendered = obj.render(t, n, h, w)
            if rendered is None:
                continue
            box, alpha, colours = rendered
            image[box] = image[box] * (1 - alpha[..., None]) + colours * alpha[..., None]
            inside = alpha >= 0.5
            ids[box][inside] = obj.object_id
            unoccluded[obj.object_id - 1, t] = int(inside.sum())
        image = image + rng.normal(0, 2.0, size=image.shape).astype(np.float32)   # sensor noise
        for obj in objects:
            visible[obj.object_id - 1, t] = int((ids == obj.object_id).sum())
        gt = ids.copy()
        if with_void:
            gt[_void_band(ids, params.void_width)] = VOID_LABEL
        frames.append(np.clip(np.rint(image), 0, 255).astype(np.uint8))
        masks.append(gt)
    description = {
        "background": background_name, "void_borders": with_void,
        "objects": [dict(o.describe(), visible_pixels=visible[o.object_id - 1].tolist(),
                         unoccluded_pixels=unoccluded[o.object_id - 1].tolist()) for o in objects],
    }
    return frames, masks, description


def _write_sequence(root: Path, name: str, frames, masks, quality: int) -> None:
    image_dir = root / "JPEGImages" / RESOLUTION_FOLDER / name
    mask_dir = root / "Annotations" / RESOLUTION_FOLDER / name
    image_dir.mkdir(parents=True)
    mask_dir.mkdir(parents=True)
    for t, (frame, mask) in enumerate(zip(frames, masks)):
        Image.fromarray(frame).save(image_dir / f"{t:05d}.jpg", quality=quality)
        write_mask(mask_dir / f"{t:05d}.png", mask)


# -- the dataset --------------------------------------------------------------------

def _is_complete(root: Path, key: str | None = None) -> bool:
    manifest = root / MANIFEST_NAME
    if not manifest.is_file():
        return False
    if key is None:
        return True
    try:
        return json.loads(manifest.read_text()).get("key") == key
    except (OSError, ValueError):
        return False


def generate_dataset(root: str | os.PathLike, *, seed: int = 0,
                     n_sequences: int = SyntheticParams.n_sequences,
                     n_frames: int = SyntheticParams.n_frames,
                     height: int = SyntheticParams.height,
                     width: int = SyntheticParams.width,
                     max_objects: int = SyntheticParams.max_objects,
                     params: SyntheticParams | None = None,
                     progress: bool = False) -> Path:
    """Write a synthetic DAVIS 2017-layout dataset at `root` and return `root`.

    Layout: ``JPEGImages/480p/<seq>/00000.jpg``, ``Annotations/480p/<seq>/00000.png``
    (palette PNGs of object ids, 255 void), ``ImageSets/2017/{train,val}.txt`` and
    ``synthetic.json`` (parameters, seed and what each sequence contains).

    params: all sizes at once (the size keywords are ignored when given).
    If `root` already holds the dataset of the same parameters and seed it is reused;
    any other existing content is an InputError (nothing is overwritten).
    """
    if params is None:
        params = SyntheticParams(n_sequences=n_sequences, n_frames=n_frames, height=height, width=width,
                                 max_objects=max_objects)
    root = Path(root)
    key = params.key(seed)
    if root.exists():
        if _is_complete(root, key):
            log.info("synthetic dataset already present at %s", root)
            return root
        if not root.is_dir() or any(root.iterdir()):
            raise InputError(root, "already exists and does not hold the synthetic dataset of these parameters.",
                             "Choose another output folder, or remove this one.")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    try:
        sequences = _generate_into(tmp, seed, params, progress)
        manifest = {"generator": "vosbench.io.synthetic", "version": GENERATOR_VERSION, "key": key,
                    "seed": int(seed), "params": dataclasses.asdict(params), "sequences": sequences}
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1) + "\n")
        tmp.chmod(0o755)   # mkdtemp makes it private; the finished dataset is an ordinary folder
        try:
            if root.is_dir():
                root.rmdir()          # an empty folder the caller made; fails if someone filled it meanwhile
            os.rename(tmp, root)
        except OSError:
            if _is_complete(root, key):   # another process finished the same dataset first
                log.info("synthetic dataset finished concurrently at %s; using it", root)
                return root
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("wrote a synthetic dataset (%d sequences x %d frames, %dx%d) to %s",
             params.n_sequences, params.n_frames, params.width, params.height, root)
    return root


def _generate_into(root: Path, seed: int, params: SyntheticParams, progress: bool) -> dict:
    names_val, names_train, sequences = [], [], {}
    indices = range(params.n_sequences)
    if progress:
        from tqdm.auto import tqdm

        indices = tqdm(indices, desc="generating", unit="seq", leave=False)
    # Spread the features so that every kind shows in the val split even with few sequences:
    # leaving objects fill even indices first, void borders odd indices first.
    evens, odds = list(range(0, params.n_sequences, 2)), list(range(1, params.n_sequences, 2))
    leavers = set((evens + odds)[:int(params.leave_fraction * params.n_sequences + 1e-9)])
    voids = set((odds + evens)[:int(params.void_fraction * params.n_sequences + 1e-9)])
    # Backgrounds are dealt from a shuffled deck so that neighbouring sequences differ.
    deck = np.random.default_rng(np.random.SeedSequence([int(seed), 2**31])).permutation(len(BACKGROUNDS))
    for index in indices:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), index]))
        low = min(2, params.max_objects)
        n_objects = int(rng.integers(low, params.max_objects + 1))
        with_void, with_leaver = index in voids, index in leavers
        background = BACKGROUNDS[int(deck[index % len(deck)])]
        frames, masks, description = _render_sequence(rng, params, index, n_objects, with_void, with_leaver,
                                                      background)
        name = f"{description['background'].split('_')[0]}-{index:02d}"
        _write_sequence(root, name, frames, masks, params.jpeg_quality)
        split = "val" if index < params.n_val else "train"
        (names_val if split == "val" else names_train).append(name)
        sequences[name] = dict(description, split=split)
    sets = root / "ImageSets" / "2017"
    sets.mkdir(parents=True)
    (sets / "val.txt").write_text("".join(f"{n}\n" for n in names_val))
    (sets / "train.txt").write_text("".join(f"{n}\n" for n in names_train))
    return sequences


# What the embedded dataset is made of (a first run: seconds to generate and to segment).
DEFAULT_PARAMS = SyntheticParams()


def default_dataset_root(seed: int = 0, params: SyntheticParams | None = None) -> Path:
    """The embedded dataset: generated on first use under ``$VOSBENCH_HOME/datasets/``, then reused.

    The folder is named after a key of the parameters, seed and generator version,
    so a changed generator never reuses stale data, and it only ever appears complete.
    """
    params = params or DEFAULT_PARAMS
    root = vosbench_home() / "datasets" / f"synthetic-seed{int(seed)}-{params.key(seed)}"
    if _is_complete(root, params.key(seed)):
        return root
    log.info("generating the embedded synthetic dataset (first use) in %s", root)
    return generate_dataset(root, seed=seed, params=params)
