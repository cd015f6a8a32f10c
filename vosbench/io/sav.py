"""The SA-V val/test layout (SAM 2's benchmark): one folder of binary PNGs per object.

    <root>/sav_<split>.txt                           the split's videos (optional)
    <root>/JPEGImages_24fps/<video>/<5-digit>.jpg    every frame, 24 fps
    <root>/Annotations_6fps/<video>/<obj>/<5-digit>.png
                                                     one binary mask per object and annotated frame
                                                     (every fourth frame); objects may overlap

`root` may also be the ``Annotations_6fps`` folder itself (what the official evaluator takes as
``--gt_root``). Result folders have the same shape: ``<results>/<video>/<obj>/<frame>.png``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from vosbench.errors import InputError
from vosbench.io.datasets import IMAGE_SUFFIXES, Dataset, _stems

ANNOTATIONS = "Annotations_6fps"
IMAGES = "JPEGImages_24fps"


class SavDataset(Dataset):
    """SA-V val or test: videos, their object folders and each object's annotated frames."""

    name = "sav"
    binary = False
    metrics = ("sav",)

    def __init__(self, root: str | os.PathLike, split: str = "val", sequences: Sequence[str] | None = None,
                 resolution: str | None = None):
        given = Path(root)
        self.split = split
        if (given / ANNOTATIONS).is_dir():
            self.root, self._annotations = given, given / ANNOTATIONS
        elif given.is_dir() and not (given / IMAGES).exists():
            self.root, self._annotations = given.parent, given  # the annotation folder itself
        else:
            raise InputError(given, f"is not an SA-V folder (no {ANNOTATIONS}/ inside).",
                             f"Point --gt at sav_val (holding {ANNOTATIONS}/) or at {ANNOTATIONS} itself.")
        if not self._annotations.is_dir():
            raise InputError(self._annotations, "does not exist.", f"Point --gt at sav_val or at {ANNOTATIONS}.")
        self._sequences = list(sequences) if sequences is not None else self._read_sequences()
        self._objects: dict[str, dict[int, tuple[str, list[str]]]] = {}

    def _read_sequences(self) -> list[str]:
        listed = self.root / f"sav_{self.split}.txt"
        if listed.is_file():
            return [line.strip() for line in listed.read_text().splitlines() if line.strip()]
        return sorted(p.name for p in self._annotations.iterdir() if p.is_dir() and not p.name.startswith("."))

    def object_folders(self, sequence: str) -> dict[int, tuple[str, list[str]]]:
        """{object id: (folder name, annotated frame names)}; the id is the folder name as a number."""
        if sequence not in self._objects:
            folder = self._annotations / sequence
            if not folder.is_dir():
                raise InputError(folder, "annotation folder of the video does not exist.",
                                 "Every video of the split needs its folder of object folders.")
            out = {}
            for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
                try:
                    object_id = int(sub.name)
                except ValueError:
                    raise InputError(sub, "object folder name is not a number.",
                                     "Name object folders 000, 001, ... as SA-V does.") from None
                out[object_id] = (sub.name, _stems(sub, (".png",)))
            if not out:
                raise InputError(folder, "holds no object folder.", "Put each object's masks in <video>/<obj>/.")
            self._objects[sequence] = out
        return self._objects[sequence]

    def sequence_names(self) -> list[str]:
        return list(self._sequences)

    def annotated_frames(self, sequence: str) -> list[str]:
        return sorted({f for _, frames in self.object_folders(sequence).values() for f in frames})

    def frame_names(self, sequence: str) -> list[str]:
        images = self.root / IMAGES / sequence
        names = _stems(images, IMAGE_SUFFIXES) if images.is_dir() else []
        return sorted(set(names) | set(self.annotated_frames(sequence)))

    def annotation_path(self, sequence: str, frame: str):
        """The (object id, binary PNG) pairs of a frame: objects may overlap, so there is no single file."""
        return tuple((object_id, self._annotations / sequence / folder / f"{frame}.png")
                     for object_id, (folder, frames) in self.object_folders(sequence).items() if frame in frames)

    def image_path(self, sequence: str, frame: str) -> Path:
        return self.root / IMAGES / sequence / f"{frame}.jpg"

    def describe(self) -> str:
        return f"SA-V {self.split} at {self.root}"
