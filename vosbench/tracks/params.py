"""Evaluation parameters in one typed object; defaults equal the official protocol."""
from __future__ import annotations

import enum
from dataclasses import asdict, dataclass

from vosbench.metrics.boundary import BOUNDARY_THRESHOLD


class Track(str, enum.Enum):
    SEMI = "semi"
    UNSUPERVISED = "unsupervised"
    INTERACTIVE = "interactive"


@dataclass(frozen=True)
class EvalParams:
    """How a results folder is scored.

    track: semi-supervised or unsupervised protocol.
    skip_first_last: drop the first and last frame (official semi-supervised DAVIS).
    apply_void: ignore ground-truth pixels labelled 255 (official unsupervised DAVIS).
    annotated_only: score only frames with ground truth, each object from the frame
        after its first annotation (YouTube-VOS style).
    max_proposals: most proposals an unsupervised result may hold.
    decay_uint8_ids: reproduce the official Decay bug (uint8 bin edges, NaN past 256 frames).
    """

    track: Track = Track.SEMI
    bound_th: float = BOUNDARY_THRESHOLD
    skip_first_last: bool = True
    apply_void: bool = False
    annotated_only: bool = False
    max_proposals: int = 20
    decay_uint8_ids: bool = False

    @classmethod
    def official(cls, track: Track | str, youtubevos: bool = False) -> "EvalParams":
        """The official protocol of a track (DAVIS 2017 toolkit; YouTube-VOS style if asked)."""
        track = Track(track)
        if track is Track.UNSUPERVISED:
            return cls(track=track, skip_first_last=False, apply_void=True)
        if youtubevos:
            return cls(track=track, skip_first_last=False, apply_void=False, annotated_only=True)
        return cls(track=track)

    def describe(self) -> str:
        """One paragraph naming every rule applied, printed with every report."""
        parts = [f"track={self.track.value}"]
        if self.track is Track.UNSUPERVISED:
            parts.append(f"proposals<= {self.max_proposals}, Hungarian matching on mean J&F over frames")
        parts.append("first and last frame excluded" if self.skip_first_last else "all frames")
        if self.annotated_only:
            parts.append("annotated frames only, each object from the frame after its first annotation")
        parts.append("void (255) ignored" if self.apply_void else "void not applied")
        parts.append(f"F boundary tolerance {self.bound_th} of the diagonal (disk)")
        parts.append("Recall: fraction of frames > 0.5; Decay: 4 quantised bins sharing endpoints"
                     + (" (uint8 bin edges as the official code)" if self.decay_uint8_ids else ""))
        parts.append("global = mean over objects")
        return "; ".join(parts)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["track"] = self.track.value
        return d
