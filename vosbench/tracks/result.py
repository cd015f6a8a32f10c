"""The result of one evaluation: dense per-frame arrays, and every table as a view of them.

evaluate -> `SequenceScores` per sequence (J and F of each object in each frame);
accumulate -> per-object statistics; summarize -> the global row.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vosbench.io.atomic import atomic_write
from vosbench.metrics.statistics import statistics
from vosbench.tracks.params import EvalParams

GLOBAL_COLUMNS = ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
PER_SEQUENCE_COLUMNS = ["Sequence", "J-Mean", "F-Mean"]


@dataclass
class SequenceScores:
    """J and F of every object of one sequence in every frame; NaN marks frames not scored.

    object_ids: the ground-truth object ids, in output order.
    labels: how each object is named in the tables (``seq_k``); for the unsupervised
        track ``k`` counts matched proposals, as the official toolkit writes them.
    proposal_ids: unsupervised only: the proposal matched to each object (0 = none).
    """

    sequence: str
    frames: list[str]
    object_ids: list[int]
    j: np.ndarray
    f: np.ndarray
    labels: list[str] = field(default_factory=list)
    proposal_ids: list[int] | None = None

    def __post_init__(self):
        if not self.labels:
            self.labels = [f"{self.sequence}_{k}" for k in range(1, len(self.object_ids) + 1)]

    def to_arrays(self) -> dict[str, Any]:
        return {"j": self.j, "f": self.f, "object_ids": np.asarray(self.object_ids, dtype=np.int64),
                "frames": np.asarray(self.frames), "labels": np.asarray(self.labels),
                "proposal_ids": np.asarray(self.proposal_ids if self.proposal_ids is not None else [], dtype=np.int64),
                "sequence": np.asarray(self.sequence)}

    @classmethod
    def from_arrays(cls, arrays: Any) -> "SequenceScores":
        proposals = [int(x) for x in arrays["proposal_ids"]]
        return cls(sequence=str(arrays["sequence"]), frames=[str(x) for x in arrays["frames"]],
                   object_ids=[int(x) for x in arrays["object_ids"]], j=np.asarray(arrays["j"]),
                   f=np.asarray(arrays["f"]), labels=[str(x) for x in arrays["labels"]],
                   proposal_ids=proposals or None)

# The dataset identity written after the columns of the per-object CSV (the two official CSVs keep the
# official toolkit's columns, so that scripts reading them run unchanged; the JSON holds it too).
IDENTITY_COLUMNS = {"dataset": "name", "dataset_kind": "kind", "dataset_split": "split",
                    "dataset_resolution": "resolution", "dataset_sequences": "n_sequences",
                    "gt_fingerprint": "fingerprint"}


class Result:
    """Everything one evaluation produced. Tables are pandas DataFrames built on demand."""

    def __init__(self, sequences: list[SequenceScores], params: EvalParams, dataset: str = "",
                 results_dir: str = "", skipped: list[str] | None = None, split: str = "val",
                 identity: dict[str, Any] | None = None):
        self.sequences = list(sequences)
        # The data scored (vosbench.io.identity.DatasetIdentity.to_dict()), when the caller knows it.
        self.identity = dict(identity) if identity else None
        self.params = params
        self.dataset = dataset
        self.results_dir = results_dir
        self.split = split
        self.skipped = list(skipped or [])

    # -- accumulate -------------------------------------------------------
    @cached_property
    def per_object(self) -> pd.DataFrame:
        """One row per object: J and F Mean, Recall, Decay over its scored frames."""
        rows = []
        uint8 = self.params.decay_uint8_ids
        for seq in self.sequences:
            for k, (object_id, label) in enumerate(zip(seq.object_ids, seq.labels)):
                jk = seq.j[k][~np.isnan(seq.j[k])]
                fk = seq.f[k][~np.isnan(seq.f[k])]
                js, fs = statistics(jk, uint8_ids=uint8), statistics(fk, uint8_ids=uint8)
                row = {"sequence": seq.sequence, "object_id": object_id, "label": label,
                       "n_frames": int(jk.size),
                       "J-Mean": js.mean, "J-Recall": js.recall, "J-Decay": js.decay,
                       "F-Mean": fs.mean, "F-Recall": fs.recall, "F-Decay": fs.decay}
                if seq.proposal_ids is not None:
                    row["proposal_id"] = seq.proposal_ids[k]
                rows.append(row)
        columns = ["sequence", "object_id", "label", "n_frames"] + GLOBAL_COLUMNS[1:]
        frame = pd.DataFrame(rows, columns=columns + (["proposal_id"] if any("proposal_id" in r for r in rows) else []))
        frame.insert(4, "J&F-Mean", (frame["J-Mean"] + frame["F-Mean"]) / 2)
        return frame

    # -- summarize --------------------------------------------------------
    @cached_property
    def global_table(self) -> pd.DataFrame:
        """The official global row: each statistic averaged over objects."""
        obj = self.per_object
        values = {c: float(np.mean(obj[c])) if len(obj) else float("nan") for c in GLOBAL_COLUMNS[1:]}
        values["J&F-Mean"] = (values["J-Mean"] + values["F-Mean"]) / 2
        return pd.DataFrame([{c: values[c] for c in GLOBAL_COLUMNS}], columns=GLOBAL_COLUMNS)

    @property
    def summary(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.global_table.iloc[0].items()}

    @cached_property
    def per_sequence(self) -> pd.DataFrame:
        """The official per-sequence table: one row per object, named ``sequence_k``."""
        obj = self.per_object
        return pd.DataFrame({"Sequence": obj["label"], "J-Mean": obj["J-Mean"], "F-Mean": obj["F-Mean"]},
                            columns=PER_SEQUENCE_COLUMNS).reset_index(drop=True)

    @cached_property
    def per_frame(self) -> pd.DataFrame:
        """Tidy table of every scored (sequence, object, frame): J, F and J&F."""
        parts = []
        for seq in self.sequences:
            k_idx, t_idx = np.nonzero(~np.isnan(seq.j))
            parts.append(pd.DataFrame({
                "sequence": seq.sequence,
                "object_id": np.asarray(seq.object_ids, dtype=np.int64)[k_idx],
                "frame": np.asarray(seq.frames, dtype=object)[t_idx],
                "J": seq.j[k_idx, t_idx], "F": seq.f[k_idx, t_idx]}))
        if not parts:
            return pd.DataFrame(columns=["sequence", "object_id", "frame", "J", "F", "J&F"])
        frame = pd.concat(parts, ignore_index=True)
        frame["J&F"] = (frame["J"] + frame["F"]) / 2
        return frame

    # -- output -----------------------------------------------------------
    def protocol(self) -> str:
        return f"Protocol: {self.params.describe()}"

    def format_table(self) -> str:
        lines = []
        if self.skipped:
            lines += [f"PARTIAL RESULT: {len(self.skipped)} sequence(s) could not be scored and are left out; "
                      f"the figures below cover the {len(self.sequences)} scored ones only and are not "
                      f"comparable with a full evaluation.", ""]
        dataset = self.dataset
        if self.identity:
            dataset = (f"{self.identity.get('title') or self.identity.get('name')} ({self.identity.get('name')}), "
                       f"{self.identity.get('split')} split, {self.identity.get('n_sequences')} sequences, "
                       f"ground truth {self.identity.get('fingerprint')}")
        lines += [self.protocol(), f"Dataset: {dataset}", "",
                 "--------------------------- Global results ---------------------------",
                 self.global_table.to_string(index=False, float_format="%.3f"), "",
                 "---------------------- Per sequence results ----------------------",
                 self.per_sequence.to_string(index=False, float_format="%.3f")]
        if self.skipped:
            lines += ["", f"Skipped ({len(self.skipped)}):"] + [f"  {s}" for s in self.skipped]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"protocol": self.params.to_dict(), "protocol_text": self.params.describe(),
                "dataset": self.dataset, "split": self.split, "results_dir": self.results_dir,
                "global": self.summary, "per_object": self.per_object.to_dict(orient="records"),
                "skipped": self.skipped, "partial": bool(self.skipped), "dataset_identity": self.identity}

    def _identity_columns(self, table: pd.DataFrame) -> pd.DataFrame:
        """`table` with the dataset's identity as trailing columns (after the official ones)."""
        if not self.identity:
            return table
        table = table.copy()
        for column, key in IDENTITY_COLUMNS.items():
            table[column] = self.identity.get(key)
        return table

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write the official CSVs (3 decimals), the per-frame and per-object tables and JSON, atomically."""
        out = Path(out_dir)
        paths = {
            "global": out / f"global_results-{self.split}.csv",
            "per_sequence": out / f"per-sequence_results-{self.split}.csv",
            "per_object": out / f"per-object_results-{self.split}.csv",
            "per_frame": out / f"per-frame_results-{self.split}.csv",
            "json": out / f"results-{self.split}.json",
        }
        # Render everything first, so that a failure leaves no file half-written or out of step.
        texts = {
            "global": self.global_table.to_csv(index=False, float_format="%.3f", lineterminator="\n"),
            "per_sequence": self.per_sequence.to_csv(index=False, float_format="%.3f", lineterminator="\n"),
            "per_object": self._identity_columns(self.per_object).to_csv(index=False, float_format="%.6f",
                                                                         lineterminator="\n"),
            "per_frame": self.per_frame.to_csv(index=False, float_format="%.6f", lineterminator="\n"),
            "json": json.dumps(self.to_dict(), indent=1, allow_nan=True, default=float) + "\n",
        }
        for key, path in paths.items():
            atomic_write(path, texts[key])
        return paths
