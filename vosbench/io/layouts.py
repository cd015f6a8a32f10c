"""Small generated datasets in the benchmarks' own layouts (MOSE, MOSEv2, LVOS, SA-V, VOST), with
results to score, so that a first run and the tests need no download.

Every set holds the cases the official evaluators treat specially:

* ``objects``: an object that leaves the frame and comes back, one that appears late, one the
  results never predict; (SA-V) an object that overlaps another (a part and its whole);
* ``empty``: a video whose results are all empty;
* ``small``: small objects in a larger frame (MOSEv2's adaptive boundary width below its cap);
* ``long``: a video of ``long_frames`` frames (1,000 by default), small in pixels.

Objects are ellipses moving on straight lines; predictions are the same ellipses shifted and
rescaled by seeded noise, with some frames missed. The same seed gives the same files, byte for byte.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vosbench.io.atomic import atomic_write
from vosbench.io.masks import write_mask

LAYOUTS = ("mose", "mosev2", "lvos", "sav", "vost")


@dataclass
class _Object:
    object_id: int
    centre: np.ndarray
    velocity: np.ndarray
    axes: np.ndarray
    appear: int = 0
    gone: tuple[int, int] | None = None     # [start, end): out of view
    predicted: bool = True
    part_of: int | None = None              # SA-V: this object is a part of another (they overlap)

    def visible(self, t: int) -> bool:
        return t >= self.appear and not (self.gone and self.gone[0] <= t < self.gone[1])

    def mask(self, t: int, shape, shift=(0.0, 0.0), scale=1.0) -> np.ndarray:
        h, w = shape
        cy, cx = self.centre + self.velocity * t + np.asarray(shift)
        cy, cx = cy % h, cx % w
        ay, ax = self.axes * scale
        yy, xx = np.ogrid[:h, :w]
        return ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2 <= 1


@dataclass
class _Video:
    name: str
    n_frames: int
    shape: tuple[int, int]
    objects: list[_Object] = field(default_factory=list)
    predict: bool = True
    seed: int = 0

    def gt(self, t: int) -> dict[int, np.ndarray]:
        out = {}
        for obj in self.objects:
            if obj.visible(t):
                out[obj.object_id] = obj.mask(t, self.shape)
        for obj in self.objects:  # a part lies inside its whole
            if obj.part_of is not None and obj.object_id in out and obj.part_of in out:
                out[obj.object_id] &= out[obj.part_of]
        return out

    def pred(self, t: int) -> dict[int, np.ndarray]:
        if not self.predict:
            return {}
        rng = np.random.default_rng([self.seed, t])
        out = {}
        for obj in self.objects:
            shift = rng.normal(0, 1.5, 2)
            scale = rng.uniform(0.85, 1.15)
            missed = rng.random() < 0.08
            if not obj.predicted or missed or not obj.visible(max(t - 1, 0)):
                continue
            out[obj.object_id] = obj.mask(t, self.shape, shift, scale)
        return out


def _id_map(masks: dict[int, np.ndarray], shape) -> np.ndarray:
    ids = np.zeros(shape, dtype=np.uint8)
    for object_id in sorted(masks):
        ids[masks[object_id]] = object_id
    return ids


def make_videos(seed: int = 0, long_frames: int = 1000, overlapping: bool = False) -> list[_Video]:
    """The generated videos (see the module text), from a seed."""
    rng = np.random.default_rng(seed)

    def obj(object_id, shape, **kw):
        h, w = shape
        return _Object(object_id, np.array([rng.uniform(0.3, 0.7) * h, rng.uniform(0.2, 0.8) * w]),
                       rng.normal(0, 0.6, 2), np.array([rng.uniform(0.1, 0.2) * h, rng.uniform(0.08, 0.16) * w]), **kw)

    main = _Video("objects", 48, (180, 320), seed=seed * 7 + 1)
    main.objects = [obj(1, main.shape, gone=(14, 26)),       # leaves and comes back
                    obj(2, main.shape),
                    obj(3, main.shape, appear=20),           # appears late
                    obj(4, main.shape, predicted=False)]     # never predicted
    if overlapping:
        part = obj(5, main.shape)
        part.centre, part.velocity, part.axes = main.objects[1].centre, main.objects[1].velocity, \
            main.objects[1].axes * np.array([0.6, 1.3])
        part.part_of = 2
        main.objects.append(part)
    empty = _Video("empty", 30, (64, 96), predict=False, seed=seed * 7 + 2)
    empty.objects = [obj(1, empty.shape), obj(2, empty.shape, gone=(10, 14))]
    # Small objects in a larger frame: MOSEv2's adaptive boundary width stays below its cap here.
    small = _Video("small", 24, (240, 427), seed=seed * 7 + 4)
    small.objects = [obj(1, small.shape, gone=(8, 12)), obj(2, small.shape)]
    for o in small.objects:
        o.axes = o.axes * 0.35
    long = _Video("long", long_frames, (48, 64), seed=seed * 7 + 3)
    gap = max(1, long_frames * 57 // 1000)  # out of view for about 6% of the video
    long.objects = [obj(1, long.shape, gone=(long_frames // 3, long_frames // 3 + gap)), obj(2, long.shape)]
    return [main, empty, small, long]


def _frame_image(video: _Video, masks: dict[int, np.ndarray], t: int) -> np.ndarray:
    image = np.full(video.shape + (3,), 96, dtype=np.uint8)
    image[..., 0] = (np.arange(video.shape[1]) * 3 + t) % 255
    for object_id, mask in masks.items():
        image[mask] = ((object_id * 70) % 255, 200, (object_id * 40) % 255)
    return image


def _write_jpeg(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise OSError(f"cannot encode {path}")
    path.write_bytes(data.tobytes())


def _write_binary(path: Path, mask: np.ndarray) -> None:
    """An SA-V mask: one object, 0/255 grey PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    if not ok:
        raise OSError(f"cannot encode {path}")
    path.write_bytes(data.tobytes())


def generate_layout(layout: str, out: str | os.PathLike, *, seed: int = 0, long_frames: int = 1000,
                    results: str | os.PathLike | None = None, images: bool = True) -> Path:
    """Write a generated set in `layout` at `out` (and, with `results`, masks to score in the layout's
    results format). Returns the folder to pass as ``--gt``."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    out = Path(out)
    videos = make_videos(seed, long_frames, overlapping=layout == "sav")
    writer = {"mose": _write_mose, "mosev2": _write_mose, "lvos": _write_lvos, "sav": _write_sav,
              "vost": _write_vost}[layout]
    return writer(layout, out, videos, None if results is None else Path(results), images)


def _write_mose(layout, out, videos, results, images):
    root = out / "valid"
    meta = {}
    for video in videos:
        for t in range(video.n_frames):
            gt = video.gt(t)
            write_mask(root / "Annotations" / video.name / f"{t:05d}.png", _id_map(gt, video.shape))
            if images:
                _write_jpeg(root / "JPEGImages" / video.name / f"{t:05d}.jpg", _frame_image(video, gt, t))
            if results is not None:
                write_mask(results / video.name / f"{t:05d}.png", _id_map(video.pred(t), video.shape))
        meta[video.name] = {"length": video.n_frames, "height": video.shape[0], "width": video.shape[1],
                            "objects": {str(o.object_id): {} for o in video.objects}}
    if layout == "mosev2":
        atomic_write(root / "meta.json", json.dumps({"videos": meta}, indent=1) + "\n")
    return root


def _lvos_frames(video: _Video, obj: _Object) -> list[int]:
    return list(range(obj.appear, video.n_frames, 5))


def _write_lvos(layout, out, videos, results, images):
    root = out / "valid"
    meta = {}
    for video in videos:
        annotated = sorted({t for o in video.objects for t in _lvos_frames(video, o)})
        for t in range(video.n_frames):
            gt = video.gt(t)
            if t in annotated:
                write_mask(root / "Annotations" / video.name / f"{t:08d}.png", _id_map(gt, video.shape))
            if images:
                _write_jpeg(root / "JPEGImages" / video.name / f"{t:08d}.jpg", _frame_image(video, gt, t))
            if results is not None:
                write_mask(results / video.name / f"{t:08d}.png", _id_map(video.pred(t), video.shape))
        objects = {}
        for o in video.objects:
            frames = _lvos_frames(video, o)
            objects[str(o.object_id)] = {"frame_range": {"start": f"{frames[0]:08d}", "end": f"{frames[-1] + 1:08d}",
                                                         "frame_nums": len(frames)}}
        meta[video.name] = {"objects": objects}
    atomic_write(root / "valid_meta.json", json.dumps({"videos": meta}, indent=1) + "\n")
    atomic_write(root / "unseen_videos.txt", "empty\n")
    return root


def _write_sav(layout, out, videos, results, images):
    root = out / "sav_val"
    for video in videos:
        annotated = list(range(0, video.n_frames, 4))
        for t in range(video.n_frames):
            gt = video.gt(t)
            if images:
                _write_jpeg(root / "JPEGImages_24fps" / video.name / f"{t:05d}.jpg", _frame_image(video, gt, t))
            if t not in annotated:
                continue
            pred = video.pred(t)
            for o in video.objects:
                # The late object's folder starts where it appears; the others hold every annotated frame.
                if o.appear and t < o.appear:
                    continue
                folder = f"{o.object_id - 1:03d}"
                empty = np.zeros(video.shape, dtype=bool)
                _write_binary(root / "Annotations_6fps" / video.name / folder / f"{t:05d}.png", gt.get(o.object_id, empty))
                if results is not None:
                    _write_binary(results / video.name / folder / f"{t:05d}.png", pred.get(o.object_id, empty))
    atomic_write(root / "sav_val.txt", "".join(f"{v.name}\n" for v in videos))
    return root


def _write_vost(layout, out, videos, results, images):
    root = out
    for video in videos:
        for t in range(video.n_frames):
            gt = video.gt(t)
            if images:
                _write_jpeg(root / "JPEGImages" / video.name / f"frame{t:05d}.jpg", _frame_image(video, gt, t))
            if t % 6:
                continue
            write_mask(root / "Annotations" / video.name / f"frame{t:05d}.png", _id_map(gt, video.shape))
            if results is not None:
                write_mask(results / video.name / f"frame{t:05d}.png", _id_map(video.pred(t), video.shape))
    atomic_write(root / "ImageSets" / "val.txt", "".join(f"{v.name}\n" for v in videos))
    return root
