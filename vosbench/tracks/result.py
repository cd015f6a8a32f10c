"""The result of one evaluation: dense per-frame arrays, and every table as a view of them.

evaluate -> `SequenceScores` per sequence (J and F of each object in each frame);
accumulate -> per-object statistics; summarize -> the global row.
"""
from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vosbench.io.atomic import atomic_write
from vosbench.metrics.base import Metric
from vosbench.tracks.params import EvalParams
from vosbench.tracks.scores import SequenceScores, default_metrics

__all__ = ["Result", "SequenceScores", "default_metrics", "GLOBAL_COLUMNS", "PER_SEQUENCE_COLUMNS"]

GLOBAL_COLUMNS = ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
PER_SEQUENCE_COLUMNS = ["Sequence", "J-Mean", "F-Mean"]


# The dataset identity written after the columns of the per-object CSV (the two official CSVs keep the
# official toolkit's columns, so that scripts reading them run unchanged; the JSON holds it too).
IDENTITY_COLUMNS = {"dataset": "name", "dataset_kind": "kind", "dataset_split": "split",
                    "dataset_resolution": "resolution", "dataset_sequences": "n_sequences",
                    "gt_fingerprint": "fingerprint"}


class Result:
    """Everything one evaluation produced. Tables are pandas DataFrames built on demand.

    metrics: the `vosbench.metrics.base.Metric` instances that made the per-frame arrays; every
    table holds their columns (None: the built-in metrics of the fields the sequences hold).
    """

    def __init__(self, sequences: list[SequenceScores], params: EvalParams, dataset: str = "",
                 results_dir: str = "", skipped: list[str] | None = None, split: str = "val",
                 metrics: list[Metric] | None = None, notes: list[str] | None = None,
                 identity: dict[str, Any] | None = None):
        self.sequences = list(sequences)
        # The data scored (vosbench.io.identity.DatasetIdentity.to_dict()), when the caller knows it.
        self.identity = dict(identity) if identity else None
        self.params = params
        self.dataset = dataset
        self.results_dir = results_dir
        self.split = split
        self.skipped = list(skipped or [])
        self.notes = list(notes or [])
        if metrics is None:
            fields = set().union(*(s.values for s in self.sequences)) if self.sequences else {"J", "F"}
            metrics = default_metrics(params, fields)
        self.metrics = list(metrics)

    @property
    def measures(self) -> list[str]:
        """Names of the metrics of this result, in table order."""
        return [m.name for m in self.metrics]

    @property
    def fields(self) -> list[str]:
        return [f for m in self.metrics for f in m.fields]

    @property
    def _has_jf(self) -> bool:
        return {"J", "F"} <= set(self.measures)

    @property
    def measure_columns(self) -> list[str]:
        """Per-object / global measure columns, in table order (J&F-Mean first when J and F are measured)."""
        columns = ["J&F-Mean"] if self._has_jf else []
        return columns + [c for m in self.metrics for c in m.columns]

    # -- accumulate -------------------------------------------------------
    @cached_property
    def per_object(self) -> pd.DataFrame:
        """One row per object: each metric's per-object columns (J and F: Mean, Recall, Decay over its scored frames)."""
        rows = []
        # n_frames: the frames an object is scored on (J's, when measured: T has no value on the first one).
        fields = self.fields
        first_field = "J" if "J" in fields else (fields[0] if fields else None)
        for seq in self.sequences:
            columns: dict[str, np.ndarray] = {}
            for metric in self.metrics:
                columns.update(metric.accumulate({f: seq.values[f] for f in metric.fields}))
            for k, (object_id, label) in enumerate(zip(seq.object_ids, seq.labels)):
                n_frames = int(np.count_nonzero(~np.isnan(seq.values[first_field][k]))) if first_field else 0
                row = {"sequence": seq.sequence, "object_id": object_id, "label": label, "n_frames": n_frames}
                row.update({c: float(v[k]) for c, v in columns.items()})
                if seq.proposal_ids is not None:
                    row["proposal_id"] = seq.proposal_ids[k]
                rows.append(row)
        metric_columns = [c for m in self.metrics for c in m.columns]
        columns = ["sequence", "object_id", "label", "n_frames"] + metric_columns
        frame = pd.DataFrame(rows, columns=columns + (["proposal_id"] if any("proposal_id" in r for r in rows) else []))
        if self._has_jf:
            frame.insert(4, "J&F-Mean", (frame["J-Mean"] + frame["F-Mean"]) / 2)
        return frame

    # -- summarize --------------------------------------------------------
    @cached_property
    def global_table(self) -> pd.DataFrame:
        """The official global row: each metric's `summarize` (J and F: each statistic averaged over objects)."""
        obj = self.per_object
        sequences = obj["sequence"].to_numpy()
        values: dict[str, float] = {}
        for metric in self.metrics:
            values.update(metric.summarize({c: obj[c].to_numpy(dtype=np.float64) for c in metric.columns},
                                           sequences))
        if self._has_jf:
            values["J&F-Mean"] = (values["J-Mean"] + values["F-Mean"]) / 2
        columns = self.measure_columns + [c for c in values if c not in self.measure_columns]
        return pd.DataFrame([{c: values[c] for c in columns}], columns=columns)

    @property
    def summary(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.global_table.iloc[0].items()}

    @cached_property
    def per_sequence(self) -> pd.DataFrame:
        """The official per-sequence table: one row per object, named ``sequence_k``, with J-Mean and F-Mean
        (and the first column of any other metric)."""
        obj = self.per_object
        columns = {"Sequence": obj["label"]}
        for metric in self.metrics:
            if metric.name in ("J", "F"):
                columns[f"{metric.name}-Mean"] = obj[f"{metric.name}-Mean"]
            else:
                columns[metric.columns[0]] = obj[metric.columns[0]]
        order = [c for c in PER_SEQUENCE_COLUMNS if c in columns] + [c for c in columns if c not in PER_SEQUENCE_COLUMNS]
        return pd.DataFrame(columns, columns=order).reset_index(drop=True)

    @cached_property
    def per_frame(self) -> pd.DataFrame:
        """Tidy table of every scored (sequence, object, frame): one column per field (J, F, ...) and J&F."""
        fields = self.fields
        parts = []
        for seq in self.sequences:
            present = np.zeros(np.shape(seq.values[fields[0]]), dtype=bool) if fields else None
            for f in fields:
                present |= ~np.isnan(seq.values[f])
            k_idx, t_idx = np.nonzero(present)
            part = {"sequence": seq.sequence,
                    "object_id": np.asarray(seq.object_ids, dtype=np.int64)[k_idx],
                    "frame": np.asarray(seq.frames, dtype=object)[t_idx]}
            part.update({f: seq.values[f][k_idx, t_idx] for f in fields})
            parts.append(pd.DataFrame(part))
        jf = ["J&F"] if self._has_jf else []
        if not parts:
            return pd.DataFrame(columns=["sequence", "object_id", "frame"] + fields + jf)
        frame = pd.concat(parts, ignore_index=True)
        if jf:
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
        if self.notes:
            lines += ["", "Notes:"] + [f"  {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"protocol": self.params.to_dict(), "protocol_text": self.params.describe(),
                "dataset": self.dataset, "split": self.split, "results_dir": self.results_dir,
                "global": self.summary, "per_object": self.per_object.to_dict(orient="records"),
                "skipped": self.skipped, "partial": bool(self.skipped), "dataset_identity": self.identity,
                "measures": self.measures, **({"notes": self.notes} if self.notes else {})}

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
