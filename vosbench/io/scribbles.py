"""Scribble files in the DAVIS interactive format.

A scribble file is JSON::

    {"sequence": "bear",
     "scribbles": [                      # one list per frame, frame 0 first
        [{"path": [[x, y], ...],         # x / width, y / height, in [0, 1]
          "object_id": 1,                # 0 = background
          "start_time": 0, "end_time": 1712},   # when it was drawn (ms for people)
         ...],
        [], ...]}

Human scribbles of a sequence lie on one frame; the robot's too. Reading checks
the structure and raises `InputError` naming the file and what is wrong.
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np

from vosbench.errors import InputError
from vosbench.io.atomic import atomic_write

Scribbles = dict[str, Any]

_FIX = "A scribble file is {\"sequence\": name, \"scribbles\": [per-frame lists of {\"path\", \"object_id\", " \
       "\"start_time\", \"end_time\"}]} with paths of [x, y] pairs normalised to [0, 1]."


def empty_scribbles(sequence: str, nb_frames: int) -> Scribbles:
    """A scribble dict with no scribble on any of `nb_frames` frames."""
    return {"sequence": str(sequence), "scribbles": [[] for _ in range(int(nb_frames))]}


def validate_scribbles(data: Any, source: str | os.PathLike | None = None, nb_frames: int | None = None) -> Scribbles:
    """Check the structure of a scribble dict; return it. Raises InputError on the first problem."""
    if not isinstance(data, Mapping) or "scribbles" not in data or "sequence" not in data:
        raise InputError(source, "is not a scribble file (needs the keys 'sequence' and 'scribbles').", _FIX)
    frames = data["scribbles"]
    if not isinstance(frames, list) or not all(isinstance(f, list) for f in frames):
        raise InputError(source, "'scribbles' must be a list with one list of scribbles per frame.", _FIX)
    if nb_frames is not None and len(frames) != nb_frames:
        raise InputError(source, f"has {len(frames)} frames of scribbles but the sequence has {nb_frames} frames.",
                         "Use the scribble file made for this sequence (one entry per frame, empty lists included).")
    for t, frame in enumerate(frames):
        for k, scribble in enumerate(frame):
            where = f"frame {t}, scribble {k}"
            if not isinstance(scribble, Mapping) or "path" not in scribble or "object_id" not in scribble:
                raise InputError(source, f"{where} lacks 'path' or 'object_id'.", _FIX)
            path = np.asarray(scribble["path"], dtype=np.float64) if len(scribble["path"]) else np.zeros((0, 2))
            if path.ndim != 2 or path.shape[1] != 2:
                raise InputError(source, f"{where}: 'path' must be a list of [x, y] pairs.", _FIX)
            if path.size and (not np.isfinite(path).all() or path.min() < 0 or path.max() > 1):
                raise InputError(source, f"{where}: path coordinates must be finite and within [0, 1].", _FIX)
            obj = scribble["object_id"]
            if isinstance(obj, bool) or not isinstance(obj, (int, np.integer)) or obj < 0:
                raise InputError(source, f"{where}: 'object_id' must be an integer >= 0, got {obj!r}.", _FIX)
    return dict(data)


def read_scribbles(path: str | os.PathLike, nb_frames: int | None = None) -> Scribbles:
    """Read and check one scribble file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "scribble file does not exist.", "Check the path or the dataset's Scribbles/ folder.")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"cannot be read as JSON ({exc}).", _FIX) from exc
    return validate_scribbles(data, path, nb_frames)


def dumps_scribbles(data: Mapping[str, Any]) -> str:
    """The canonical JSON text of a scribble dict (stable key order, so equal scribbles give equal bytes)."""
    return json.dumps({"scribbles": data["scribbles"], "sequence": data["sequence"]}, sort_keys=True, indent=1) + "\n"


def write_scribbles(path: str | os.PathLike, data: Mapping[str, Any]) -> Path:
    """Check and write a scribble file atomically."""
    validate_scribbles(data, path)
    atomic_write(path, dumps_scribbles(data))
    return Path(path)


def annotated_frames(data: Mapping[str, Any]) -> list[int]:
    """Frames holding at least one scribble."""
    return [t for t, frame in enumerate(data["scribbles"]) if frame]


def is_empty(data: Mapping[str, Any]) -> bool:
    return not annotated_frames(data)


def fuse_scribbles(a: Mapping[str, Any], b: Mapping[str, Any]) -> Scribbles:
    """A new scribble dict holding the scribbles of `a` then those of `b`, frame by frame."""
    if a["sequence"] != b["sequence"]:
        raise ValueError(f"cannot fuse scribbles of {a['sequence']!r} and {b['sequence']!r}")
    if len(a["scribbles"]) != len(b["scribbles"]):
        raise ValueError("cannot fuse scribbles with different numbers of frames")
    return {"sequence": a["sequence"],
            "scribbles": [copy.deepcopy(fa) + copy.deepcopy(fb) for fa, fb in zip(a["scribbles"], b["scribbles"])]}


def annotated_frames_object(data: Mapping[str, Any], object_id: int) -> list[int]:
    """Frames holding at least one scribble of `object_id`."""
    return [t for t, frame in enumerate(data["scribbles"]) if any(s["object_id"] == object_id for s in frame)]


def _line(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    d_x, d_y = x1 - x0, y1 - y0
    x_sign = 1 if d_x > 0 else -1
    y_sign = 1 if d_y > 0 else -1
    d_x, d_y = abs(d_x), abs(d_y)
    if d_x > d_y:
        xx, xy, yx, yy = x_sign, 0, 0, y_sign
    else:
        d_x, d_y = d_y, d_x
        xx, xy, yx, yy = 0, y_sign, x_sign, 0
    steps = np.empty(d_x + 1, dtype=np.int64)
    decision, y = 2 * d_y - d_x, 0
    for x in range(d_x + 1):
        steps[x] = y
        if decision >= 0:
            y += 1
            decision -= 2 * d_x
        decision += 2 * d_y
    x = np.arange(d_x + 1)
    return np.column_stack([x0 + x * xx + steps * yx, y0 + x * xy + steps * yy])


def bresenham(points: Any) -> np.ndarray:
    """The pixels of the polyline through integer `points` ((N, 2) x, y), segment by segment.

    As the DAVIS interactive framework's ``bresenham``: each segment's pixels from its
    first point to its last, segments concatenated (shared ends repeated); fewer than two
    points come back as they are.
    """
    points = np.asarray(points, dtype=np.int64)
    if len(points) < 2:
        return points
    return np.concatenate([_line(*points[i], *points[i + 1]) for i in range(len(points) - 1)], axis=0)


_bresenham = bresenham   # scribbles2mask's argument of the same name hides the function there


def scribbles2mask(scribbles: Mapping[str, Any], output_resolution: tuple[int, int],
                   bezier_curve_sampling: bool = False, nb_points: int = 1000, bresenham: bool = True,
                   default_value: int = -1) -> np.ndarray:
    """``(frames, H, W)`` int64 maps of the scribbled object ids, `default_value` elsewhere.

    The DAVIS interactive framework's ``scribbles2mask``: output_resolution ``(H, W)``;
    points scaled by ``(W - 1, H - 1)`` and truncated, joined by `bresenham` lines (or
    only the points themselves); later scribbles overwrite earlier ones.
    bezier_curve_sampling: resample each path as a Bezier curve of `nb_points` points first.
    """
    output_resolution = tuple(output_resolution)
    if len(output_resolution) != 2 or any(int(r) < 1 for r in output_resolution):
        raise ValueError(f"invalid output resolution: {output_resolution} (give (height, width))")
    height, width = int(output_resolution[0]), int(output_resolution[1])
    nb_frames = len(scribbles["scribbles"])
    masks = np.full((nb_frames, height, width), default_value, dtype=np.int64)
    size = np.asarray([width, height], dtype=np.float64) - 1
    for f in range(nb_frames):
        for scribble in scribbles["scribbles"][f]:
            path = np.asarray(scribble["path"], dtype=np.float64)
            if bezier_curve_sampling:
                path = bezier_curve(path, nb_points)
            pixels = (path * size).astype(np.int64)
            if bresenham:
                pixels = _bresenham(pixels)
            if len(pixels):
                masks[f][pixels[:, 1], pixels[:, 0]] = scribble["object_id"]
    return masks


def scribbles2points(scribbles: Mapping[str, Any], output_resolution: tuple[int, int] | None = None):
    """All scribble points as ``(N, 3)`` (frame, x, y) and their object ids, as the framework's
    ``scribbles2points``; with ``output_resolution (H, W)`` x and y are scaled by (H - 1, W - 1)
    as there and truncated to integers."""
    paths: list[list[float]] = []
    object_ids: list[int] = []
    for frame, lines in enumerate(scribbles["scribbles"]):
        for line in lines:
            paths += [[frame] + list(point) for point in line["path"]]
            object_ids += [line["object_id"]] * len(line["path"])
    points = np.asarray(paths, dtype=np.float64)
    ids = np.asarray(object_ids, dtype=np.int64)
    if output_resolution:
        h, w = output_resolution
        points = (points * np.asarray([1, h - 1, w - 1], dtype=np.float64)).astype(np.int64)
    return points, ids


def bezier_curve(points: Any, nb_points: int = 1000) -> np.ndarray:
    """`nb_points` samples of the Bezier curve with control points `points` ((N, 2)).

    As the framework's ``bezier_curve``: at most 1,000 samples; a path with more points
    than samples is returned as is; the curve runs from the last control point to the first.
    """
    from scipy.special import comb

    nb_points = min(nb_points, 1000)
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {points.shape}")
    n_points = len(points)
    if n_points > nb_points:
        return points
    t = np.linspace(0.0, 1.0, nb_points).reshape(1, -1)
    i = np.arange(n_points).reshape(-1, 1)
    n = n_points - 1
    bernstein = comb(n, i) * (t ** (n - i)) * (1 - t) ** i
    return bernstein.T.dot(points)


def scribbles_to_masks(data: Mapping[str, Any], height: int, width: int, frames: list[int] | None = None,
                       thickness: int = 1, background: int = -1) -> dict[int, np.ndarray]:
    """Rasterise scribbles: frame index -> ``(H, W) int16`` map of object ids, `background` elsewhere.

    Points are scaled by ``(W - 1, H - 1)`` and truncated to pixels, and consecutive
    points joined by straight lines; later scribbles overwrite earlier ones. With
    ``thickness=1`` the lines are the framework's (`scribbles2mask`, Bresenham lines),
    thicker ones are drawn by OpenCV.
    """
    out: dict[int, np.ndarray] = {}
    scale = np.asarray([width - 1, height - 1], dtype=np.float64)
    wanted = annotated_frames(data) if frames is None else frames
    for t in wanted:
        if thickness == 1:
            single = {"sequence": data.get("sequence"), "scribbles": [data["scribbles"][t]]}
            out[t] = scribbles2mask(single, (height, width), default_value=background)[0].astype(np.int16)
            continue
        canvas = np.full((height, width), background, dtype=np.int16)
        for scribble in data["scribbles"][t]:
            if not len(scribble["path"]):
                continue
            pts = (np.asarray(scribble["path"], dtype=np.float64) * scale).astype(np.int32)
            cv2.polylines(canvas, [pts.reshape(-1, 1, 2)], False, int(scribble["object_id"]), thickness,
                          lineType=cv2.LINE_8)
        out[t] = canvas
    return out
