"""The interfaces every method implements, baseline or third-party.

A method never sees ground truth beyond what its track gives it: the first-frame
masks (semi-supervised), nothing (unsupervised) or scribbles (interactive).
Masks are ``(H, W) uint8`` maps of object ids, 0 = background.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Mapping, Sequence

import numpy as np


class LazyFrames(Sequence[np.ndarray]):
    """Frames of a video read on demand: ``frames[t]`` is ``(H, W, 3) uint8`` RGB."""

    def __init__(self, reader, names: Sequence[str]):
        self._reader = reader
        self._names = list(names)

    def __len__(self) -> int:
        return len(self._names)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self._reader(n) for n in self._names[index]]
        return self._reader(self._names[index])


@dataclass
class Video:
    """One sequence as a method sees it.

    frames: the RGB frames (a lazy sequence; never load them all as float).
    frame_names: file stems, used to name output masks.
    given_masks: semi-supervised only: frame index -> id map of the objects whose
        first mask is given on that frame (frame 0 in DAVIS; later frames too in
        YouTube-VOS, where objects may appear mid-video). Pixels of objects not
        introduced on that frame are 0.
    object_ids: every object id the method must track (semi-supervised).
    """

    name: str
    frames: Sequence[np.ndarray]
    frame_names: list[str]
    given_masks: dict[int, np.ndarray] = field(default_factory=dict)
    object_ids: list[int] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        first = self.frames[0]
        return int(first.shape[0]), int(first.shape[1])


class Method(ABC):
    """Base of all methods. Subclasses set `name` and `track` and accept `device`."""

    name: ClassVar[str] = "method"
    track: ClassVar[str] = "semi"   # "semi", "unsupervised" or "interactive"

    def __init__(self, device: str = "auto", **options: Any):
        self.device = device
        self.options = dict(options)

    def describe(self) -> str:
        return f"{self.name} ({self.track})"


class SemiSupervisedMethod(Method):
    track: ClassVar[str] = "semi"

    @abstractmethod
    def segment(self, video: Video) -> Iterator[np.ndarray]:
        """Yield one ``(H, W) uint8`` id map per frame, frame 0 first."""


class UnsupervisedMethod(Method):
    track: ClassVar[str] = "unsupervised"
    max_proposals: ClassVar[int] = 20

    @abstractmethod
    def segment(self, video: Video) -> Iterator[np.ndarray]:
        """Yield one id map per frame; ids 1..max_proposals are object proposals."""


class InteractiveMethod(Method):
    track: ClassVar[str] = "interactive"

    @abstractmethod
    def interact(self, video: Video, scribbles: Mapping[str, Any],
                 previous_masks: np.ndarray | None) -> np.ndarray:
        """Answer one interaction.

        scribbles: the DAVIS scribble dict of this interaction
            (``{"sequence", "scribbles": [per-frame lists]}``).
        previous_masks: ``(T, H, W) uint8`` masks the method returned last time, or None.
        Returns ``(T, H, W) uint8`` masks of the whole sequence.
        """
