"""Evaluation parameters in one typed object; defaults equal the official protocol."""
from __future__ import annotations

import enum
from dataclasses import asdict, dataclass

from vosbench.io.factory import DatasetKind
from vosbench.metrics.boundary import BOUNDARY_THRESHOLD


class Track(str, enum.Enum):
    SEMI = "semi"
    UNSUPERVISED = "unsupervised"
    INTERACTIVE = "interactive"


@dataclass(frozen=True)
class EvalParams:
    """How a results folder is scored.

    track: semi-supervised or unsupervised protocol.
    skip_first_last: drop the first and last frame (official semi-supervised DAVIS; every DAVIS 2016 track).
    apply_void: ignore ground-truth pixels labelled 255 (official unsupervised DAVIS 2017).
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
    def official(cls, track: Track | str, dataset: DatasetKind | str | None = None) -> "EvalParams":
        """The official protocol of a track on a kind of dataset (the one place that decides it).

        DAVIS 2016: one toolkit for every track, so the unsupervised track is scored like the
            semi-supervised one: frames 1..n-2, binary masks (every proposal is the one foreground
            object), no void. The official DAVIS 2016 leaderboard, unsupervised methods such as
            FSEG included, is computed this way.
        DAVIS 2017 and any other kind (None = not said): the DAVIS 2017 toolkit. Semi-supervised
            drops the first and last frame; unsupervised scores all frames and ignores void.
        YouTube-VOS, semi-supervised: annotated frames only, each object from the frame after
            its first annotation.
        """
        track = Track(track)
        kind = DatasetKind(dataset) if dataset is not None else None
        if kind is DatasetKind.DAVIS2016:
            return cls(track=track)
        if track is Track.UNSUPERVISED:
            return cls(track=track, skip_first_last=False, apply_void=True)
        if kind is DatasetKind.YOUTUBEVOS:
            return cls(track=track, skip_first_last=False, apply_void=False, annotated_only=True)
        return cls(track=track)

    def describe(self) -> str:
        """One paragraph naming every rule applied, printed with every report."""
        parts = [f"track={self.track.value}"]
        if self.track is Track.UNSUPERVISED:
            parts.append(f"proposals<= {self.max_proposals}, Hungarian matching on mean J&F over frames")
        if not self.skip_first_last:
            parts.append("all frames")
        elif self.track is Track.UNSUPERVISED:
            parts.append("first and last frame excluded (the DAVIS 2016 toolkit's rule for every track)")
        else:
            parts.append("first and last frame excluded")
        if self.annotated_only:
            parts.append("annotated frames only, each object from the frame after its first annotation")
        parts.append("void (255) ignored" if self.apply_void else "void not applied")
        parts.append(f"F boundary tolerance {self.bound_th} of the diagonal (disk)")
        parts.append("Recall: fraction of frames > 0.5; Decay: 4 quantised bins sharing endpoints"
                     + (" (uint8 bin edges as the official code)" if self.decay_uint8_ids else ""))
        parts.append("global = mean over objects")
        return "; ".join(parts)

    def metric_options(self) -> dict[str, dict]:
        """The options of the built-in metrics this protocol sets (F's tolerance, the official Decay bug)."""
        return {"J": {"decay_uint8_ids": self.decay_uint8_ids},
                "F": {"bound_th": self.bound_th, "decay_uint8_ids": self.decay_uint8_ids}}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["track"] = self.track.value
        return d
