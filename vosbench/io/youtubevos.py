"""The YouTube-VOS layout: sparse annotations, objects that appear mid-video, categories in meta.json.

    <root>/<split>/JPEGImages/<video>/<frame>.jpg      every frame
    <root>/<split>/Annotations/<video>/<frame>.png     every 5th frame (palette PNGs of object ids)
    <root>/<split>/meta.json                           {"videos": {video: {"objects": {"1": {"category": ..,
                                                                                           "frames": [..]}}}}}

`root` may also be the split folder itself. Ground truth exists only on the
annotated frames; an object is given in the frame where it first appears and
is scored from the next annotated frame on (`EvalParams.official(...,
dataset="youtubevos")`). Categories come from meta.json and feed the seen/unseen
breakdown (`vosbench.tracks.youtubevos`).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

from vosbench.errors import InputError
from vosbench.io.datasets import IMAGE_SUFFIXES, Dataset, _stems, find_image, mask_stems, read_videos_json

log = logging.getLogger(__name__)

# What users type -> the folder name the dataset ships.
SPLIT_FOLDERS = {"val": "valid", "validation": "valid", "valid": "valid", "train": "train", "test": "test"}


class YouTubeVOSDataset(Dataset):
    """YouTube-VOS (2018/2019 layout) as a lazy collection of videos.

    split: "train", "valid" ("val" is accepted) or "test"; ignored when `root` already
        holds Annotations/.
    sequences: score only these videos (default: every video of meta.json that has
        annotations, else every annotation folder).
    meta: path of meta.json (default: ``<split folder>/meta.json``; optional).
    """

    binary = False

    def __init__(self, root: str | os.PathLike, split: str = "valid", sequences: Sequence[str] | None = None,
                 meta: str | os.PathLike | None = None, resolution: str | None = None):
        given = Path(root)
        self.split = split
        self.name = self.kind = "youtubevos"
        self.title = "YouTube-VOS"
        folder = SPLIT_FOLDERS.get(split, split)
        if (given / "Annotations").is_dir():
            self.root = given
        elif (given / folder / "Annotations").is_dir():
            self.root = given / folder
        else:
            raise InputError(given, f"is not a YouTube-VOS folder (no Annotations/ in it or in {folder}/).",
                             "Point --gt at the YouTube-VOS root (holding train/, valid/) or at one split folder, "
                             "and choose --split.")
        self._meta_path = Path(meta) if meta is not None else self.root / "meta.json"
        self._meta = self._read_meta()
        annotated = sorted(p.name for p in (self.root / "Annotations").iterdir()
                           if p.is_dir() and not p.name.startswith("."))
        if sequences is not None:
            self._sequences = list(sequences)
        elif self._meta:
            listed = [v for v in sorted(self._meta) if v in set(annotated)]
            missing = sorted(set(self._meta) - set(annotated))
            if missing:
                log.warning("%d video(s) of %s have no Annotations folder and are not scored: %s",
                            len(missing), self._meta_path, ", ".join(missing[:5]))
            self._sequences = listed
        else:
            self._sequences = annotated
        self._frames: dict[str, list[str]] = {}
        self._annotated: dict[str, list[str]] = {}

    def _read_meta(self) -> dict[str, dict]:
        if not self._meta_path.is_file():
            return {}
        return read_videos_json(self._meta_path, "a YouTube-VOS meta.json", None,
                                '{"videos": {video: {"objects": {id: {"category": ..., "frames": [...]}}}}}')

    # -- Dataset ----------------------------------------------------------------
    def sequence_names(self) -> list[str]:
        return list(self._sequences)

    def annotated_frames(self, sequence: str) -> list[str]:
        if sequence not in self._annotated:
            self._annotated[sequence] = mask_stems(
                self.root / "Annotations" / sequence, "annotation folder of the video does not exist.",
                "Check --gt and --split: every video scored needs its Annotations folder.")
        return list(self._annotated[sequence])

    def frame_names(self, sequence: str) -> list[str]:
        """Every frame of the video (JPEGImages); the annotated frames when the images are absent."""
        if sequence not in self._frames:
            images = self.root / "JPEGImages" / sequence
            names = _stems(images, IMAGE_SUFFIXES) if images.is_dir() else []
            annotated = self.annotated_frames(sequence)
            self._frames[sequence] = sorted(set(names) | set(annotated))
        return list(self._frames[sequence])

    def annotation_path(self, sequence: str, frame: str) -> Path:
        return self.root / "Annotations" / sequence / f"{frame}.png"

    def image_path(self, sequence: str, frame: str) -> Path:
        folder = self.root / "JPEGImages" / sequence
        return find_image(folder, frame) or folder / f"{frame}.jpg"

    # -- categories ---------------------------------------------------------------
    def object_categories(self, sequence: str) -> dict[int, str]:
        """Object id -> category name, from meta.json (empty without it)."""
        objects = self._meta.get(sequence, {}).get("objects", {})
        out = {}
        for key, info in objects.items():
            try:
                out[int(key)] = str(info["category"])
            except (ValueError, KeyError, TypeError):
                raise InputError(self._meta_path, f"object {key!r} of video {sequence!r} has no category.",
                                 'Give every object a "category" in meta.json.') from None
        return out

    def categories(self) -> dict[tuple[str, int], str]:
        """(video, object id) -> category, for every video scored."""
        return {(seq, object_id): category for seq in self._sequences
                for object_id, category in self.object_categories(seq).items()}

    def describe(self) -> str:
        return f"YouTube-VOS {self.split} at {self.root}"
