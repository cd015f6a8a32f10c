"""The interactive track over HTTP: the DAVIS interactive framework's remote protocol.

A thin adapter over the step engine `vosbench.tracks.interactive.engine.SampleRun`,
which `run_session` (``vosbench interactive``) and the drop-in
``vosbench.interactive.DavisInteractiveSession`` drive too: the time budget and the
drop past it, J and F, the next frame (the framework's argsort) and the robot's
scribbles all come from it, so the three cannot disagree. The samples (`find_samples`)
and the summary (`summarize`) are the ones `vosbench interactive` uses. The server
keeps each sample's engine state (`SampleRun.snapshot`) in the database between
requests, and every interaction received with its scores, the client's timing and
its own. As the framework's server, the robot also answers the last interaction.

Protocol (what the `davisinteractive` client's remote connector sends, with its
``User-Key`` and ``Session-Key`` headers):

- ``GET api/dataset/samples`` -> ``[[[sequence, scribble_idx], ...], max_time, max_interactions]``
- ``GET api/dataset/scribbles/{sequence}/{idx:03d}`` -> the sample's first scribble
- ``POST api/evaluation/interaction`` (masks as COCO RLE, timing, interaction number,
  optional frame candidates) -> the robot's next scribble
- ``GET api/evaluation/report`` -> the report, one list per column
- ``POST api/evaluation/finish`` -> the summary (AUC, J&F at the threshold, the curve)

Errors are ``400 {"error": <builtin exception name>, "message": [text]}``, which the
client re-raises as that exception: ``RuntimeError`` for interactions out of order or
repeated, ``ValueError`` for anything malformed.
"""
from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from vosbench.io.factory import DatasetKind, open_dataset
from vosbench.server.config import ServerConfig
from vosbench.server.db import Database, Interaction, InteractiveSession, User, utcnow
from vosbench.tracks.interactive import SampleInfo, ScribbleRobot, SessionParams, find_samples, summarize
from vosbench.tracks.interactive.engine import SampleRun, SubmissionError
from vosbench.tracks.interactive.report import REPORT_COLUMNS, interaction_rows

log = logging.getLogger(__name__)


class ProtocolError(ValueError):
    """A request the protocol does not allow; `name` is the builtin exception the client re-raises."""

    def __init__(self, message: str, name: str = "ValueError"):
        self.name = name
        super().__init__(message)


def rle_counts(text: str) -> list[int]:
    """The run lengths of a COCO compressed RLE string (the COCO API's ``rleFrString``)."""
    data = text.encode("ascii")
    counts: list[int] = []
    p = 0
    while p < len(data):
        x = k = 0
        more = True
        while more:
            if p >= len(data):
                raise ProtocolError("a mask's RLE string ends in the middle of a number")
            c = data[p] - 48
            if not 0 <= c < 64:
                raise ProtocolError("a mask's RLE string holds a character outside the COCO alphabet")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def decode_rle(text: str, height: int, width: int) -> np.ndarray:
    """A COCO RLE string -> ``(height, width)`` bool mask (runs go down the columns, 0s first)."""
    counts = np.asarray(rle_counts(text), dtype=np.int64)
    if counts.size and counts.min() < 0 or int(counts.sum()) != height * width:
        raise ProtocolError(f"a mask's RLE does not cover {height}x{width} pixels")
    values = np.zeros(counts.size, dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return flat.reshape(width, height).T


def decode_masks(encoding: Any, shape: tuple[int, int, int], nb_objects: int) -> np.ndarray:
    """The client's ``encode_batch_masks`` output -> ``(T, H, W) uint8`` object ids."""
    if not isinstance(encoding, dict) or "size" not in encoding or "frames" not in encoding:
        raise ProtocolError("pred_masks must be {'size': [frames, height, width], 'frames': [...]} (COCO RLE).")
    size = tuple(int(v) for v in encoding["size"])
    if size != tuple(shape) or len(encoding["frames"]) != shape[0]:
        raise ProtocolError(f"the masks are {size[0] if size else '?'} frames of "
                            f"{'x'.join(map(str, size[1:]))} but the sequence has {shape[0]} frames of "
                            f"{shape[1]}x{shape[2]}.")
    masks = np.zeros(shape, dtype=np.uint8)
    for t, objects in enumerate(encoding["frames"]):
        for obj in objects:
            object_id = int(obj["object_id"])
            if not 1 <= object_id <= nb_objects:
                raise ProtocolError(f"frame {t}: object id {object_id} is not one of the sequence's "
                                    f"{nb_objects} object(s).")
            masks[t][decode_rle(str(obj["counts"]), shape[1], shape[2])] = object_id
    return masks


def _key(sequence: str, idx: int) -> str:
    return f"{sequence}/{int(idx)}"


@dataclass
class _Sample:
    sequence: str
    scribble_idx: int
    first: dict | None  # the dataset's scribble file, None: the robot draws the first scribble


class InteractiveTrack:
    """The hidden interactive ground truth and the rules, shared by every request."""

    def __init__(self, config: ServerConfig, db: Database):
        if config.interactive_gt is None:
            raise ValueError("no interactive ground truth configured")
        self.config = config
        self.db = db
        self.params = SessionParams(max_interactions=config.interactive_max_interactions,
                                    max_time=config.interactive_max_time, seed=config.interactive_seed,
                                    budget_rule=config.interactive_budget_rule)
        self.dataset = open_dataset(None, config.interactive_gt, split=config.interactive_split)
        self.robot = ScribbleRobot(self.params.robot, seed=self.params.seed)
        self.samples = [_Sample(s.sequence, s.scribble_idx, s.first_scribble) for s in find_samples(self.dataset)]
        self._by_key = {_key(s.sequence, s.scribble_idx): s for s in self.samples}
        self._gt: OrderedDict[str, np.ndarray] = OrderedDict()
        self._gt_lock = threading.Lock()
        self._nb_objects: dict[str, int] = {}

    # -- ground truth -------------------------------------------------------------------------
    def gt(self, sequence: str) -> np.ndarray:
        with self._gt_lock:
            if sequence in self._gt:
                self._gt.move_to_end(sequence)
                return self._gt[sequence]
        masks = self.dataset.read_annotations(sequence)
        with self._gt_lock:
            self._gt[sequence] = masks
            while len(self._gt) > 8:
                self._gt.popitem(last=False)
        return masks

    def nb_objects(self, sequence: str) -> int:
        if sequence not in self._nb_objects:
            ids = np.unique(self.gt(sequence))
            self._nb_objects[sequence] = int(ids[(ids > 0) & (ids < 255)].max(initial=0))
        return self._nb_objects[sequence]

    def sample(self, sequence: str, idx: int) -> _Sample:
        found = self._by_key.get(_key(sequence, idx))
        if found is None:
            raise ProtocolError(f"Sequence: {sequence} and scribble index: {idx} invalid")
        return found

    def sample_infos(self) -> list[SampleInfo]:
        return [SampleInfo(s.sequence, s.scribble_idx, self.nb_objects(s.sequence)) for s in self.samples]

    # -- sessions --------------------------------------------------------------------------------
    def _session(self, session, user: User, session_key: str | None, create: bool = False) -> InteractiveSession:
        if not session_key:
            raise ProtocolError("the 'Session-Key' header is missing.")
        row = session.scalar(select(InteractiveSession).where(InteractiveSession.session_key == session_key)
                             .with_for_update())
        if row is None:
            if not create:
                raise ProtocolError("no session with this Session-Key; a session starts with GET "
                                    "api/dataset/samples.", "RuntimeError")
            row = InteractiveSession(session_key=session_key, user_id=user.id, created_at=utcnow(), state_json="{}")
            session.add(row)
            session.flush()
        elif row.user_id != user.id:
            raise ProtocolError("this Session-Key belongs to another user.", "RuntimeError")
        return row

    def start(self, user: User, session_key: str | None) -> list:
        with self.db.session() as session:
            self._session(session, user, session_key, create=True)
        return [[[s.sequence, s.scribble_idx] for s in self.samples], self.params.max_time,
                self.params.max_interactions]

    def _run(self, sample: _Sample, session_key: str, resume: dict | None = None) -> SampleRun:
        """The step engine of one sample: new (the robot draws a missing first scribble), or resumed."""
        gt = self.gt(sample.sequence)
        return SampleRun(sample.sequence, sample.scribble_idx, gt, sample.first, self.robot,
                         max_interactions=self.params.max_interactions, max_time=self.params.max_time,
                         budget_rule=self.params.budget_rule, metric=self.params.metric, session_id=session_key,
                         nb_objects=self.nb_objects(sample.sequence), clock=time.time, resume=resume)

    def first_scribble(self, user: User, session_key: str | None, sequence: str, idx: int) -> dict:
        sample = self.sample(sequence, idx)
        with self.db.session() as session:
            row = self._session(session, user, session_key)
            if row.finished_at is not None:
                raise ProtocolError("this session is finished.", "RuntimeError")
            state = json.loads(row.state_json)
            entry = state.get(_key(sequence, idx))
            if entry is None:
                # The sample starts here: its wall clock (the wall-clock budget) runs from now.
                entry = {"run": self._run(sample, row.session_key).snapshot()}
                state[_key(sequence, idx)] = entry
            entry["handed_out"] = time.time()
            row.state_json = json.dumps(state)
            # the sample's first scribble, asked for again: the same one
            return copy.deepcopy(entry["run"]["given"][0])

    def interaction(self, user: User, session_key: str | None, body: dict) -> dict:
        received = time.time()
        try:
            sequence, idx = str(body["sequence"]), int(body["scribble_idx"])
            interaction, timing = int(body["interaction"]), float(body["timing"])
            encoding = body["pred_masks"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"the interaction lacks or mistypes {exc}: it needs sequence, scribble_idx, "
                                "pred_masks, timing and interaction.") from None
        candidates = body.get("next_scribble_frame_candidates")
        if interaction > self.params.max_interactions:
            raise ProtocolError(f"Interaction {interaction} is higher than the maximum number of interactions "
                                f"{self.params.max_interactions}")
        if interaction < 1:
            raise ProtocolError("Interaction value invalid. Should be higher than 0.")
        if not np.isfinite(timing) or timing < 0:
            raise ProtocolError(f"timing must be a non-negative number of seconds, got {timing}.")
        sample = self.sample(sequence, idx)  # a sample of the benchmark, else ValueError as the framework says
        gt = self.gt(sequence)
        masks = decode_masks(encoding, gt.shape, self.nb_objects(sequence))
        with self.db.session() as session:
            row = self._session(session, user, session_key)
            if row.finished_at is not None:
                raise ProtocolError("this session is finished; start a new one.", "RuntimeError")
            state = json.loads(row.state_json)
            entry = state.get(_key(sequence, idx))
            if entry is None:
                raise ProtocolError(f"the first scribble of {sequence} #{idx} was never asked for.", "RuntimeError")
            run = self._run(sample, row.session_key, resume=entry["run"])
            if run.dropped:
                raise ProtocolError(f"{sequence} #{idx} has already been submitted in full: its time budget "
                                    "ran out.", "RuntimeError")
            if interaction != run.interaction + 1:
                what = "has already been submitted" if interaction <= run.interaction else \
                    f"comes before interaction {run.interaction + 1}"
                raise ProtocolError(f"interaction {interaction} of {sequence} #{idx} {what}.", "RuntimeError")
            server_timing = received - entry["handed_out"] if "handed_out" in entry else None
            # The engine applies the rules: the time budget (a submission past it is dropped and ends the
            # sample), J and F, the next frame (the framework's argsort among the frames allowed) and the
            # robot. As the framework's server, the robot scribbles after the last interaction too.
            try:
                step = run.submit(masks, timing, now=received, candidates=candidates, draw_after_last=True)
            except SubmissionError as exc:
                raise ProtocolError(str(exc)) from None
            record = Interaction(session_id=row.id, sequence=sequence, scribble_idx=idx, interaction=interaction,
                                 client_timing=timing, server_timing=server_timing, received_at=utcnow())
            entry["run"] = run.snapshot()
            entry["handed_out"] = time.time()
            row.state_json = json.dumps(state)
            if not step.accepted:
                record.dropped = True
                record.scores_json = "{}"
                session.add(record)
                return {"sequence": sequence, "scribbles": [[] for _ in range(len(gt))]}
            # rows are frame-major: (frames, objects) -> (objects, frames)
            shape = (run.nb_frames, run.nb_objects)
            record.next_frame = step.frame
            record.scores_json = json.dumps({"j": step.rows["jaccard"].to_numpy().reshape(shape).T.tolist(),
                                             "f": step.rows["contour"].to_numpy().reshape(shape).T.tolist()})
            session.add(record)
            row.n_interactions += 1
        return step.scribbles

    def report(self, user: User, session_key: str | None) -> pd.DataFrame:
        with self.db.session() as session:
            row = self._session(session, user, session_key)
            records = list(session.scalars(select(Interaction).where(Interaction.session_id == row.id,
                                                                     Interaction.dropped.is_(False))
                                           .order_by(Interaction.id)))
            key = row.session_key
        tables = []
        for r in records:
            scores = json.loads(r.scores_json)
            tables.append(interaction_rows(key, r.sequence, r.scribble_idx, r.interaction, r.client_timing,
                                           np.asarray(scores["j"]), np.asarray(scores["f"])))
        return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=REPORT_COLUMNS)

    def finish(self, user: User, session_key: str | None) -> dict:
        report = self.report(user, session_key)
        summary, _ = summarize(report, self.sample_infos(), self.params.max_interactions, self.params.max_time,
                               self.params.threshold)
        with self.db.session() as session:
            row = self._session(session, user, session_key)
            if row.finished_at is None:
                row.finished_at = utcnow()
                row.summary_json = json.dumps(summary)
                row.auc = float(summary["auc"])
                row.jf_at_threshold = float(summary["metric_at_threshold"]["J_AND_F"])
            else:
                summary = json.loads(row.summary_json)
        return summary

    def leaderboard(self) -> list[dict[str, Any]]:
        """One row per user: their finished session of highest AUC (earliest on ties)."""
        with self.db.session() as session:
            rows = session.execute(select(InteractiveSession, User.name).join(User)
                                   .where(InteractiveSession.finished_at.is_not(None), User.disabled.is_(False))
                                   .order_by(InteractiveSession.id)).all()
            timings = {sid: (client, server) for sid, client, server in session.execute(
                select(Interaction.session_id, func.sum(Interaction.client_timing),
                       func.sum(Interaction.server_timing)).group_by(Interaction.session_id))}
        best: dict[str, InteractiveSession] = {}
        for s, name in rows:
            if name not in best or (s.auc or 0) > (best[name].auc or 0):
                best[name] = s
        ordered = sorted(best.items(), key=lambda item: (-(item[1].auc or 0), item[1].id))
        out = []
        for rank, (name, s) in enumerate(ordered, start=1):
            summary = json.loads(s.summary_json)
            out.append({"rank": rank, "user": name, "session": s.id, "AUC": s.auc,
                        f"J&F@{self.params.threshold:g}s": s.jf_at_threshold, "interactions": s.n_interactions,
                        # Seconds of all interactions as the client timed them, and as the server saw them
                        # (from handing out a scribble to receiving the masks: network included).
                        "client_seconds": timings.get(s.id, (None, None))[0],
                        "server_seconds": timings.get(s.id, (None, None))[1],
                        "finished_at": s.finished_at.isoformat() + "Z", "curve": summary["curve"]})
        return out
