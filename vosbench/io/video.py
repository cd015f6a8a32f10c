"""A video as methods receive it: lazily read frames plus what the track gives about its objects.

It lives in the io layer so that both the tracks (which build videos) and the methods
(which consume them) share one definition.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

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
