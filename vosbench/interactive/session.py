"""`DavisInteractiveSession`: the DAVIS interactive framework's session API, played by vosbench.

A script written for ``davisinteractive.session.DavisInteractiveSession`` runs with only
its import line changed (or unchanged, through ``python -m vosbench.interactive.compat``)::

    from vosbench.interactive import DavisInteractiveSession

    with DavisInteractiveSession(davis_root="DAVIS/2017", max_nb_interactions=8, max_time=240) as sess:
        while sess.next():
            sequence, scribbles, new_sequence = sess.get_scribbles(only_last=True)
            masks = model(sequence, scribbles)
            sess.submit_masks(masks)
        report = sess.get_report()
        summary = sess.get_global_summary(save_file="summary.json")

Defaults are the framework's, so the numbers compare with published ones:

- budget: ``max_time x objects`` seconds per sample, **wall clock since the sample
  started** (`BudgetRule.WALL_CLOCK`: the robot and the scoring are billed too);
  ``budget_rule=BudgetRule.METHOD_TIME`` charges the method's answer times only;
- the summary averages over **every sample of the subset** (objects weigh equally,
  samples never played count as zeros) and places the curve's last point at
  ``mean objects per sequence x max_time`` exactly where the framework does;
- the robot draws the official scribbles (``seed=None``); the next frame is the
  framework's argsort choice (`vosbench.tracks.interactive.next_frame`);
- ``max_time`` is capped at 600 s and ``max_nb_interactions`` at 16; the report file
  ``<report_save_dir>/result_<YYYYmmdd_HHMMSS>.csv`` (and ``.tmp.csv`` while running).

Each step is applied by vosbench's step engine (`vosbench.tracks.interactive.engine`),
the one ``run_session`` drives. A bad call (masks of the wrong shape, ids outside
0..objects, NaN, a call out of order, a frame candidate out of range, an unknown
sequence in ``samples``) raises an error naming the problem and leaves the session as
it was, able to go on.

Differences from the framework, all in what it refuses or cannot do: only
``host="localhost"`` (vosbench scores locally); a sequence without scribble files gets
one sample whose first scribble the robot draws (the framework needs the files).
"""
from __future__ import annotations

import binascii
import copy
import json
import logging
import os
import random
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from vosbench.errors import VosbenchError
from vosbench.io.atomic import atomic_write
from vosbench.io.datasets import Dataset
from vosbench.io.factory import DatasetKind, open_dataset
from vosbench.io.scribbles import read_scribbles
from vosbench.tracks.interactive.engine import BudgetRule, Metric, SampleRun, SubmissionError, nb_objects_of
from vosbench.tracks.interactive.report import REPORT_COLUMNS, SampleInfo, summarize
from vosbench.tracks.interactive.robot import RobotParams, ScribbleRobot

log = logging.getLogger(__name__)

MAX_TIME_CAP = 600
MAX_INTERACTIONS_CAP = 16
TIME_THRESHOLD = 60
_SCRIBBLE_FILE = re.compile(r"^(\d+)\.json$")


class SessionError(VosbenchError, RuntimeError):
    """A call the session cannot take in its current state; nothing was changed."""


class SequenceInfo(dict):
    """The framework's per-sequence metadata: name, set, num_frames, num_objects, image_size [W, H], num_scribbles."""


class Davis:
    """The dataset's sequence and object lists, as the framework's ``davisinteractive.dataset.Davis``.

    ``Davis.dataset[sequence]`` (name, set, num_frames, num_objects, image_size ``[W, H]``,
    num_scribbles) and ``Davis.sets[subset]`` list what the sessions opened so far found
    in their datasets (the framework ships fixed DAVIS 2017 lists instead). An instance
    reads one dataset: ``Davis(davis_root).load_annotations(sequence)``.
    """

    dataset: dict[str, SequenceInfo] = {}
    sets: dict[str, list[str]] = {}

    def __init__(self, davis_root: str | os.PathLike | None = None, kind: DatasetKind | str = DatasetKind.DAVIS2017,
                 resolution: str = "480p"):
        root = davis_root or os.environ.get("DATASET_DAVIS")
        if root is None:
            raise VosbenchError("no DAVIS folder: give davis_root or set the DATASET_DAVIS environment variable")
        self.davis_root = Path(root).expanduser()
        self.kind = DatasetKind(kind)
        self.resolution = resolution

    def _dataset(self, sequence: str) -> Dataset:
        return open_dataset(self.kind, self.davis_root, resolution=self.resolution, sequences=[sequence])

    def load_annotations(self, sequence: str, dtype=np.int64) -> np.ndarray:
        return self._dataset(sequence).read_annotations(sequence).astype(dtype)

    def load_images(self, sequence: str, dtype=np.uint8) -> np.ndarray:
        ds = self._dataset(sequence)
        return np.stack([ds.read_frame(sequence, name) for name in ds.frame_names(sequence)]).astype(dtype)

    def load_scribble(self, sequence: str, scribble_idx: int) -> dict[str, Any]:
        return read_scribbles(self.davis_root / "Scribbles" / sequence / f"{int(scribble_idx):03d}.json")


class LocalService:
    """What ``sess.connector.service`` holds in the framework's local mode: the robot, the limits."""

    def __init__(self, robot: ScribbleRobot, max_t: float | None, max_i: int | None, metric_to_optimize: str):
        self.robot = robot
        self.max_t = max_t
        self.max_i = max_i
        self.metric_to_optimize = metric_to_optimize
        self.time_threshold = TIME_THRESHOLD


class LocalConnector:
    def __init__(self, service: LocalService):
        self.service = service


def _open(kind: DatasetKind, davis_root: str | os.PathLike | None, subset: str, resolution: str) -> Dataset:
    root = davis_root or os.environ.get("DATASET_DAVIS")
    if root is None:
        from vosbench.io.synthetic import default_dataset_root

        root = default_dataset_root()
        kind = DatasetKind.DAVIS2017
        log.info("no davis_root and no DATASET_DAVIS: the session plays vosbench's embedded synthetic dataset (%s)",
                 root)
    root = Path(root).expanduser()
    if subset == "trainval":
        names: list[str] = []
        for part in ("train", "val"):
            names += [n for n in open_dataset(kind, root, split=part, resolution=resolution).sequence_names()
                      if n not in names]
        return open_dataset(kind, root, split="trainval", resolution=resolution, sequences=names)
    return open_dataset(kind, root, split=subset, resolution=resolution)


class DavisInteractiveSession:
    """The framework's session (constructor, context manager, ``next``, ``get_scribbles``,
    ``submit_masks``, ``get_report``, ``get_global_summary``) on vosbench's step engine.

    vosbench's own arguments: dataset (the kind of `davis_root`: davis2017 by default,
    davis2016), resolution, seed (robot tie-break: None = the official scribbles),
    budget_rule, scribbles_root (default ``<davis_root>/Scribbles``), clock (seconds;
    inject one for reproducible timings), session_id (default random, as the framework's).
    """

    def __init__(self, host: str = "localhost", user_key: str | None = None,
                 davis_root: str | os.PathLike | None = None, subset: str = "val", shuffle: bool = False,
                 max_time: float | None = None, max_nb_interactions: int | None = 5,
                 metric_to_optimize: str = "J_AND_F", report_save_dir: str | os.PathLike | None = None, *,
                 dataset: DatasetKind | str = DatasetKind.DAVIS2017, resolution: str = "480p",
                 seed: int | None = None, budget_rule: BudgetRule = BudgetRule.WALL_CLOCK,
                 scribbles_root: str | os.PathLike | None = None, clock: Callable[[], float] = time.time,
                 session_id: str | None = None, robot_parameters: dict[str, Any] | None = None):
        if host != "localhost":
            raise VosbenchError(f"host {host!r}: vosbench evaluates locally only (host='localhost'); the "
                                "challenge server is reached with the davisinteractive package itself")
        if subset not in ("train", "val", "trainval"):
            raise VosbenchError(f"subset must be 'train', 'val' or 'trainval' for a local session, got {subset!r}")
        try:
            self._metric = Metric(metric_to_optimize)
        except ValueError:
            raise VosbenchError(f"metric_to_optimize must be 'J', 'F' or 'J_AND_F', got {metric_to_optimize!r}")
        self.davis_root = davis_root
        self.subset = subset
        self.shuffle = shuffle
        self.max_time = min(max_time, MAX_TIME_CAP) if max_time is not None else None
        self.max_nb_interactions = (min(max_nb_interactions, MAX_INTERACTIONS_CAP)
                                    if max_nb_interactions is not None else None)
        if self.max_time is None and self.max_nb_interactions is None:
            raise VosbenchError("max_time and max_nb_interactions cannot both be None")
        self.metric_to_optimize = metric_to_optimize
        self.user_key = user_key
        self.session_key = session_id or binascii.hexlify(os.urandom(32)).decode()
        self.dataset_kind = DatasetKind(dataset)
        self.resolution = resolution
        self.budget_rule = BudgetRule(budget_rule)
        self.scribbles_root = scribbles_root
        self.clock = clock
        self.report_save_dir = Path(report_save_dir or os.getcwd())
        self.report_save_dir.mkdir(parents=True, exist_ok=True)
        self.report_name = "result_%s" % datetime.now().strftime("%Y%m%d_%H%M%S")
        robot = ScribbleRobot(RobotParams(**(robot_parameters or {})), seed=seed)
        self.connector = LocalConnector(LocalService(robot, self.max_time, self.max_nb_interactions,
                                                     metric_to_optimize))
        self.samples: list[tuple[str, int]] | None = None
        self.sample_idx: int | None = None
        self.interaction_nb: int | None = None
        self.sample_start_time: float | None = None
        self.sample_scribbles: dict | None = None
        self.sample_last_scribble: dict | None = None
        self.interaction_start_time: float | None = None
        self.running_model = False
        self.running = True
        self.global_summary: dict[str, Any] = {}
        self._dataset: Dataset | None = None
        self._sequences: dict[str, SequenceInfo] = {}
        self._subset_samples: list[SampleInfo] = []
        self._first: dict[tuple[str, int], Path | None] = {}
        self._run: SampleRun | None = None
        self._done: list[pd.DataFrame] = []

    # ---------------------------------------------------------------------------- setup ----

    def __enter__(self) -> "DavisInteractiveSession":
        self._dataset = _open(self.dataset_kind, self.davis_root, self.subset, self.resolution)
        root = Path(self.scribbles_root) if self.scribbles_root is not None else Path(self._dataset.root) / "Scribbles"
        samples: list[tuple[str, int]] = []
        for name in self._dataset.sequence_names():
            gt = self._dataset.read_annotations(name)
            folder = root / name
            files = sorted((int(m.group(1)), p) for p in folder.iterdir()
                           if (m := _SCRIBBLE_FILE.match(p.name))) if folder.is_dir() else []
            if not files:
                files = [(1, None)]
            info = SequenceInfo(name=name, set=self.subset, num_frames=int(len(gt)), num_objects=nb_objects_of(gt),
                                image_size=[int(gt.shape[2]), int(gt.shape[1])], num_scribbles=len(files))
            self._sequences[name] = info
            for idx, path in files:
                samples.append((name, idx))
                self._first[(name, idx)] = path
                self._subset_samples.append(SampleInfo(name, idx, info["num_objects"]))
        Davis.dataset.update(self._sequences)
        Davis.sets[self.subset] = list(self._sequences)
        if self.shuffle:
            random.shuffle(samples)
        self.samples = samples
        self.sample_idx = -1
        self.interaction_nb = -1
        log.info("started a session with %d samples of %s", len(samples), self._dataset.describe())
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        return None

    def _require_started(self) -> None:
        if self.samples is None:
            raise SessionError("the session has not started: use it as `with DavisInteractiveSession(...) as sess:`")

    def _sample(self, index: int) -> tuple[str, int]:
        try:
            sequence, scribble_idx = self.samples[index]
        except (TypeError, ValueError) as exc:
            raise SessionError(f"sample {index} of sess.samples is {self.samples[index]!r}, not a "
                               "(sequence, scribble_idx) pair") from exc
        if sequence not in self._sequences:
            raise SessionError(f"unknown sequence {sequence!r} in sess.samples: the {self.subset} subset of "
                               f"{self._dataset.describe()} has {sorted(self._sequences)}")
        if (sequence, int(scribble_idx)) not in self._first:
            raise SessionError(f"sequence {sequence!r} has no scribble {scribble_idx} (it has "
                               f"{sorted(i for s, i in self._first if s == sequence)})")
        return sequence, int(scribble_idx)

    # ----------------------------------------------------------------------------- steps ----

    def next(self) -> bool:
        """Move on to the next interaction, or the next sample; False once every sample is done."""
        self._require_started()
        if self.running_model:
            raise SessionError("next() was called after get_scribbles() without submit_masks(): submit the masks "
                               "of this interaction first")
        now = self.clock()
        change = self.sample_idx < 0
        if self.max_nb_interactions and self.interaction_nb >= self.max_nb_interactions:
            change = True
            log.info("maximum number of interactions reached")
        if self.max_time and self.sample_start_time is not None and 0 <= self.sample_idx < len(self.samples):
            sequence, _ = self.samples[self.sample_idx]
            budget = self.max_time * self._sequences[sequence]["num_objects"]
            if self.budget_rule is BudgetRule.WALL_CLOCK:
                over = now - self.sample_start_time > budget
            else:
                over = self._run is not None and (self._run.spent > budget or bool(self._run.dropped))
            if over:
                change = True
                log.info("maximum time of the sample reached")
        if self._run is not None and self._run.dropped and self.budget_rule is BudgetRule.METHOD_TIME:
            change = True
        if change:
            following = self.sample_idx + 1
            if following < len(self.samples):
                self._sample(following)    # an unknown sequence is refused before anything moves
            self._close_run()
            self.sample_idx = following
            self.interaction_nb = 0
            self.sample_start_time = self.clock()
            self.sample_scribbles = None
            self.sample_last_scribble = None
        end = self.sample_idx >= len(self.samples)
        if end:
            if self.running:
                self._finish()
        else:
            if change:
                log.info("start of sequence %s", self.samples[self.sample_idx][0])
            self._write_report(tmp=True)
        return not end

    def get_scribbles(self, only_last: bool = False) -> tuple[str, dict, bool]:
        """``(sequence, scribbles, new_sequence)``: the scribbles of this interaction (all of the sample's,
        or only the last ones with ``only_last=True``) and whether the sample just started."""
        self._require_started()
        if self.running_model:
            raise SessionError("get_scribbles() was called twice without submit_masks() in between")
        if not 0 <= self.sample_idx < len(self.samples):
            raise SessionError("no sample is running: call next() first (and only while it returns True)")
        sequence, scribble_idx = self._sample(self.sample_idx)
        new_sequence = False
        if self.interaction_nb == 0 and self._run is None:
            self._run = self._start_run(sequence, scribble_idx)
            self.sample_scribbles = self._run.scribbles(only_last=False)
            self.sample_last_scribble = self._run.scribbles(only_last=True)
            new_sequence = True
        self.interaction_start_time = self.clock()
        self.running_model = True
        scribbles = self.sample_last_scribble if only_last else self.sample_scribbles
        return sequence, copy.deepcopy(scribbles), new_sequence

    def scribbles_iterator(self, *args, **kwargs):
        while self.next():
            yield self.get_scribbles(*args, **kwargs)

    def submit_masks(self, pred_masks: Any, next_scribble_frame_candidates: Iterable[int] | None = None) -> None:
        """Submit the masks of this interaction: ``(frames, H, W)`` integer object ids (integral floats
        accepted). next_scribble_frame_candidates: the frames the next scribble may go on."""
        self._require_started()
        if not self.running_model or self._run is None:
            raise SessionError("submit_masks() was called without get_scribbles() first")
        run = self._run
        run.check(pred_masks, next_scribble_frame_candidates)   # refuses bad input before anything changes
        end = self.clock()
        timing = end - self.interaction_start_time
        # as the framework, the robot scribbles after the last interaction too (sample_last_scribble)
        step = run.submit(pred_masks, timing, now=end, candidates=next_scribble_frame_candidates,
                          draw_after_last=True)
        self.interaction_nb += 1
        self.running_model = False
        self.interaction_start_time = None
        if step.accepted and step.scribbles is not None:
            self.sample_last_scribble = run.scribbles(only_last=True)
            self.sample_scribbles = run.scribbles(only_last=False)

    # ---------------------------------------------------------------------------- report ----

    def get_report(self) -> pd.DataFrame:
        """Every scored row so far, with the framework's columns."""
        tables = [t for t in self._done if len(t)]
        if self._run is not None and self._run.rows:
            tables.append(self._run.report())
        if not tables:
            return pd.DataFrame(columns=REPORT_COLUMNS)
        return pd.concat(tables, ignore_index=True)[REPORT_COLUMNS]

    def get_global_summary(self, save_file: str | os.PathLike | None = None) -> dict[str, Any]:
        """The summary ``{auc, metric_at_threshold, curve}`` (computed when the last sample ends)."""
        if self.running:
            log.warning("the session seems to be still running: the summary is computed when next() returns False")
        if save_file:
            atomic_write(save_file, json.dumps(self.global_summary))
        return self.global_summary

    # --------------------------------------------------------------------------- private ----

    def _start_run(self, sequence: str, scribble_idx: int) -> SampleRun:
        path = self._first[(sequence, scribble_idx)]
        gt = self._dataset.read_annotations(sequence)
        first = read_scribbles(path, nb_frames=len(gt)) if path is not None else None
        if first is not None and first["sequence"] != sequence:
            raise VosbenchError(f"{path}: scribbles of {first['sequence']!r}, expected {sequence!r}")
        return SampleRun(sequence, scribble_idx, gt, first, self.connector.service.robot,
                         max_interactions=self.max_nb_interactions, max_time=self.max_time,
                         budget_rule=self.budget_rule, metric=self._metric, session_id=self.session_key,
                         nb_objects=self._sequences[sequence]["num_objects"], clock=self.clock,
                         start_time=self.sample_start_time)

    def _close_run(self) -> None:
        if self._run is not None:
            self._done.append(self._run.report())
            self._run = None

    def _finish(self) -> None:
        self._close_run()
        report = self.get_report()
        self.global_summary, _ = summarize(report, self._subset_samples, self.max_nb_interactions, self.max_time,
                                           threshold=TIME_THRESHOLD, metric=self.metric_to_optimize,
                                           monotone=False)
        self._write_report(tmp=False)
        tmp = self.report_save_dir / f"{self.report_name}.tmp.csv"
        if tmp.exists():
            tmp.unlink()
        self.running = False

    def _write_report(self, tmp: bool) -> None:
        name = f"{self.report_name}.tmp.csv" if tmp else f"{self.report_name}.csv"
        atomic_write(self.report_save_dir / name, self.get_report().to_csv())

    def __repr__(self) -> str:
        return (f"DavisInteractiveSession(subset={self.subset!r}, max_time={self.max_time}, "
                f"max_nb_interactions={self.max_nb_interactions}, budget_rule={self.budget_rule.value})")


__all__ = ["DavisInteractiveSession", "Davis", "SessionError", "SubmissionError", "BudgetRule"]
