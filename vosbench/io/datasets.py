"""Datasets as lazy collections of sequences: names, frame lists and file paths.

Nothing here loads a whole video up front; `read_annotations` reads one
sequence's masks as uint8 when asked, and frames are read one at a time.
"""
from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from vosbench.errors import InputError
from vosbench.io.masks import read_mask, read_mask_stack

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
RESOLUTIONS = ("480p", "240p", "Full-Resolution")


def read_frame(path: str | os.PathLike) -> np.ndarray:
    """Read one video frame as ``(H, W, 3) uint8`` RGB."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(path, "frame cannot be read as an image.", "Check that the file exists and is a JPEG or PNG.")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _stems(folder: Path, suffixes: Sequence[str]) -> list[str]:
    return sorted(p.stem for p in folder.iterdir() if p.suffix.lower() in suffixes and not p.name.startswith("."))


def mask_stems(folder: Path, missing: str, fix: str) -> list[str]:
    """The frame names of a video's folder of PNG masks; an InputError naming the folder (`missing`,
    `fix`: the reader's own words) when it does not exist."""
    if not folder.is_dir():
        raise InputError(folder, missing, fix)
    return _stems(folder, (".png",))


def read_videos_json(path: Path, what: str, missing_fix: str | None, shape: str) -> dict:
    """The ``"videos"`` object of a benchmark's meta file (YouTube-VOS, MOSEv2, LVOS).

    what: the file's name in messages ("a YouTube-VOS meta.json"); missing_fix: the fix when the
    file does not exist (None: a missing file is the caller's business, like any unreadable one);
    shape: what the file must hold, for the message when it holds something else."""
    import json

    try:
        videos = json.loads(path.read_text(encoding="utf-8"))["videos"]
        if not isinstance(videos, dict):
            raise TypeError("'videos' is not an object")
    except FileNotFoundError:
        if missing_fix is None:
            raise
        raise InputError(path, "does not exist.", missing_fix) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(path, f"is not {what} ({exc}).", f"It must hold {shape}.") from None
    return videos


def find_image(folder: Path, frame: str, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> Path | None:
    """The image file of `frame` in `folder`, trying `suffixes` in order; None when there is none."""
    for suffix in suffixes:
        path = folder / f"{frame}{suffix}"
        if path.exists():
            return path
    return None


class Dataset(ABC):
    """What every dataset offers to the tracks and the methods.

    binary: every sequence has one object and masks are read as foreground/background
    (DAVIS 2016). Otherwise masks carry object ids and 255 is void.
    """

    name: str = "dataset"
    # What the data is (davis2016, davis2017, youtubevos, synthetic, folder) and its name for people;
    # see vosbench.io.identity.
    kind: str = "folder"
    title: str = ""
    binary: bool = False
    root: Path
    # The registered metrics (`vosbench.metrics.registry`) its official protocol reports; None: J and F.
    metrics: tuple[str, ...] | None = None

    def metric_options(self) -> dict[str, dict]:
        """{metric name: keyword arguments} the official protocol of this dataset sets (default: none)."""
        return {}

    def scored_frames(self, sequence: str, frames: Sequence[str]) -> dict[int, np.ndarray] | None:
        """{object id: (len(frames),) bool} where the protocol scores an object on some frames only
        (ANDed with the evaluation parameters' rules); None: no such rule (default)."""
        return None

    def split_sequences(self) -> dict[str, list[str]]:
        """{split: sequence names} of every split this dataset's files list (default: none known).
        A results folder may hold sequences of other splits: they are ignored with a note."""
        return {}

    @abstractmethod
    def sequence_names(self) -> list[str]:
        """Names of the sequences of the chosen split, in a stable order."""

    @abstractmethod
    def frame_names(self, sequence: str) -> list[str]:
        """Names (file stems) of every frame of a sequence, in order."""

    @abstractmethod
    def annotation_path(self, sequence: str, frame: str) -> Path:
        """Ground-truth mask file of one frame."""

    @abstractmethod
    def image_path(self, sequence: str, frame: str) -> Path:
        """Image file of one frame."""

    def annotated_frames(self, sequence: str) -> list[str]:
        """Frames that carry ground truth (every frame in DAVIS)."""
        return self.frame_names(sequence)

    def read_annotations(self, sequence: str) -> np.ndarray:
        """Ground truth of the annotated frames as ``(T, H, W) uint8``."""
        paths = [self.annotation_path(sequence, f) for f in self.annotated_frames(sequence)]
        return read_mask_stack(paths, binary=self.binary)

    def read_annotation(self, sequence: str, frame: str) -> np.ndarray:
        return read_mask(self.annotation_path(sequence, frame), binary=self.binary)

    def read_frame(self, sequence: str, frame: str) -> np.ndarray:
        return read_frame(self.image_path(sequence, frame))

    def iter_frames(self, sequence: str) -> Iterator[np.ndarray]:
        for frame in self.frame_names(sequence):
            yield self.read_frame(sequence, frame)

    def describe(self) -> str:
        return f"{self.name} at {self.root}"


class DavisDataset(Dataset):
    """The DAVIS layout: ``JPEGImages/<res>/<seq>/``, ``Annotations/<res>/<seq>/``, ``ImageSets/``.

    year 2016: one object per sequence, masks binarised (any non-zero is foreground).
    year 2017: palette masks of object ids, 255 void.
    The split list is read from ``ImageSets/<year>/<split>.txt`` (one name per line)
    or ``ImageSets/<res>/<split>.txt`` (the DAVIS 2016 "image annotation" pairs).
    """

    def __init__(self, root: str | os.PathLike, year: int = 2017, split: str = "val",
                 resolution: str = "480p", image_resolution: str | None = None,
                 sequences: Sequence[str] | None = None, annotations: str = "Annotations"):
        self.root = Path(root)
        self.year = int(year)
        if self.year not in (2016, 2017):
            raise ValueError(f"DAVIS year must be 2016 or 2017, got {year}")
        self.split = split
        self.resolution = resolution
        self.binary = self.year == 2016
        self.name = self.kind = f"davis{self.year}"
        self.title = f"DAVIS {self.year}"
        self._image_resolution = image_resolution
        # DAVIS 2017 keeps the unsupervised track's ground truth in Annotations_unsupervised.
        self.annotations = annotations if (self.root / annotations).is_dir() else "Annotations"
        if not (self.root / "Annotations").is_dir():
            raise InputError(self.root, "is not a DAVIS folder (no Annotations/ inside).",
                             "Point --gt at the DAVIS root that holds Annotations/, JPEGImages/ and ImageSets/.")
        self._sequences = list(sequences) if sequences is not None else self._read_split()
        self._frames: dict[str, list[str]] = {}

    def _read_split(self) -> list[str]:
        candidates = [self.root / "ImageSets" / str(self.year) / f"{self.split}.txt",
                      self.root / "ImageSets" / self.resolution / f"{self.split}.txt"]
        if self.year == 2016:
            candidates.reverse()
        for path in candidates:
            if path.is_file():
                return self._names_in(path)
        raise InputError(candidates[0], f"split file for {self.split!r} not found (also looked for {candidates[1]}).",
                         "Pass the DAVIS root that holds ImageSets/, or choose an existing --split.")

    @staticmethod
    def _names_in(path: Path) -> list[str]:
        """Sequence names of a split file, in order."""
        names: list[str] = []
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line:
                continue
            token = line.split()[0]
            # "/JPEGImages/480p/bear/00000.jpg ..." lines name frames: keep the sequence.
            name = Path(token).parent.name if "/" in token else token
            if name not in names:
                names.append(name)
        return names

    def sequence_names(self) -> list[str]:
        return list(self._sequences)

    def split_sequences(self) -> dict[str, list[str]]:
        folders = [self.root / "ImageSets" / str(self.year), self.root / "ImageSets" / self.resolution]
        if self.year == 2016:
            folders.reverse()
        out: dict[str, list[str]] = {}
        for folder in folders:
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.txt")):
                if path.stem not in out:
                    out[path.stem] = self._names_in(path)
        return out

    def _annotation_dir(self, sequence: str) -> Path:
        return self.root / self.annotations / self.resolution / sequence

    def image_dir(self, sequence: str) -> Path:
        # The preferred frames first (image_resolution, else the annotations'), then any other.
        preferred = [r for r in (self._image_resolution, self.resolution) if r]
        order = list(dict.fromkeys(preferred + [r for r in RESOLUTIONS if r not in preferred]))
        for res in order:
            folder = self.root / "JPEGImages" / res / sequence
            if folder.is_dir():
                return folder
        raise InputError(self.root / "JPEGImages" / order[0] / sequence, "frames folder does not exist.",
                         "Download the DAVIS JPEGImages for this resolution or pass --resolution.")

    def frame_names(self, sequence: str) -> list[str]:
        if sequence not in self._frames:
            self._frames[sequence] = mask_stems(
                self._annotation_dir(sequence), "ground-truth folder of the sequence does not exist.",
                "Check --gt and --split: every sequence of the split needs its Annotations folder.")
        return list(self._frames[sequence])

    def annotation_path(self, sequence: str, frame: str) -> Path:
        return self._annotation_dir(sequence) / f"{frame}.png"

    def image_path(self, sequence: str, frame: str) -> Path:
        folder = self.image_dir(sequence)
        return find_image(folder, frame, (".jpg", ".png", ".jpeg")) or folder / f"{frame}.jpg"

    def describe(self) -> str:
        return f"{self.title} {self.split} ({self.resolution}) at {self.root}"
