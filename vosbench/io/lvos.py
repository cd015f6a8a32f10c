"""The LVOS layout (v1 and v2), as its evaluation toolkit reads it.

    <root>/[<split>/]JPEGImages/<video>/<8-digit frame>.jpg
    <root>/[<split>/]Annotations/<video>/<8-digit frame>.png     palette PNGs of object ids
    <root>/[<split>/]<split>_meta.json     {"videos": {video: {"objects": {"1": {"frame_range":
                                               {"start": s, "end": e, "frame_nums": n}}, ...}}}}
    <root>/[<split>/]unseen_videos.txt     the videos of unseen categories (the official list)

Each object is scored on its own frames: every fifth frame from its start (see
`vosbench.metrics.lvos.scored_steps`). The split's meta file is ``valid_meta.json`` for
``--split val``/``valid`` (``val_meta.json`` is accepted too) and ``test_meta.json`` for test.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from vosbench.errors import InputError
from vosbench.io.datasets import IMAGE_SUFFIXES, Dataset, _stems, read_videos_json

log = logging.getLogger(__name__)

SPLITS = {"val": ("valid", "val"), "valid": ("valid", "val"), "test": ("test",), "train": ("train",)}
UNSEEN_LIST = "unseen_videos.txt"


@dataclass(frozen=True)
class ObjectRange:
    object_id: int
    start: int
    end: int
    frame_nums: int


def frame_name(index: int) -> str:
    """LVOS frame names: the frame index on eight digits."""
    return f"{index:08d}"


class LvosDataset(Dataset):
    """LVOS v1/v2 as a lazy collection of videos; objects and their frame ranges from the meta file.

    unseen: the unseen-videos list (default: ``unseen_videos.txt`` beside the meta file; without
        one every video counts as seen and the official J&F, which averages seen and unseen, is NaN).
    """

    name = "lvos"
    binary = False
    metrics = ("lvos",)

    def __init__(self, root: str | os.PathLike, split: str = "val", sequences: Sequence[str] | None = None,
                 resolution: str | None = None, meta: str | os.PathLike | None = None,
                 unseen: str | os.PathLike | None = None, compiled_boundary: bool = False):
        given = Path(root)
        self.split = split
        names = SPLITS.get(split, (split,))
        self.root = next((given / n for n in names if (given / n / "Annotations").is_dir()), given)
        if not (self.root / "Annotations").is_dir():
            raise InputError(given, "is not an LVOS folder (no Annotations/ in it or in its split folder).",
                             "Point --gt at the LVOS root (holding valid/) or at the split folder, and choose --split.")
        if meta is None:
            candidates = [self.root / f"{n}_meta.json" for n in names]
            meta = next((c for c in candidates if c.is_file()), candidates[0])
        self._meta_path = Path(meta)
        self._videos = self._read_meta()
        self._unseen_path = Path(unseen) if unseen is not None else self.root / UNSEEN_LIST
        self.compiled_boundary = bool(compiled_boundary)
        self._sequences = list(sequences) if sequences is not None else sorted(self._videos)
        self._frames: dict[str, list[str]] = {}

    def _read_meta(self) -> dict:
        return read_videos_json(self._meta_path, "an LVOS meta file",
                                "Put the split's meta file (valid_meta.json) next to Annotations/.",
                                '{"videos": {video: {"objects": {id: {"frame_range": ...}}}}}')

    def objects(self, sequence: str) -> list[ObjectRange]:
        """Every object of a video with its frame range, in the meta file's order."""
        out = []
        for key, info in self._videos.get(sequence, {}).get("objects", {}).items():
            try:
                fr = info["frame_range"]
                out.append(ObjectRange(int(key), int(fr["start"]), int(fr["end"]), int(fr["frame_nums"])))
            except (KeyError, TypeError, ValueError):
                raise InputError(self._meta_path, f"object {key!r} of video {sequence!r} has no usable frame_range.",
                                 'Give it "frame_range": {"start": s, "end": e, "frame_nums": n}.') from None
        return out

    def unseen_videos(self) -> list[str]:
        """The official unseen-videos list, empty when there is none."""
        if not self._unseen_path.is_file():
            return []
        return [line.strip() for line in self._unseen_path.read_text().splitlines() if line.strip()]

    def metric_options(self) -> dict[str, dict]:
        unseen = self.unseen_videos()
        if not unseen:
            log.warning("%s: no unseen-videos list; every video counts as seen, so J&F-Mean (the mean of the seen "
                        "and unseen J and F) is NaN. Put the official unseen_videos.txt there.", self._unseen_path)
        return {"lvos": {"unseen": tuple(unseen), "compiled_boundary": self.compiled_boundary}}

    def sequence_names(self) -> list[str]:
        return list(self._sequences)

    def frame_names(self, sequence: str) -> list[str]:
        if sequence not in self._frames:
            images = self.root / "JPEGImages" / sequence
            names = _stems(images, IMAGE_SUFFIXES) if images.is_dir() else []
            self._frames[sequence] = sorted(set(names) | set(self.annotated_frames(sequence)))
        return list(self._frames[sequence])

    def annotated_frames(self, sequence: str) -> list[str]:
        folder = self.root / "Annotations" / sequence
        if not folder.is_dir():
            raise InputError(folder, "annotation folder of the video does not exist.",
                             "Every video of the meta file needs its Annotations folder.")
        return _stems(folder, (".png",))

    def annotation_path(self, sequence: str, frame: str) -> Path:
        return self.root / "Annotations" / sequence / f"{frame}.png"

    def image_path(self, sequence: str, frame: str) -> Path:
        return self.root / "JPEGImages" / sequence / f"{frame}.jpg"

    def describe(self) -> str:
        return f"LVOS {self.split} at {self.root}"
