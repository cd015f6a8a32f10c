"""A timed interactive session: scribbles out, masks in, scores and the next scribble, per sample.

The DAVIS interactive framework's protocol, with the differences listed here:

- A sample is a sequence and its first scribble: the dataset's scribble file
  ``Scribbles/<sequence>/<NNN>.json`` where present (one sample per file, index
  NNN), else one sample (index 1) whose first scribble the robot draws on an
  empty prediction, on the frame of lowest J (the first frame showing the most
  objects). *Not in the framework*, which always has human scribbles.
- Each interaction hands the method the scribbles drawn since its last answer
  (the framework's ``get_scribbles(only_last=True)``) and its previous masks;
  only the time from handing them out to receiving the masks is counted (the
  sample's frames are read before, as the framework's users hold theirs).
- At most `max_interactions` (default 8, at most 16) per sample, and a budget of
  ``max_time x objects`` seconds per sample (default 240 s per object, at most
  600). A submission that takes the sample past its budget is dropped with a
  warning and ends the sample; missing interactions keep the previous scores at
  zero time. Two budget rules (`SessionParams.budget_rule`): ``METHOD_TIME``
  (vosbench's default here) charges the counted method time only;
  ``WALL_CLOCK`` (the framework's, and the default of the drop-in
  ``vosbench.interactive.DavisInteractiveSession``) charges the wall-clock time
  since the sample started, which also bills the method for the robot and the
  scoring and depends on the speed of the machine running the evaluation.
- After each interaction, J and F of every object on every frame (no void); the
  next scribble goes on the frame of lowest J&F (averaged over objects) among the
  frames the robot has not yet scribbled in this sample (every frame once all
  are used); the first, dataset-provided scribble's frame is not tracked, as in
  the framework, while a robot-drawn first scribble's frame is.
- The robot draws the official scribbles (`SessionParams.seed` None, the
  challenges' tie-break) or, with an integer seed, another deterministic robot
  that is not the official one; with an injected clock the whole session
  (scribbles, report, summary) is byte-identical from run to run.
- Every rule above is applied by one step engine, `engine.SampleRun`, which the
  drop-in session drives too.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import pandas as pd

from vosbench.errors import VosbenchError
from vosbench.io.datasets import Dataset
from vosbench.io.video import LazyFrames, Video
from vosbench.io.scribbles import Scribbles, dumps_scribbles, read_scribbles
from vosbench.io.atomic import atomic_write
from vosbench.metrics.interactive import Curve
from vosbench.tracks.interactive.report import (REPORT_COLUMNS, SampleInfo, dumps_summary,
                                                summarize)
from vosbench.tracks.interactive.engine import BudgetRule, Metric, SampleRun, SubmissionError, nb_objects_of
from vosbench.tracks.interactive.robot import RobotParams, ScribbleRobot

log = logging.getLogger(__name__)

MAX_INTERACTIONS_CAP = 16
MAX_TIME_CAP = 600.0
_SCRIBBLE_FILE = re.compile(r"^(\d+)\.json$")


@dataclass(frozen=True)
class SessionParams:
    """The rules of a session; defaults are the DAVIS interactive challenge's."""

    max_interactions: int = 8
    max_time: float | None = 240.0
    threshold: float = 60.0
    # None: the official scribbles (the challenges' tie-break); an integer: another robot, not the official one
    seed: int | None = None
    robot: RobotParams = field(default_factory=RobotParams)
    budget_rule: BudgetRule = BudgetRule.METHOD_TIME
    metric: Metric = Metric.J_AND_F

    def __post_init__(self) -> None:
        if not 1 <= self.max_interactions <= MAX_INTERACTIONS_CAP:
            raise VosbenchError(f"max_interactions must be within 1..{MAX_INTERACTIONS_CAP} "
                                f"(the framework's cap), got {self.max_interactions}")
        if self.max_time is not None and not 0 < self.max_time <= MAX_TIME_CAP:
            raise VosbenchError(f"max_time must be within (0, {MAX_TIME_CAP:g}] seconds per object "
                                f"(the framework's cap), got {self.max_time}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise VosbenchError(f"seed must be None (the official scribbles) or an integer, got {self.seed!r}")

    def describe(self) -> str:
        """The rules in one paragraph (printed with the results)."""
        budget = "no time limit" if not self.max_time else (
            f"{self.max_time:g} s per object and sample, charged with "
            + ("the wall-clock time since the sample started (the framework's rule)"
               if self.budget_rule is BudgetRule.WALL_CLOCK else
               "the method's answer times only (vosbench's rule; the framework charges wall-clock time)"))
        robot = ("the official scribbles (the challenges' tie-break, scikit-image <= 0.18)" if self.seed is None
                 else f"tie-break seed {self.seed} (not the official scribbles)")
        name = {"J_AND_F": "J&F", "J": "J", "F": "F"}[self.metric.value]
        return (f"DAVIS interactive, {self.max_interactions} interactions per sample, {budget}; the robot "
                f"scribbles the frame of lowest {name} it has not used yet, {robot}; "
                f"{name}@{self.threshold:g}s read off the {name}-vs-time curve, AUC = its area / its last time")


class InteractiveAnswerer(Protocol):
    """What a session plays against: `vosbench.methods.InteractiveMethod` or anything shaped like it."""

    def interact(self, video: Any, scribbles: Scribbles, previous_masks: np.ndarray | None) -> np.ndarray: ...



@dataclass
class Sample:
    """A sequence and its first scribble (None: the robot draws it)."""

    sequence: str
    scribble_idx: int = 1
    first_scribble: Scribbles | None = None


@dataclass
class InteractiveResult:
    """Everything a session produced. `scribbles[(sequence, idx)]` lists the scribbles handed out, in order."""

    report: pd.DataFrame
    summary: dict[str, Any]
    curve: Curve
    params: SessionParams
    method: str
    samples: list[SampleInfo]
    scribbles: dict[tuple[str, int], list[Scribbles]]
    dropped: list[tuple[str, int, int]]

    @property
    def jf_at_threshold(self) -> float:
        return float(self.summary["metric_at_threshold"][self.params.metric.value])

    @property
    def auc(self) -> float:
        return float(self.summary["auc"])

    def format_table(self) -> str:
        name = {"J_AND_F": "J&F", "J": "J", "F": "F"}[self.params.metric.value]
        lines = [f"method {self.method}: {len(self.samples)} sample(s)",
                 f"protocol: {self.params.describe()}",
                 f"AUC      {self.auc:.4f}",
                 f"{name}@{self.params.threshold:g}s {self.jf_at_threshold:.4f}",
                 f"time (s)  {name}"]
        lines += [f"{t:8.3f}  {v:.4f}" for t, v in zip(self.curve.time, self.curve.value)]
        if self.dropped:
            lines.append(f"{len(self.dropped)} submission(s) dropped past the time budget")
        return "\n".join(lines)

    def write(self, out: str | Path) -> dict[str, Path]:
        """Write report.csv, summary.json and the scribbles handed out (``scribbles/<seq>/<idx>/<k>.json``)."""
        out = Path(out)
        paths = {"report": out / "report.csv", "summary": out / "summary.json"}
        atomic_write(paths["report"], self.report.to_csv(index=False, float_format="%.17g"))
        atomic_write(paths["summary"], dumps_summary(self.summary))
        for (sequence, idx), given in self.scribbles.items():
            for k, scribble in enumerate(given, start=1):
                atomic_write(out / "scribbles" / sequence / f"{idx:03d}" / f"{k:02d}.json", dumps_scribbles(scribble))
        return paths


def find_samples(dataset: Dataset, scribbles_root: str | Path | None = None,
                 sequences: Sequence[str] | None = None) -> list[Sample]:
    """One sample per scribble file of each sequence, or one robot-started sample where there is none.

    scribbles_root: folder of ``<sequence>/<NNN>.json`` files; default ``<dataset root>/Scribbles``.
    """
    root = Path(scribbles_root) if scribbles_root is not None else Path(dataset.root) / "Scribbles"
    samples: list[Sample] = []
    for name in sequences if sequences is not None else dataset.sequence_names():
        folder = root / name
        files = []
        if folder.is_dir():
            files = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _SCRIBBLE_FILE.match(p.name)))
        if not files:
            samples.append(Sample(name, 1, None))
            continue
        n_frames = len(dataset.frame_names(name))
        for idx, path in files:
            samples.append(Sample(name, idx, read_scribbles(path, nb_frames=n_frames)))
    return samples


@dataclass
class _SampleOutcome:
    info: SampleInfo
    rows: pd.DataFrame
    given: list[Scribbles]
    dropped: list[int]

    def to_json(self) -> str:
        return json.dumps({"info": dataclasses.asdict(self.info), "given": self.given, "dropped": self.dropped,
                           "rows": self.rows.to_dict(orient="list")}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "_SampleOutcome":
        data = json.loads(text)
        rows = pd.DataFrame(data["rows"], columns=REPORT_COLUMNS)
        return cls(SampleInfo(**data["info"]), rows, data["given"], list(data["dropped"]))


def _play_sample(dataset: Dataset, method: InteractiveAnswerer, sample: Sample, params: SessionParams,
                 robot: ScribbleRobot, clock: Callable[[], float], session_id: str, method_name: str,
                 bar) -> _SampleOutcome:
    seq = sample.sequence
    gt = dataset.read_annotations(seq)
    names = dataset.frame_names(seq)
    nb_objects = nb_objects_of(gt)
    if nb_objects == 0:
        raise VosbenchError(f"sequence {seq} of {dataset.describe()} has no object in its ground truth")
    # The frames are read (uint8) before the clock starts: reading JPEGs is not the method's time,
    # as in the framework, where the method holds the frames.
    frames = list(LazyFrames(lambda name: dataset.read_frame(seq, name), names))
    video = Video(name=seq, frames=frames, frame_names=names, object_ids=list(range(1, nb_objects + 1)))
    run = SampleRun(seq, sample.scribble_idx, gt, sample.first_scribble, robot,
                    max_interactions=params.max_interactions, max_time=params.max_time,
                    budget_rule=params.budget_rule, metric=params.metric, session_id=session_id,
                    nb_objects=nb_objects,
                    # the method-time rule never reads the clock beyond the answers' own timing
                    clock=clock if params.budget_rule is BudgetRule.WALL_CLOCK else None)
    previous: np.ndarray | None = None
    while not run.finished():
        scribbles = run.scribbles(only_last=True)
        start = clock()
        masks = method.interact(video, scribbles, previous)
        end = clock()
        bar.update(1)
        try:
            step = run.submit(masks, end - start, now=end)
        except SubmissionError as exc:
            raise VosbenchError(f"method {method_name!r} answered badly: {exc}") from exc
        if not step.accepted:
            break
        previous = run.previous_masks
    bar.update(params.max_interactions - run.interaction)
    return _SampleOutcome(SampleInfo(seq, sample.scribble_idx, nb_objects), run.report(), run.given,
                          list(run.dropped))


def _checkpoint_key(params: SessionParams, method_name: str, session_id: str) -> str:
    return json.dumps({"params": dataclasses.asdict(params), "method": method_name, "session_id": session_id},
                      sort_keys=True, default=str)


def run_session(dataset: Dataset, method: InteractiveAnswerer, params: SessionParams | None = None,
                samples: Sequence[Sample] | None = None, scribbles_root: str | Path | None = None,
                clock: Callable[[], float] = time.perf_counter, progress: bool = False,
                session_id: str | None = None,
                checkpoint_dir: str | Path | None = None) -> InteractiveResult:
    """Play the interactive protocol with `method` on every sample of `dataset`.

    clock: the timer of the method's answers (inject a fake one for reproducible reports).
    checkpoint_dir: each finished sample is stored there, and a re-run with the same
        method, session id and parameters takes finished samples from it instead of
        playing them again (their timings are those measured the first time).
    """
    from tqdm.auto import tqdm

    params = params or SessionParams()
    samples = list(samples) if samples is not None else find_samples(dataset, scribbles_root)
    robot = ScribbleRobot(params.robot, seed=params.seed)
    method_name = getattr(method, "name", type(method).__name__)
    session_id = session_id or (method_name if params.seed is None else f"{method_name}-seed{params.seed}")
    store = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if store is not None:
        key = _checkpoint_key(params, method_name, session_id)
        key_file = store / "session.json"
        if not key_file.is_file() or key_file.read_text() != key:
            for old in sorted((store / "samples").glob("*.json")) if (store / "samples").is_dir() else []:
                old.unlink()
            atomic_write(key_file, key)
    outcomes: list[_SampleOutcome] = []
    bar = tqdm(total=len(samples) * params.max_interactions, disable=not progress, unit="interaction",
               desc=f"interactive {method_name}")
    try:
        for sample in samples:
            saved = store / "samples" / f"{sample.sequence}__{sample.scribble_idx:03d}.json" if store else None
            if saved is not None and saved.is_file():
                outcome = _SampleOutcome.from_json(saved.read_text())
                bar.update(params.max_interactions)
                log.debug("resumed %s #%d from %s", sample.sequence, sample.scribble_idx, saved)
            else:
                outcome = _play_sample(dataset, method, sample, params, robot, clock, session_id, method_name,
                                       bar)
                if saved is not None:
                    atomic_write(saved, outcome.to_json())
            outcomes.append(outcome)
    finally:
        bar.close()
    tables = [o.rows for o in outcomes if len(o.rows)]
    report = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=REPORT_COLUMNS)
    infos = [o.info for o in outcomes]
    summary, curve = summarize(report, infos, params.max_interactions, params.max_time, params.threshold,
                               metric=params.metric.value)
    return InteractiveResult(report=report, summary=summary, curve=curve, params=params, method=method_name,
                             samples=infos, scribbles={(o.info.sequence, o.info.scribble_idx): o.given
                                                       for o in outcomes},
                             dropped=[(o.info.sequence, o.info.scribble_idx, i) for o in outcomes for i in o.dropped])
