"""A plain folder of sequences: ``<root>/<sequence>/<frame>.png`` ground-truth masks.

For data that follows no benchmark's layout (a lab's own clips, generated
sets). Accepted shapes:

    <root>/<sequence>/*.png                      masks directly under the root
    <root>/Annotations/<sequence>/*.png          masks under Annotations/, images under JPEGImages/

Every PNG of a sequence folder is a frame; frames sort by name. Images, when
present, live in ``<root>/JPEGImages/<sequence>/`` (same stems, JPEG or PNG).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from vosbench.errors import InputError
from vosbench.io.datasets import Dataset, find_image, mask_stems


class FolderDataset(Dataset):
    """Sequences as sub-folders of PNG masks.

    binary: read every mask as one object (any non-zero is foreground), as DAVIS 2016.
    sequences: score only these (default: every sub-folder holding a PNG).
    split: a label for the outputs only (the folder has no split lists).
    """

    def __init__(self, root: str | os.PathLike, binary: bool = False, sequences: Sequence[str] | None = None,
                 split: str = "val", resolution: str | None = None, name: str = "folder"):
        self.root = Path(root)
        self.binary = bool(binary)
        self.split = split
        self.name = name
        if not self.root.is_dir():
            raise InputError(self.root, "ground-truth folder does not exist." if not self.root.exists()
                             else "is a file, not a folder of sequences.",
                             "Point --gt at a folder holding one sub-folder of PNG masks per sequence.")
        annotations = self.root / "Annotations"
        self._masks = annotations if annotations.is_dir() else self.root
        if sequences is not None:
            self._sequences = list(sequences)
        else:
            self._sequences = sorted(p.name for p in self._masks.iterdir()
                                     if p.is_dir() and not p.name.startswith(".") and p.name != "JPEGImages"
                                     and any(q.suffix.lower() == ".png" for q in p.iterdir()))
        if not self._sequences:
            raise InputError(self._masks, "holds no sub-folder of PNG masks.",
                             "Put each sequence's ground-truth masks in <root>/<sequence>/<frame>.png.")
        self._frames: dict[str, list[str]] = {}

    def sequence_names(self) -> list[str]:
        return list(self._sequences)

    def frame_names(self, sequence: str) -> list[str]:
        if sequence not in self._frames:
            self._frames[sequence] = mask_stems(self._masks / sequence, "ground-truth folder of the sequence does not exist.",
                                                "Every sequence scored needs a folder of PNG masks.")
        return list(self._frames[sequence])

    def annotation_path(self, sequence: str, frame: str) -> Path:
        return self._masks / sequence / f"{frame}.png"

    def image_path(self, sequence: str, frame: str) -> Path:
        folder = self.root / "JPEGImages" / sequence
        path = find_image(folder, frame)
        if path is not None:
            return path
        raise InputError(folder / f"{frame}.jpg", "frame image does not exist.",
                         "Put the frames in <root>/JPEGImages/<sequence>/ with the masks' names.")

    def describe(self) -> str:
        return f"folder of {len(self._sequences)} sequence(s) at {self.root}"
