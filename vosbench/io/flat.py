"""DAVIS-like layouts without resolution folders: MOSE (v1 and v2) and VOST.

    <root>/[<split>/]Annotations/<video>/<frame>.png     palette PNGs of object ids
    <root>/[<split>/]JPEGImages/<video>/<frame>.jpg
    <root>/[<split>/]ImageSets/<split>.txt               VOST: the split's videos
    <root>/[<split>/]meta.json                           MOSEv2: {"videos": {video: {"length": n,
                                                            "objects": {"1": ..., ...}}}}

`root` may be the split folder itself (it holds Annotations/) or the dataset root holding one
folder per split (MOSE ships ``train/`` and ``valid/``). The videos are those of the split list
when there is one, else those of meta.json, else every annotation folder.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from vosbench.errors import InputError
from vosbench.io.datasets import IMAGE_SUFFIXES, Dataset, _stems, find_image, mask_stems, read_videos_json

SPLIT_FOLDERS = {"val": ("valid", "val"), "valid": ("valid", "val"), "train": ("train",), "test": ("test",)}


def _split_root(given: Path, split: str, what: str) -> Path:
    if (given / "Annotations").is_dir():
        return given
    for folder in SPLIT_FOLDERS.get(split, (split,)):
        if (given / folder / "Annotations").is_dir():
            return given / folder
    raise InputError(given, f"is not a {what} folder (no Annotations/ in it or in its {split} folder).",
                     f"Point --gt at the {what} root (holding train/, valid/) or at one split folder, and choose --split.")


class FlatDavisDataset(Dataset):
    """Sequences of palette PNGs under ``Annotations/<video>/``, every frame annotated."""

    binary = False
    label = "flat DAVIS layout"

    def __init__(self, root: str | os.PathLike, split: str = "val", sequences: Sequence[str] | None = None,
                 resolution: str | None = None):
        self.split = split
        self.root = _split_root(Path(root), split, self.label)
        self._frames: dict[str, list[str]] = {}
        self._sequences = list(sequences) if sequences is not None else self._read_sequences()

    def _listed(self) -> list[str] | None:
        for name in (self.split, *SPLIT_FOLDERS.get(self.split, ())):
            path = self.root / "ImageSets" / f"{name}.txt"
            if path.is_file():
                return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
        return None

    def _read_sequences(self) -> list[str]:
        listed = self._listed()
        if listed is not None:
            return listed
        folders = sorted(p.name for p in (self.root / "Annotations").iterdir()
                         if p.is_dir() and not p.name.startswith("."))
        if not folders:
            raise InputError(self.root / "Annotations", "holds no video folder.",
                             "Put each video's masks in Annotations/<video>/<frame>.png.")
        return folders

    def sequence_names(self) -> list[str]:
        return list(self._sequences)

    def frame_names(self, sequence: str) -> list[str]:
        if sequence not in self._frames:
            self._frames[sequence] = mask_stems(
                self.root / "Annotations" / sequence, "ground-truth folder of the video does not exist.",
                "Check --gt and --split: every video of the split needs its Annotations folder.")
        return list(self._frames[sequence])

    def annotation_path(self, sequence: str, frame: str) -> Path:
        return self.root / "Annotations" / sequence / f"{frame}.png"

    def image_path(self, sequence: str, frame: str) -> Path:
        folder = self.root / "JPEGImages" / sequence
        return find_image(folder, frame) or folder / f"{frame}.jpg"

    def describe(self) -> str:
        return f"{self.label} {self.split} at {self.root}"


class MoseDataset(FlatDavisDataset):
    """MOSEv1: five-digit frames, every frame annotated (train; the val ground truth is withheld,
    only its first frame ships). Scored under the DAVIS 2017 rules."""

    name = "mose"
    label = "MOSE"

    def first_frames_only(self) -> bool:
        """True for a download whose ground truth is withheld (valid, test): one mask per video."""
        return all(len(self.frame_names(seq)) <= 1 for seq in self._sequences)

    def video_frames(self, sequence: str) -> list[str]:
        """Every frame of a video (JPEGImages), whatever is annotated."""
        return _stems(self.root / "JPEGImages" / sequence, IMAGE_SUFFIXES)


class VostDataset(FlatDavisDataset):
    """VOST: frames at 30 fps, annotations every sixth frame; ``ImageSets/<split>.txt`` lists the videos.
    Only the annotated frames are scored (the PNGs of Annotations/), with the first and last dropped."""

    name = "vost"
    label = "VOST"
    metrics = ("vost",)


class MoseV2Dataset(FlatDavisDataset):
    """MOSEv2: the MOSE layout plus ``meta.json`` ({"videos": {video: {"length", "objects"}}}), which
    names each video's objects and frame count; the objects are those of meta.json."""

    name = "mosev2"
    label = "MOSEv2"
    metrics = ("mosev2",)

    def __init__(self, root: str | os.PathLike, split: str = "val", sequences: Sequence[str] | None = None,
                 resolution: str | None = None, meta: str | os.PathLike | None = None):
        self.split = split
        self.root = _split_root(Path(root), split, self.label)
        self._meta_path = Path(meta) if meta is not None else self.root / "meta.json"
        self._meta = self._read_meta()
        super().__init__(self.root, split=split, sequences=sequences)

    def _read_meta(self) -> dict:
        return read_videos_json(self._meta_path, "a MOSEv2 meta.json",
                                "Put meta.json (the split's {\"videos\": ...} file) next to Annotations/.",
                                '{"videos": {video: {"length": n, "objects": {...}}}}')

    def _read_sequences(self) -> list[str]:
        return sorted(self._meta)

    def object_ids(self, sequence: str) -> list[int]:
        """The objects meta.json gives the video, in its order."""
        objects = self._meta.get(sequence, {}).get("objects", {})
        try:
            return [int(k) for k in objects]
        except (TypeError, ValueError):
            raise InputError(self._meta_path, f"object ids of video {sequence!r} are not integers: {list(objects)}.",
                             "Key the objects by their mask ids.") from None

    def length(self, sequence: str) -> int:
        try:
            return int(self._meta[sequence]["length"])
        except (KeyError, TypeError, ValueError):
            raise InputError(self._meta_path, f"video {sequence!r} has no 'length'.",
                             "Give every video its number of frames.") from None
