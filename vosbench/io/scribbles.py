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


def scribbles_to_masks(data: Mapping[str, Any], height: int, width: int, frames: list[int] | None = None,
                       thickness: int = 1, background: int = -1) -> dict[int, np.ndarray]:
    """Rasterise scribbles: frame index -> ``(H, W) int16`` map of object ids, `background` elsewhere.

    Points are scaled by ``(W - 1, H - 1)`` and truncated to pixels, and consecutive
    points joined by straight lines (as the framework's ``scribbles2mask`` with
    Bresenham lines); later scribbles overwrite earlier ones.
    """
    out: dict[int, np.ndarray] = {}
    scale = np.asarray([width - 1, height - 1], dtype=np.float64)
    wanted = annotated_frames(data) if frames is None else frames
    for t in wanted:
        canvas = np.full((height, width), background, dtype=np.int16)
        for scribble in data["scribbles"][t]:
            if not len(scribble["path"]):
                continue
            pts = (np.asarray(scribble["path"], dtype=np.float64) * scale).astype(np.int32)
            cv2.polylines(canvas, [pts.reshape(-1, 1, 2)], False, int(scribble["object_id"]), thickness,
                          lineType=cv2.LINE_8)
        out[t] = canvas
    return out
