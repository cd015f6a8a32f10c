"""The interfaces every method implements, baseline or third-party.

A method never sees ground truth beyond what its track gives it: the first-frame
masks (semi-supervised), nothing (unsupervised) or scribbles (interactive).
Masks are ``(H, W) uint8`` maps of object ids, 0 = background.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Iterator, Mapping

import numpy as np

from vosbench.io.video import LazyFrames, Video  # noqa: F401  (re-exported: part of the method interface)


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
    # Options under which a pipeline runs this method to carry masks it made itself (proposals,
    # masks drawn from scribbles) rather than annotations, e.g. to turn off learning from them.
    propagator_options: ClassVar[Mapping[str, Any]] = {}

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
