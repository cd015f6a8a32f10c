"""Runs as tidy DataFrames, and the usual pivots and comparisons over them.

The tidy frame has one row per (method, sequence, object, frame, measure):

    method    sequence   object  frame  measure  value
    osvos     blackswan  1       1      J        0.94
    osvos     blackswan  1       1      F        0.97
    osvos     blackswan  1       1      J&F      0.955

``frame`` is the frame's number (its file name when that is a number, as in
DAVIS, else its position in the sequence). Every other table here is computed
from this one, the same way the official toolkit computes its tables from
per-frame scores: a statistic per object over its frames, then a mean over
objects.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from vosbench.errors import InputError
from vosbench.metrics.statistics import decay, mean, recall

log = logging.getLogger(__name__)

TIDY_COLUMNS = ["method", "sequence", "object", "frame", "measure", "value"]
FRAME_MEASURES = ("J", "F", "J&F")
SUMMARY_COLUMNS = ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay", "T-Mean"]


def _frame_numbers(names: Sequence[str]) -> np.ndarray:
    if all(str(n).isdigit() for n in names):
        return np.asarray([int(n) for n in names], dtype=np.int64)
    return np.arange(len(names), dtype=np.int64)


def tidy_result(result: Any, method: str) -> pd.DataFrame:
    """A `vosbench.tracks.Result` as a tidy frame: J, F and J&F of every scored object-frame, and every other
    per-frame measure the run has (T, a benchmark's own) where it has a value."""
    parts = []
    for seq in result.sequences:
        values = getattr(seq, "values", None) or {"J": seq.j, "F": seq.f}
        objects_all = np.asarray(seq.object_ids, dtype=np.int64)
        frames_all = _frame_numbers(seq.frames)
        measures: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
        if "J" in values and "F" in values:
            j = np.asarray(values["J"], dtype=np.float64)
            f = np.asarray(values["F"], dtype=np.float64)
            k_idx, t_idx = np.nonzero(~np.isnan(j))
            jv, fv = j[k_idx, t_idx], f[k_idx, t_idx]
            measures += [("J", k_idx, t_idx, jv), ("F", k_idx, t_idx, fv), ("J&F", k_idx, t_idx, (jv + fv) / 2)]
        for field, array in values.items():
            if field in ("J", "F") and "J" in values and "F" in values:
                continue
            array = np.asarray(array, dtype=np.float64)
            k_idx, t_idx = np.nonzero(~np.isnan(array))
            measures.append((field, k_idx, t_idx, array[k_idx, t_idx]))
        for measure, k_idx, t_idx, v in measures:
            if k_idx.size == 0:
                continue
            parts.append(pd.DataFrame({"sequence": seq.sequence, "object": objects_all[k_idx],
                                       "frame": frames_all[t_idx], "measure": measure, "value": v}))
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=TIDY_COLUMNS[1:])
    frame.insert(0, "method", str(method))
    return _typed(frame)


def tidy_per_frame_table(per_frame: pd.DataFrame, method: str) -> pd.DataFrame:
    """The per-frame CSV vosbench writes (sequence, object_id, frame, J, F[, J&F][, T]) as a tidy frame."""
    missing = {"sequence", "object_id", "frame", "J", "F"} - set(per_frame.columns)
    if missing:
        raise ValueError(f"per-frame table lacks columns {sorted(missing)}")
    table = per_frame.copy()
    if "J&F" not in table:
        table["J&F"] = (table["J"] + table["F"]) / 2
    ids = ("sequence", "object_id", "frame")
    measures = [m for m in ("J", "F", "J&F") if m in table] + [
        c for c in table.columns if c not in ids + ("J", "F", "J&F") and pd.api.types.is_numeric_dtype(table[c])]
    names = table["frame"].astype(str).str.zfill(5)
    table["frame"] = _frame_numbers(list(names)) if names.str.isdigit().all() else (
        table.groupby(["sequence", "object_id"]).cumcount())
    long = table.melt(id_vars=["sequence", "object_id", "frame"], value_vars=measures, var_name="measure",
                      value_name="value").rename(columns={"object_id": "object"})
    long = long.dropna(subset=["value"])
    long.insert(0, "method", str(method))
    return _typed(long[TIDY_COLUMNS])


def tidy_official_per_frame(path: str | os.PathLike, method: str,
                            sequences: Iterable[str] | None = None) -> pd.DataFrame:
    """An official DAVIS 2016 ``official_per_frame.json`` (J and F of frames 1..n-2) as a tidy frame."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot be read as JSON ({exc}).", "Pass the official per-frame JSON file.") from exc
    keep = set(sequences) if sequences is not None else None
    rows = []
    for sequence, scores in payload.items():
        if not isinstance(scores, dict) or "J" not in scores or (keep is not None and sequence not in keep):
            continue
        j = np.asarray(scores["J"], dtype=np.float64)
        f = np.asarray(scores["F"], dtype=np.float64)
        frames = np.arange(1, len(j) + 1)  # the official lists start at frame 1 (frame 0 is given)
        for measure, values in (("J", j), ("F", f), ("J&F", (j + f) / 2)):
            rows.append(pd.DataFrame({"sequence": sequence, "object": 1, "frame": frames, "measure": measure,
                                      "value": values}))
    if not rows:
        raise InputError(path, "holds no per-frame J and F.", "Pass an official per-frame JSON file.")
    frame = pd.concat(rows, ignore_index=True)
    frame.insert(0, "method", str(method))
    return _typed(frame)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[TIDY_COLUMNS].copy()
    frame["method"] = frame["method"].astype(str)
    frame["sequence"] = frame["sequence"].astype(str)
    frame["object"] = frame["object"].astype(np.int64)
    frame["frame"] = frame["frame"].astype(np.int64)
    frame["measure"] = frame["measure"].astype(str)
    frame["value"] = frame["value"].astype(np.float64)
    return frame.reset_index(drop=True)


def concat(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Tidy frames of several methods as one (method names must differ)."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
            TIDY_COLUMNS, [str, str, np.int64, np.int64, str, np.float64])})
    return pd.concat(frames, ignore_index=True)


# -- loading runs ---------------------------------------------------------------


def _find_per_frame_csv(folder: Path, split: str | None) -> Path | None:
    pattern = f"per-frame_results-{split}.csv" if split else "per-frame_results-*.csv"
    for depth in ("", "*/"):
        found = sorted(folder.glob(depth + pattern))
        if found:
            return found[0]
    return None


def _method_name_of(folder: Path) -> str:
    for name in ("run.json", "record.json"):
        path = folder / name
        if path.is_file():
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("method"):
                return str(record["method"])
    return folder.name


def load_run(source: Any, method: str | None = None, *, gt: str | os.PathLike | None = None,
             dataset: str | None = None, track: str = "semi", split: str = "val",
             resolution: str = "480p", cache: bool = True) -> pd.DataFrame:
    """One run as a tidy frame.

    source: a `Result`; a tidy or per-frame DataFrame; a folder holding vosbench's
        ``per-frame_results-<split>.csv`` (a run folder or an evaluated results folder);
        or a folder of masks, scored against `gt` with `vosbench.evaluate`.
    method: the name in the ``method`` column (default: the run's record, else the folder name).
    """
    if isinstance(source, pd.DataFrame):
        if set(TIDY_COLUMNS) <= set(source.columns):
            frame = source[TIDY_COLUMNS].copy()
            if method:
                frame["method"] = method
            return _typed(frame)
        return tidy_per_frame_table(source, method or "method")
    if hasattr(source, "sequences") and hasattr(source, "summary"):
        return tidy_result(source, method or Path(getattr(source, "results_dir", "") or "method").name)
    folder = Path(source)
    if not folder.exists():
        raise InputError(folder, "does not exist.", "Pass a run folder, an evaluated results folder or a Result.")
    name = method or _method_name_of(folder if folder.is_dir() else folder.parent)
    if folder.is_file():
        if folder.suffix == ".json":
            return tidy_official_per_frame(folder, name)
        return tidy_per_frame_table(pd.read_csv(folder, dtype={"frame": str}), name)
    csv = _find_per_frame_csv(folder, split)
    if csv is not None:
        return tidy_per_frame_table(pd.read_csv(csv, dtype={"frame": str}), name)
    if gt is None:
        raise InputError(folder, f"holds no per-frame_results-{split}.csv and no ground truth was given to score "
                         "its masks.", "Pass gt= (the dataset root), or evaluate the folder first.")
    import vosbench

    masks = folder / "masks" if (folder / "masks").is_dir() else folder
    result = vosbench.evaluate(gt, masks, dataset=dataset, track=track, split=split, resolution=resolution,
                               cache=cache)
    return tidy_result(result, name)


def load_runs(runs: Mapping[str, Any] | Iterable[Any], **options: Any) -> pd.DataFrame:
    """Several runs as one tidy frame. `runs`: {name: source} or a list of sources (see `load_run`)."""
    if isinstance(runs, Mapping):
        frames = [load_run(source, name, **options) for name, source in runs.items()]
    else:
        frames = [load_run(source, **options) for source in runs]
    names = [f["method"].iloc[0] for f in frames if len(f)]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"two runs are both named {duplicated}; pass a mapping {{name: run}} to tell them apart")
    return concat(frames)


# -- pivots -----------------------------------------------------------------------


def object_table(tidy: pd.DataFrame, measures: Sequence[str] = ("J", "F")) -> pd.DataFrame:
    """One row per (method, sequence, object): Mean, Recall and Decay of each measure over its frames,
    and J&F-Mean, as the official per-object statistics."""
    rows = []
    keys = ["method", "sequence", "object"]
    data = tidy[tidy["measure"].isin(list(measures) + ["T"])]
    for key, group in data.sort_values("frame").groupby(keys, sort=False):
        row = dict(zip(keys, key))
        for measure, values in group.groupby("measure"):
            v = values["value"].to_numpy()
            if measure == "T":
                row["T-Mean"] = mean(v)
                continue
            row[f"{measure}-Mean"], row[f"{measure}-Recall"], row[f"{measure}-Decay"] = mean(v), recall(v), decay(v)
        rows.append(row)
    table = pd.DataFrame(rows)
    if {"J-Mean", "F-Mean"} <= set(table.columns):
        table.insert(3, "J&F-Mean", (table["J-Mean"] + table["F-Mean"]) / 2)
    return table.sort_values(keys).reset_index(drop=True)


def summary_table(tidy: pd.DataFrame, t_sequences: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per method: the official global statistics (each a mean over objects).

    t_sequences: the sequences T is averaged over (DAVIS 2016 leaves out those whose
        ``eval_t`` is false: `vosbench.reports.eval_t_sequences()`); default all.
    """
    objects = object_table(tidy)
    if t_sequences is not None and "T-Mean" in objects:
        keep = objects["sequence"].isin(set(t_sequences))
        objects.loc[~keep, "T-Mean"] = np.nan
    columns = [c for c in objects.columns if c not in ("method", "sequence", "object")]
    table = objects.groupby("method", sort=False)[columns].mean()
    if {"J-Mean", "F-Mean"} <= set(table.columns):
        table["J&F-Mean"] = (table["J-Mean"] + table["F-Mean"]) / 2
    order = [c for c in SUMMARY_COLUMNS if c in table.columns]
    table = table[order + [c for c in table.columns if c not in order]]
    return table.sort_values("J&F-Mean", ascending=False) if "J&F-Mean" in table else table


def sequence_table(tidy: pd.DataFrame, measure: str = "J&F") -> pd.DataFrame:
    """Rows: sequences; columns: methods; value: the measure's mean over frames, then over objects."""
    data = tidy[tidy["measure"] == measure]
    per_object = data.groupby(["method", "sequence", "object"])["value"].mean()
    table = per_object.groupby(["sequence", "method"]).mean().unstack("method")
    table.columns.name = "method"
    return table[sorted(table.columns, key=list(dict.fromkeys(tidy["method"])).index)]


def frame_table(tidy: pd.DataFrame, sequence: str, measure: str = "J", object: int | None = None) -> pd.DataFrame:
    """Rows: frames of one sequence; columns: methods; value: the measure (mean over objects unless one is named)."""
    data = tidy[(tidy["sequence"] == sequence) & (tidy["measure"] == measure)]
    if data.empty:
        raise KeyError(f"no {measure} scores for sequence {sequence!r}")
    if object is not None:
        data = data[data["object"] == object]
    table = data.groupby(["frame", "method"])["value"].mean().unstack("method")
    return table[[m for m in dict.fromkeys(tidy["method"]) if m in table.columns]]


def compare(tidy: pd.DataFrame, a: str, b: str, measure: str = "J&F") -> pd.DataFrame:
    """Per sequence: `a`, `b` and the difference a - b, largest gain first (sequences both scored)."""
    table = sequence_table(tidy, measure)
    for name in (a, b):
        if name not in table.columns:
            raise KeyError(f"method {name!r} is not in the frame (methods: {list(table.columns)})")
    out = table[[a, b]].dropna()
    out = out.assign(difference=out[a] - out[b])
    return out.sort_values("difference", ascending=False)


@dataclass(frozen=True)
class Significance:
    """Paired comparison of two methods over sequences.

    mean_difference: mean over sequences of (a - b); positive: `a` is better on average.
    wilcoxon_p / ttest_p: two-sided p-values of the Wilcoxon signed-rank test and the paired t-test.
    ci_low, ci_high: 95 % bootstrap interval of the mean difference (resampling sequences).
    """

    a: str
    b: str
    measure: str
    n_sequences: int
    mean_difference: float
    median_difference: float
    wins: int
    losses: int
    ties: int
    wilcoxon_p: float
    ttest_p: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return (f"{self.a} - {self.b} on {self.measure} over {self.n_sequences} sequences: mean "
                f"{self.mean_difference:+.3f} (95% CI {self.ci_low:+.3f} .. {self.ci_high:+.3f}), "
                f"{self.wins} better / {self.losses} worse / {self.ties} tied; "
                f"Wilcoxon p = {self.wilcoxon_p:.3g}, paired t p = {self.ttest_p:.3g}")


def significance(tidy: pd.DataFrame, a: str, b: str, measure: str = "J&F", *, n_bootstrap: int = 10000,
                 seed: int = 0) -> Significance:
    """Is `a` better than `b`? Paired tests over the sequences both methods scored."""
    from scipy import stats

    diff = compare(tidy, a, b, measure)["difference"].to_numpy()
    n = int(diff.size)
    nan = float("nan")
    wilcoxon_p = ttest_p = nan
    if n >= 2 and np.any(diff != 0):
        wilcoxon_p = float(stats.wilcoxon(diff).pvalue)
        # A constant difference makes the t statistic undefined (zero variance): leave it NaN.
        if np.std(diff) > 1e-12:
            ttest_p = float(stats.ttest_1samp(diff, 0.0).pvalue)
    ci_low = ci_high = nan
    if n >= 1:
        rng = np.random.default_rng(seed)
        means = diff[rng.integers(0, n, size=(n_bootstrap, n))].mean(axis=1)
        ci_low, ci_high = (float(x) for x in np.percentile(means, [2.5, 97.5]))
    tol = 1e-12
    return Significance(a=a, b=b, measure=measure, n_sequences=n,
                        mean_difference=float(diff.mean()) if n else nan,
                        median_difference=float(np.median(diff)) if n else nan,
                        wins=int(np.sum(diff > tol)), losses=int(np.sum(diff < -tol)),
                        ties=int(np.sum(np.abs(diff) <= tol)), wilcoxon_p=wilcoxon_p, ttest_p=ttest_p,
                        ci_low=ci_low, ci_high=ci_high)


def pairwise_significance(tidy: pd.DataFrame, measure: str = "J&F", seed: int = 0) -> pd.DataFrame:
    """`significance` for every ordered pair of methods, one row each."""
    methods = list(dict.fromkeys(tidy["method"]))
    rows = [significance(tidy, a, b, measure, seed=seed).to_dict()
            for i, a in enumerate(methods) for b in methods[i + 1:]]
    return pd.DataFrame(rows)
