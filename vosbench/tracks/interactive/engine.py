"""The step engine of the interactive protocol: one sample, scribbles out, masks in.

`SampleRun` holds everything one sample of a session knows (its ground truth, the
scribbles handed out, the frames the robot used, the report rows, the time spent) and
applies the DAVIS interactive framework's rules at each submission: the time budget,
J and F of every object on every frame, the next frame to scribble (the framework's
argsort, `next_frame`) and the robot's scribbles there. ``run_session`` (vosbench's
loop), the drop-in ``vosbench.interactive.DavisInteractiveSession`` and a server
speaking the framework's protocol all drive this one class, so they cannot disagree.

A submission is checked before anything changes: a bad one raises `SubmissionError`
(a ``ValueError``) naming what is wrong, and the sample stays as it was, ready for a
corrected submission.

Budget rules (`BudgetRule`), per sample ``max_time x objects`` seconds:

- ``WALL_CLOCK``, the framework's: the time since the sample started when the masks
  arrive (the method is billed for everything, the robot and the scoring included);
- ``METHOD_TIME``, vosbench's: the sum of the method's answer times only, which does
  not depend on the speed of the machine running the evaluation.

A submission past the budget (strictly greater) still uses up an interaction, has no
report rows and ends the sample.
"""
from __future__ import annotations

import copy
import enum
import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from vosbench.errors import VosbenchError
from vosbench.io.scribbles import Scribbles, annotated_frames, fuse_scribbles, validate_scribbles
from vosbench.metrics.frames import object_frame_scores
from vosbench.tracks.interactive.next_frame import allowed_frames, next_frame
from vosbench.tracks.interactive.report import REPORT_COLUMNS, interaction_rows
from vosbench.tracks.interactive.robot import ScribbleRobot

log = logging.getLogger(__name__)


class BudgetRule(enum.Enum):
    """How a sample's time budget is charged."""

    WALL_CLOCK = "wall-clock"     # the framework's: time since the sample started
    METHOD_TIME = "method-time"   # vosbench's: the method's answer times only


class Metric(enum.Enum):
    """The measure the next frame is chosen by (the framework's ``metric_to_optimize``)."""

    J = "J"
    F = "F"
    J_AND_F = "J_AND_F"

    @property
    def column(self) -> str:
        return {"J": "jaccard", "F": "contour", "J_AND_F": "j_and_f"}[self.value]


class SubmissionError(VosbenchError, ValueError):
    """A submission the protocol cannot take; nothing was changed."""


@dataclass
class Step:
    """What one submission did."""

    interaction: int
    accepted: bool                       # False: past the time budget, not scored
    rows: pd.DataFrame | None            # its report rows (None when not accepted)
    frame: int | None = None             # the frame the robot scribbled next
    scribbles: Scribbles | None = None   # the robot's new scribbles (None when the sample is over)


def check_masks(masks: Any, shape: tuple[int, ...], nb_objects: int, where: str) -> np.ndarray:
    """Masks as the framework takes them: ``(frames, H, W)`` integer ids in 0..nb_objects
    (integer arrays, or float arrays holding whole numbers). Returns them as uint8."""
    try:
        arr = np.asarray(masks)
    except Exception as exc:  # noqa: BLE001 - ragged lists and other non-arrays
        raise SubmissionError(f"{where}: the masks are not an array ({exc})") from exc
    if arr.shape != tuple(shape):
        raise SubmissionError(f"{where}: masks of shape {arr.shape}, expected {tuple(shape)} "
                              "(frames, height, width) of the sequence's ground truth")
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise SubmissionError(f"{where}: the masks hold NaN or infinite values; send integer object ids")
        if arr.size and not np.array_equal(arr, np.floor(arr)):
            raise SubmissionError(f"{where}: the masks hold non-integer values; send integer object ids "
                                  "(e.g. argmax over the object scores)")
    elif arr.dtype.kind not in "iu":
        raise SubmissionError(f"{where}: masks of dtype {arr.dtype}; send integer object ids")
    if arr.size:
        low, high = arr.min(), arr.max()
        if low < 0 or high > nb_objects:
            raise SubmissionError(f"{where}: mask ids {low}..{high} lie outside 0..{nb_objects} "
                                  f"(0 = background, 1..{nb_objects} = the sequence's objects)")
    return arr.astype(np.uint8)


def check_candidates(candidates: Iterable[int] | None, nb_frames: int, where: str) -> list[int] | None:
    """Frame candidates for the next scribble: None, or frame indices within 0..nb_frames-1."""
    if candidates is None:
        return None
    try:
        values = list(candidates)
    except TypeError as exc:
        raise SubmissionError(f"{where}: next_scribble_frame_candidates must be a list of frame indices, "
                              f"got {candidates!r}") from exc
    out = []
    for value in values:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise SubmissionError(f"{where}: frame candidate {value!r} is not an integer frame index")
        if not 0 <= int(value) < nb_frames:
            raise SubmissionError(f"{where}: frame candidate {int(value)} is out of range 0..{nb_frames - 1}")
        out.append(int(value))
    return out


def nb_objects_of(gt: np.ndarray) -> int:
    """Objects of a sequence: the largest id of its ground truth (255, void, excluded)."""
    ids = np.unique(gt)
    ids = ids[ids != 255]
    return int(ids.max()) if ids.size else 0


class SampleRun:
    """One sample of a session, played step by step.

    gt: ``(frames, H, W)`` ground truth. first_scribble: the dataset's scribble of the
    sample (its frame is not marked as used, as in the framework); None: the robot
    draws it on an empty prediction, on the frame of lowest J, and that frame is used.
    max_interactions None: no limit (then `max_time` must be set). clock: seconds,
    read at the start of the sample (wall-clock budget). resume: a `snapshot` of this
    sample, to go on where it stopped (a server keeps its samples between requests);
    the robot is not called again for the first scribble.
    """

    def __init__(self, sequence: str, scribble_idx: int, gt: np.ndarray, first_scribble: Scribbles | None,
                 robot: ScribbleRobot, *, max_interactions: int | None = 8, max_time: float | None = 240.0,
                 budget_rule: BudgetRule = BudgetRule.METHOD_TIME, metric: Metric = Metric.J_AND_F,
                 session_id: str = "session", nb_objects: int | None = None,
                 clock: Callable[[], float] | None = None, start_time: float | None = None,
                 resume: dict[str, Any] | None = None):
        if max_interactions is None and not max_time:
            raise VosbenchError("a sample needs max_interactions, max_time or both")
        self.sequence = str(sequence)
        self.scribble_idx = int(scribble_idx)
        self.gt = np.asarray(gt)
        if self.gt.ndim != 3:
            raise VosbenchError(f"ground truth of {sequence} must be (frames, H, W), got {self.gt.shape}")
        self.nb_frames = len(self.gt)
        self.nb_objects = int(nb_objects) if nb_objects is not None else nb_objects_of(self.gt)
        if self.nb_objects == 0:
            raise VosbenchError(f"sequence {sequence} has no object in its ground truth")
        self.robot = robot
        self.max_interactions = max_interactions
        self.max_time = max_time
        self.budget = float(max_time) * self.nb_objects if max_time else None
        self.budget_rule = budget_rule
        self.metric = metric
        self.session_id = session_id
        self.clock = clock
        self.start_time = start_time if start_time is not None else (clock() if clock is not None else 0.0)
        self.used_frames: list[int] = []
        self.rows: list[pd.DataFrame] = []
        self.previous_masks: np.ndarray | None = None
        if resume is not None:
            self._restore(resume)
            return
        if first_scribble is None:
            first = robot.interact(self.sequence, np.zeros_like(self.gt), self.gt, self.nb_objects)
            self.used_frames.extend(annotated_frames(first))
        else:
            first = validate_scribbles(copy.deepcopy(first_scribble), f"{sequence} scribble {scribble_idx}",
                                       self.nb_frames)
        self.last_scribbles: Scribbles = first
        self.all_scribbles: Scribbles = copy.deepcopy(first)
        self.given: list[Scribbles] = [copy.deepcopy(first)]
        self.interaction = 0
        self.spent = 0.0
        self.dropped: list[int] = []

    def snapshot(self) -> dict[str, Any]:
        """Where the sample stands, as JSON values: what a later submission needs (interactions
        played, time spent, frames used, drops, start time, scribbles handed out). The report
        rows and the previous masks are not in it: who resumes keeps its own record of those."""
        return {"interaction": self.interaction, "spent": self.spent, "used_frames": list(self.used_frames),
                "dropped": list(self.dropped), "start_time": self.start_time,
                "last_scribbles": copy.deepcopy(self.last_scribbles),
                "all_scribbles": copy.deepcopy(self.all_scribbles), "given": copy.deepcopy(self.given)}

    def _restore(self, state: dict[str, Any]) -> None:
        try:
            self.interaction = int(state["interaction"])
            self.spent = float(state["spent"])
            self.used_frames = [int(t) for t in state["used_frames"]]
            self.dropped = [int(i) for i in state["dropped"]]
            self.start_time = float(state["start_time"])
            self.last_scribbles = copy.deepcopy(state["last_scribbles"])
            self.all_scribbles = copy.deepcopy(state["all_scribbles"])
            self.given = copy.deepcopy(state["given"])
        except (KeyError, TypeError, ValueError) as exc:
            raise VosbenchError(f"{self.sequence} #{self.scribble_idx}: not a snapshot of a sample ({exc})") from exc

    @property
    def where(self) -> str:
        return f"{self.sequence} #{self.scribble_idx} interaction {self.interaction + 1}"

    def scribbles(self, only_last: bool = True) -> Scribbles:
        """A copy of the scribbles: the last ones handed out, or all of them fused."""
        return copy.deepcopy(self.last_scribbles if only_last else self.all_scribbles)

    def elapsed(self, now: float | None = None) -> float:
        if now is None:
            if self.clock is None:
                raise VosbenchError("this sample has no clock: give the time")
            now = self.clock()
        return float(now) - self.start_time

    def out_of_time(self, now: float | None = None) -> bool:
        """Whether the budget is spent (the framework's check before another interaction)."""
        if self.budget is None:
            return False
        if self.budget_rule is BudgetRule.WALL_CLOCK:
            return self.elapsed(now) > self.budget
        return self.spent > self.budget

    def finished(self, now: float | None = None) -> bool:
        """No further interaction: the last one was played, a submission was dropped, or time is up."""
        if self.max_interactions is not None and self.interaction >= self.max_interactions:
            return True
        if self.dropped:
            return True
        return self.budget_rule is BudgetRule.WALL_CLOCK and self.out_of_time(now)

    def report(self) -> pd.DataFrame:
        return pd.concat(self.rows, ignore_index=True) if self.rows else pd.DataFrame(columns=REPORT_COLUMNS)

    def check(self, masks: Any, candidates: Iterable[int] | None = None) -> tuple[np.ndarray, list[int] | None]:
        """The checks of `submit`, changing nothing."""
        if self.max_interactions is not None and self.interaction >= self.max_interactions:
            raise SubmissionError(f"{self.sequence} #{self.scribble_idx}: all {self.max_interactions} "
                                  "interactions were played; move to the next sample")
        arr = check_masks(masks, self.gt.shape, self.nb_objects, self.where)
        return arr, check_candidates(candidates, self.nb_frames, self.where)

    def submit(self, masks: Any, timing: float, now: float | None = None,
               candidates: Iterable[int] | None = None, draw_after_last: bool = False) -> Step:
        """Take the method's masks for the next interaction.

        timing: the method's time for this answer (the report's ``timing``). now: the
        clock when the masks arrived (wall-clock budget; default the clock's time).
        candidates: frames the next scribble may go on (None: all).
        draw_after_last: the robot scribbles even after the last interaction, as the
        framework does (its scribbles are then never used).
        """
        arr, candidates = self.check(masks, candidates)
        timing = float(timing)
        if not np.isfinite(timing) or timing < 0:
            raise SubmissionError(f"{self.where}: timing must be a finite number of seconds >= 0, got {timing}")
        if self.budget is not None:
            charged = self.elapsed(now) if self.budget_rule is BudgetRule.WALL_CLOCK else self.spent + timing
        self.interaction += 1
        if self.budget is not None and charged > self.budget:
            log.warning("%s #%d interaction %d: submitted after the time budget of %.0f s (%.1f s, %s); "
                        "this submission is dropped (not evaluated) and the sample ends", self.sequence,
                        self.scribble_idx, self.interaction, self.budget, charged, self.budget_rule.value)
            self.dropped.append(self.interaction)
            return Step(self.interaction, False, None)
        self.spent += timing
        j, f = object_frame_scores(self.gt, arr, range(1, self.nb_objects + 1))
        rows = interaction_rows(self.session_id, self.sequence, self.scribble_idx, self.interaction, timing, j, f)
        self.rows.append(rows)
        self.previous_masks = arr
        last = self.max_interactions is not None and self.interaction >= self.max_interactions
        if last and not draw_after_last:
            return Step(self.interaction, True, rows)
        if self.metric is Metric.J:
            per_frame = j.T.mean(axis=1)
        elif self.metric is Metric.F:
            per_frame = f.T.mean(axis=1)
        else:
            per_frame = (0.5 * j + 0.5 * f).T.mean(axis=1)
        frame = next_frame(per_frame, allowed_frames(self.nb_frames, self.used_frames, candidates))
        self.used_frames.append(frame)
        scribbles = self.robot.interact(self.sequence, arr, self.gt, self.nb_objects, frame=frame)
        self.last_scribbles = scribbles
        self.all_scribbles = fuse_scribbles(self.all_scribbles, scribbles)
        if not last:
            self.given.append(copy.deepcopy(scribbles))
        return Step(self.interaction, True, rows, frame, copy.deepcopy(scribbles))
