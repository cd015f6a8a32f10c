"""Leaderboards: one row per method, written as ``<dataset>-<split>-<track>.{csv,md,json}``.

A row says where its figures come from (`Source`): measured by a vosbench run,
recomputed here from a folder of published masks, or quoted from a published
leaderboard. Rows are keyed by (method, source, options); writing a row with
the same key replaces the old one (an upsert), so re-running a method updates
its row instead of adding a second one.

The three files are rewritten together under a lock, each atomically, so a
reader never sees a half-written table and two runs finishing at once do not
lose each other's rows. A table read and written again without a change is
byte-identical.

A leaderboard belongs to one dataset: its JSON holds the dataset's identity
(`vosbench.io.identity.DatasetIdentity`: kind, name, split, resolution, number of
sequences, ground-truth fingerprint), every row names the dataset and the
fingerprint of the ground truth it was computed on, and a row made on other data
is refused with an error naming both (`IdentityMismatch`). Rows of `vosbench run`
also record the commit of the code that made them and whether the checkout was
dirty.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import enum
import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd

from vosbench.errors import InputError
from vosbench.io.atomic import atomic_write
from vosbench.io.identity import DatasetIdentity

log = logging.getLogger(__name__)

MEASURE_COLUMNS = ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay", "T-Mean"]
INFO_COLUMNS = ["seconds_per_frame", "device", "source", "options", "n_sequences", "n_frames", "n_objects",
                "resolution", "vosbench_version", "date", "masks", "dataset", "gt_fingerprint", "commit", "dirty",
                "threads", "cpu"]
# Counts, kept as integers through every read and write (a table rewritten unchanged is byte-identical).
INT_COLUMNS = ["n_sequences", "n_frames", "n_objects", "threads"]
COLUMNS = ["method"] + MEASURE_COLUMNS + INFO_COLUMNS
KEY_COLUMNS = ["method", "source", "options"]
# Lower is better for these; every other measure column is higher-is-better.
LOWER_IS_BETTER = {"J-Decay", "F-Decay", "T-Mean", "seconds_per_frame"}


class Source(str, enum.Enum):
    """Where the figures of a leaderboard row come from."""

    THIS_RUN = "this run"
    RECOMPUTED = "published masks, computed here"
    PUBLISHED = "published figures, quoted"


def leaderboard_stem(dataset: str, split: str, track: str) -> str:
    return f"{_text(dataset)}-{_text(split)}-{_text(track)}"


def leaderboard_paths(leaderboard_dir: str | os.PathLike, dataset: str, split: str, track: str) -> dict[str, Path]:
    stem = Path(leaderboard_dir) / leaderboard_stem(dataset, split, track)
    return {"csv": stem.with_suffix(".csv"), "md": stem.with_suffix(".md"), "json": stem.with_suffix(".json")}


def sequences_path(leaderboard_dir: str | os.PathLike, dataset: str, split: str, track: str) -> Path:
    """The per-sequence companion table: one row per (method, source, options, sequence, object)."""
    return Path(leaderboard_dir) / f"{leaderboard_stem(dataset, split, track)}.sequences.csv"


SEQUENCE_COLUMNS = KEY_COLUMNS + ["sequence", "object", "J&F-Mean", "J-Mean", "F-Mean", "T-Mean"]


def sequence_rows(method: str, per_object: pd.DataFrame | None = None, *, source: Source | str,
                  options: Any = None, t_scores: Iterable[Any] = ()) -> list[dict[str, Any]]:
    """Per-object sequence figures of one leaderboard row: J, F and J&F from a Result's `per_object`
    table (or the per-object CSV a run wrote, same columns), T from `results_t`."""
    base = {"method": str(method), "source": Source(source).value, "options": options_key(options)}
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    if per_object is not None:
        for obj in per_object.to_dict(orient="records"):
            rows[(obj["sequence"], int(obj["object_id"]))] = {
                **base, "sequence": obj["sequence"], "object": int(obj["object_id"]),
                "J&F-Mean": obj["J&F-Mean"], "J-Mean": obj["J-Mean"], "F-Mean": obj["F-Mean"],
                "T-Mean": float("nan")}
    for seq in t_scores:
        for object_id, value in zip(seq.object_ids, seq.means):
            row = rows.setdefault((seq.sequence, int(object_id)), {
                **base, "sequence": seq.sequence, "object": int(object_id), "J&F-Mean": float("nan"),
                "J-Mean": float("nan"), "F-Mean": float("nan")})
            row["T-Mean"] = float(value)
    return list(rows.values())


def read_sequences(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame(columns=SEQUENCE_COLUMNS)
    try:
        frame = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"options": str, "sequence": str})
    except ValueError as exc:
        raise InputError(path, f"is not a vosbench per-sequence table ({exc}).",
                         "Delete it (it is rebuilt) or restore it from version control.") from exc
    frame["options"] = frame["options"].fillna("")
    return frame


def _upsert_sequences(path: Path, rows: list[Mapping[str, Any]], drop: Iterable[tuple[str, str]] = ()) -> None:
    dropped = set(drop)
    if not rows and not dropped:
        return
    old = read_sequences(path)
    if dropped and len(old):
        old = old[np.array([(m, s) not in dropped for m, s in zip(old["method"], old["source"])], dtype=bool)]
    new = pd.DataFrame(rows, columns=SEQUENCE_COLUMNS)
    keys = set(map(tuple, new[KEY_COLUMNS].itertuples(index=False)))
    keep = [tuple(r) not in keys for r in old[KEY_COLUMNS].itertuples(index=False)] if len(old) else []
    parts = [p for p in (old[keep] if len(old) else old, new) if len(p)]
    merged = pd.concat(parts, ignore_index=True)[SEQUENCE_COLUMNS] if parts else pd.DataFrame(columns=SEQUENCE_COLUMNS)
    merged = merged.sort_values(["method", "source", "options", "sequence", "object"], kind="stable")
    atomic_write(path, merged.to_csv(index=False, float_format="%.6f", lineterminator="\n"))


def _text(value: Any) -> str:
    """Enum members by value, everything else by str()."""
    if isinstance(value, enum.Enum):
        return str(value.value)
    return "" if value is None else str(value)


def short_path(path: str | os.PathLike | None, base: str | os.PathLike | None = None) -> str:
    """A path as a leaderboard shows it: relative to `base` (default: the working folder) when inside
    it, else its last two parts; a table committed to a repository must not carry one machine's paths."""
    if path is None or str(path) == "":
        return ""
    path = Path(path)
    try:
        full, root = path.resolve(), Path(base or os.getcwd()).resolve()
        if full.is_relative_to(root):
            return full.relative_to(root).as_posix()
    except OSError:
        pass
    return Path(*path.parts[-2:]).as_posix()


def _field(record: Any, name: str, default: Any = None) -> Any:
    if isinstance(record, Mapping):
        return record.get(name, default)
    return getattr(record, name, default)


def options_key(options: Any) -> str:
    """Canonical text of a run's options (the part of the row key that tells variants apart)."""
    if options is None or options == "" or options == {}:
        return ""
    if isinstance(options, str):
        return options
    return json.dumps(options, sort_keys=True, default=_text, separators=(",", ":"))


def _float(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return out


def row_from_summary(method: str, summary: Mapping[str, Any], *, source: Source | str, options: Any = None,
                     **info: Any) -> dict[str, Any]:
    """A leaderboard row from a global summary ({"J-Mean": ..., ...}) plus run information."""
    row: dict[str, Any] = {c: None for c in COLUMNS}
    row.update({c: _float(summary.get(c)) for c in MEASURE_COLUMNS})
    if math.isnan(row["J&F-Mean"]) and not (math.isnan(row["J-Mean"]) or math.isnan(row["F-Mean"])):
        row["J&F-Mean"] = (row["J-Mean"] + row["F-Mean"]) / 2
    row["method"] = str(method)
    row["source"] = Source(source).value
    row["options"] = options_key(options)
    # Any other measure the run has (a benchmark's own metrics): a column of its own.
    row.update({key: _float(value) for key, value in summary.items()
                if key not in row and isinstance(value, (int, float, np.number)) and not isinstance(value, bool)})
    for key, value in info.items():
        if key not in row:
            raise TypeError(f"unknown leaderboard column {key!r}")
        row[key] = value
    return row


def row_from_result(method: str, result: Any, *, source: Source | str, options: Any = None,
                    t_mean: float | None = None, **info: Any) -> dict[str, Any]:
    """A leaderboard row from a `vosbench.tracks.Result` (its global row) plus run information."""
    summary = dict(result.summary)
    if t_mean is None:
        t_mean = summary.get("T-Mean", getattr(result, "t_mean", None))
    summary["T-Mean"] = t_mean
    info.setdefault("n_sequences", len(getattr(result, "sequences", []) or []) or None)
    return row_from_summary(method, summary, source=source, options=options, **info)


def row_from_record(record: Any, result: Any, t_mean: float | None = None) -> dict[str, Any]:
    """The row of one `vosbench run`: `record` is a RunRecord, or any object/mapping with its fields."""
    method = _field(record, "method")
    if not method:
        raise InputError(None, "the run record names no method.", "pass the RunRecord that `vosbench run` built.")
    started = _field(record, "started")
    date = _text(started)[:19] if started else _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    masks = _field(record, "masks_dir")
    identity = _field(record, "dataset_identity") or {}
    return row_from_result(
        _text(method), result, source=Source.THIS_RUN, options=_field(record, "options"), t_mean=t_mean,
        seconds_per_frame=_float(_field(record, "seconds_per_frame")), device=_text(_field(record, "device")),
        n_sequences=_field(record, "n_sequences") or len(getattr(result, "sequences", []) or []) or None,
        n_frames=_field(record, "n_frames"), n_objects=_field(record, "n_objects"),
        resolution=_text(_field(record, "resolution")), vosbench_version=_text(_field(record, "vosbench_version")),
        date=date, masks=run_masks_path(masks), dataset=identity.get("name") or _text(_field(record, "dataset")),
        gt_fingerprint=identity.get("fingerprint", ""), commit=_text(_field(record, "commit")),
        dirty=_field(record, "dirty"), threads=_field(record, "threads"), cpu=_text(_field(record, "cpu")))


def run_masks_path(masks: str | os.PathLike | None) -> str:
    """A run's masks folder as a leaderboard shows it: ``<run folder name>/<masks folder name>``, the same
    from whatever folder the table is written."""
    if masks is None or str(masks) == "":
        return ""
    return Path(*Path(masks).parts[-2:]).as_posix()


# -- reading and writing -------------------------------------------------------


def read_leaderboard(path: str | os.PathLike) -> pd.DataFrame:
    """A leaderboard file (.json preferred, .csv accepted) as a DataFrame with every column."""
    path = Path(path)
    if path.suffix == ".md":
        path = path.with_suffix(".json")
    if not path.is_file():
        return empty_table()
    try:
        if path.suffix == ".json":
            payload = json.loads(path.read_text(encoding="utf-8"))
            rows = payload["rows"] if isinstance(payload, dict) else payload
            frame = pd.DataFrame(rows)
        else:
            frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(path, f"is not a vosbench leaderboard ({exc}).",
                         "delete it (it is rebuilt from the runs) or restore it from version control.") from exc
    return normalise(frame)


def empty_table() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=float if c in MEASURE_COLUMNS else object) for c in COLUMNS})


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column present, in order; measures as floats; keys as text."""
    frame = frame.copy()
    for column in COLUMNS:
        if column not in frame:
            frame[column] = None
    for column in MEASURE_COLUMNS + ["seconds_per_frame"]:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    for column in INT_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").round().astype("Int64")
    frame["dirty"] = frame["dirty"].map(_flag).astype(object)
    for column in KEY_COLUMNS:
        frame[column] = frame[column].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v))
                                          else str(v))
    extra = [c for c in frame.columns if c not in COLUMNS]
    return frame[COLUMNS + extra].reset_index(drop=True)


def upsert(table: pd.DataFrame, rows: Iterable[Mapping[str, Any]],
           drop: Iterable[tuple[str, str]] = ()) -> pd.DataFrame:
    """`table` with each row replacing the row of the same (method, source, options), or appended.

    drop: (method, source) pairs whose rows are removed first, whatever their options (a rebuild
        of published masks replaces every earlier row of that method and source).
    """
    table = normalise(table)
    dropped = set(drop)
    if dropped:
        keep = np.array([(m, s) not in dropped for m, s in zip(table["method"], table["source"])], dtype=bool)
        table = table[keep]
    new = normalise(pd.DataFrame(list(rows)))
    if new.empty:
        return sort_table(table)
    new = new.drop_duplicates(subset=KEY_COLUMNS, keep="last")
    keys = set(map(tuple, new[KEY_COLUMNS].itertuples(index=False)))
    keep = [tuple(r) not in keys for r in table[KEY_COLUMNS].itertuples(index=False)]
    parts = [p for p in (table[keep], new) if not p.empty]
    merged = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
    return sort_table(merged)


SOURCE_ORDER = {s.value: k for k, s in enumerate(Source)}


def sort_table(table: pd.DataFrame) -> pd.DataFrame:
    """Methods by their best J&F (rows without J&F last), a method's rows together, then by source."""
    if table.empty:
        return table.reset_index(drop=True)
    jf = table["J&F-Mean"].fillna(-1.0)
    best = jf.groupby(table["method"]).transform("max")
    order = table.assign(_best=best, _jf=jf, _src=table["source"].map(SOURCE_ORDER).fillna(len(SOURCE_ORDER)))
    order = order.sort_values(["_best", "method", "_src", "_jf"], ascending=[False, True, True, False],
                              kind="stable")
    return order.drop(columns=["_best", "_jf", "_src"]).reset_index(drop=True)


def _flag(value: Any) -> bool | None:
    """True/False from a bool or its text in a CSV; None when not recorded."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = "" if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)) else str(value)
    return {"true": True, "false": False}.get(text.strip().lower())


def _json_value(value: Any) -> Any:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if hasattr(value, "item"):  # numpy scalars
        return _json_value(value.item())
    return value


def render_json(table: pd.DataFrame, meta: Mapping[str, Any]) -> str:
    rows = [{k: _json_value(v) for k, v in row.items()} for row in table.to_dict(orient="records")]
    return json.dumps({**meta, "columns": COLUMNS, "rows": rows}, indent=1) + "\n"


def render_csv(table: pd.DataFrame) -> str:
    return table.to_csv(index=False, float_format="%.6g", lineterminator="\n")


def _cell(value: Any, column: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)) or (
            column == "device" and value in ("", "None")):
        return "–"
    if column == "seconds_per_frame":
        return f"{float(value):.3g}"
    if column == "commit":
        return str(value)[:10] if str(value) else "–"
    if column in MEASURE_COLUMNS:
        text = f"{float(value):.3f}"
        return "0.000" if text == "-0.000" else text  # rounding noise of a zero (e.g. T of a still mask)
    text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


MARKDOWN_COLUMNS = ["method", "source"] + MEASURE_COLUMNS + ["seconds_per_frame", "device", "commit", "options"]
MARKDOWN_HEADERS = {"J&F-Mean": "J&F", "J-Mean": "J Mean", "J-Recall": "J Recall", "J-Decay": "J Decay",
                    "F-Mean": "F Mean", "F-Recall": "F Recall", "F-Decay": "F Decay", "T-Mean": "T Mean",
                    "seconds_per_frame": "s/frame"}


def extra_measures(table: pd.DataFrame) -> list[str]:
    """Measure columns beyond the DAVIS ones that some row holds (a benchmark's own metrics), in table order."""
    return [c for c in table.columns if c not in COLUMNS and pd.api.types.is_float_dtype(table[c])
            and table[c].notna().any()]


def _markdown_columns(table: pd.DataFrame) -> list[str]:
    at = MARKDOWN_COLUMNS.index("T-Mean") + 1
    return MARKDOWN_COLUMNS[:at] + extra_measures(table) + MARKDOWN_COLUMNS[at:]


def _row_cells(row: Mapping[str, Any], columns: list[str], extra: set[str]) -> list[str]:
    # A benchmark's own measures are fractions, formatted like J-Mean.
    cells = [_cell(row.get(c), "J-Mean" if c in extra else c) for c in columns]
    if row.get("commit") and _flag(row.get("dirty")) and "commit" in columns:
        cells[columns.index("commit")] += " (dirty)"
    return cells


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The columns a reader needs, formatted as text (3 decimals, – for not measured)."""
    table = normalise(table)
    columns = _markdown_columns(table)
    extra = set(extra_measures(table))
    headers = [MARKDOWN_HEADERS.get(c, c) for c in columns]
    rows = [dict(zip(headers, _row_cells(row, columns, extra))) for row in table.to_dict(orient="records")]
    return pd.DataFrame(rows, columns=headers)


def render_markdown(table: pd.DataFrame, meta: Mapping[str, Any], notes: Iterable[str] = ()) -> str:
    title = f"# Leaderboard: {meta.get('dataset', '')} {meta.get('split', '')}, {meta.get('track', '')} track"
    lines = [title, ""]
    identity = meta.get("dataset_identity")
    if identity:
        lines += [f"Dataset: {DatasetIdentity.from_dict(identity).describe()}. A row's `gt_fingerprint` "
                  "(csv, json) says it was computed on this ground truth (rows without one predate the record); "
                  "a run made on other data is refused.", ""]
    if meta.get("protocol"):
        lines += [f"Protocol: {meta['protocol']}", ""]
    lines += [
        "Sources: *this run* = measured by `vosbench run` on this machine; "
        "*published masks, computed here* = the authors' published result masks scored by vosbench; "
        "*published figures, quoted* = copied from the official leaderboard, not computed here "
        "(their J&F is the mean of the quoted J Mean and F Mean). "
        "commit: the vosbench commit a run was made with ((dirty): with uncommitted changes; – : not recorded).",
        "Mean, Recall: higher is better; Decay, T (temporal instability), s/frame: lower is better. "
        "– = not measured.",
        "",
    ]
    lines += list(notes)
    if notes:
        lines.append("")
    columns = _markdown_columns(table)
    extra = set(extra_measures(table))
    headers = [MARKDOWN_HEADERS.get(c, c) for c in columns]
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("| " + " | ".join("---" if c in ("method", "source", "device", "commit", "options") else "---:"
                                   for c in columns) + " |")
    for row in table.to_dict(orient="records"):
        lines.append("| " + " | ".join(_row_cells(row, columns, extra)) + " |")
    return "\n".join(lines) + "\n"


def reproduction_table(table: pd.DataFrame) -> pd.DataFrame:
    """For each method with both a quoted and a recomputed row: recomputed - quoted, per column."""
    quoted = table[table["source"] == Source.PUBLISHED.value].set_index("method")
    computed = table[table["source"] == Source.RECOMPUTED.value].set_index("method")
    methods = [m for m in computed.index if m in quoted.index]
    columns = [c for c in MEASURE_COLUMNS if c != "J&F-Mean"]
    diff = computed.loc[methods, columns].astype(float) - quoted.loc[methods, columns].astype(float)
    diff.index.name = "method"
    return diff


def reproduction_notes(diff: pd.DataFrame) -> list[str]:
    if diff.empty:
        return []
    lines = ["## Reproduction of the published figures", "",
             "Recomputed here from the published masks minus the published figure "
             "(the published figures have 3 decimals, so up to ±0.0005 is rounding).", ""]
    columns = list(diff.columns)
    lines.append("| method | " + " | ".join(columns) + " |")
    lines.append("| --- | " + " | ".join("---:" for _ in columns) + " |")
    for method, row in diff.iterrows():
        cells = ["–" if math.isnan(v) else f"{v:+.4f}" for v in row.to_numpy(dtype=float)]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    worst = diff.abs().max()
    lines += ["", "Largest difference: " + ", ".join(
        f"{c} {worst[c]:.4f}" for c in columns if not math.isnan(worst[c])) + ".", "", "## Leaderboard"]
    return lines


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (POSIX flock; a no-op where fcntl is missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: single writer assumed
        yield
        return
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class IdentityMismatch(InputError):
    """A row, or a run, made on other data than the leaderboard's dataset."""


def _identity(value: DatasetIdentity | Mapping[str, Any] | None) -> DatasetIdentity | None:
    if value is None or isinstance(value, DatasetIdentity):
        return value
    if not value:
        return None
    try:
        return DatasetIdentity.from_dict(value)
    except (ValueError, TypeError):
        return None


def check_identity(board: DatasetIdentity | Mapping[str, Any] | None, other: DatasetIdentity | Mapping[str, Any] | None,
                   *, where: str | os.PathLike | None, what: str) -> None:
    """Refuse `what` (a run, a row) made on `other` data than the leaderboard's `board` dataset; the error
    names both. Nothing is checked when either identity is unknown."""
    board, other = _identity(board), _identity(other)
    if board is None or other is None:
        return
    differ = board.differences(other)
    if differ:
        raise IdentityMismatch(
            where, f"is the leaderboard of {board.describe()}; {what} was made on {other.describe()} "
            f"(they differ in {', '.join(differ)}), so its figures cannot be ranked here.",
            f"Record it on the leaderboard of its own dataset (vosbench leaderboard --gt <that dataset>), or run "
            f"the method on {board.title} {board.split}.")


def write_leaderboard(table: pd.DataFrame, leaderboard_dir: str | os.PathLike, *, dataset: str, split: str,
                      track: str, protocol: str = "", notes: Iterable[str] = (),
                      identity: DatasetIdentity | Mapping[str, Any] | None = None) -> dict[str, Path]:
    """Write the table as csv, md and json (each atomically, all rendered before any is written).

    identity: the dataset the leaderboard belongs to, recorded in its JSON and shown in its markdown."""
    paths = leaderboard_paths(leaderboard_dir, dataset, split, track)
    table = sort_table(normalise(table))
    notes = list(notes)
    meta = {"dataset": _text(dataset), "split": _text(split), "track": _text(track), "protocol": protocol,
            "notes": notes}
    identity = _identity(identity)
    if identity is not None:
        meta["dataset_identity"] = identity.to_dict()
    shown = notes + ([""] if notes else []) + reproduction_notes(reproduction_table(table))
    texts = {"csv": render_csv(table), "md": render_markdown(table, meta, shown),
             "json": render_json(table, meta)}
    for key, path in paths.items():
        atomic_write(path, texts[key])
    return paths


def update_leaderboard(rows: Iterable[Mapping[str, Any]], leaderboard_dir: str | os.PathLike, *, dataset: str,
                       split: str, track: str, protocol: str = "", notes: Iterable[str] | None = None,
                       replace: bool = False, sequences: Iterable[Mapping[str, Any]] = (),
                       drop: Iterable[tuple[str, str]] = (),
                       identity: DatasetIdentity | Mapping[str, Any] | None = None) -> dict[str, Path]:
    """Upsert rows into the leaderboard files (or replace the whole table when `replace`).

    identity: the dataset the rows were computed on. A leaderboard that already belongs to another
        dataset refuses them (`IdentityMismatch`, naming both); one without an identity takes it.
        So does a row whose own ``gt_fingerprint`` is not the leaderboard's. Rows without a dataset
        name get the leaderboard's.

    notes: lines shown above the table; None keeps the notes the leaderboard already has.
    sequences: per-sequence rows (`sequence_rows`); they replace the per-sequence rows of the
        same (method, source, options) in ``<stem>.sequences.csv``.
    drop: (method, source) pairs whose earlier rows go, whatever their options.
    """
    paths = leaderboard_paths(leaderboard_dir, dataset, split, track)
    drop = list(drop)
    with _locked(paths["json"].with_name("." + paths["json"].name + ".lock")):
        old = empty_table() if replace else _read_existing(paths)
        meta = _read_meta(paths["json"]) if not replace and paths["json"].is_file() else {}
        board = _identity(meta.get("dataset_identity"))
        given = _identity(identity)
        check_identity(board, given, where=paths["md"], what="the data of these rows")
        board = board or given
        rows = [dict(row) for row in rows]
        for row in rows:
            if board is not None and row.get("gt_fingerprint") and row["gt_fingerprint"] != board.fingerprint:
                raise IdentityMismatch(paths["md"], f"is the leaderboard of {board.describe()}; the row of "
                                       f"{row.get('method')} ({row.get('source')}) was computed on ground truth "
                                       f"{row['gt_fingerprint']} ({row.get('dataset') or 'dataset not named'}).",
                                       "Record it on the leaderboard of its own dataset.")
            if not row.get("dataset"):
                row["dataset"] = board.name if board is not None else _text(dataset)
        # Checked before anything is written: a refused row leaves every file as it was.
        _upsert_sequences(sequences_path(leaderboard_dir, dataset, split, track), list(sequences), drop)
        protocol = protocol or meta.get("protocol", "")
        notes = list(meta.get("notes", [])) if notes is None else list(notes)
        table = upsert(old, rows, drop)
        if board is not None and len(table):
            # Every row on the leaderboard of a dataset names it (rows written before names were recorded too).
            unnamed = table["dataset"].map(lambda v: v is None or v is pd.NA or str(v) in ("", "nan"))
            table.loc[unnamed, "dataset"] = board.name
        return write_leaderboard(table, leaderboard_dir, dataset=dataset, split=split, track=track,
                                 protocol=protocol, notes=notes, identity=board)


def _read_existing(paths: Mapping[str, Path]) -> pd.DataFrame:
    if paths["json"].is_file():
        return read_leaderboard(paths["json"])
    if paths["csv"].is_file():
        return read_leaderboard(paths["csv"])
    return empty_table()


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {}
    return {k: v for k, v in payload.items() if k not in ("rows", "columns")} if isinstance(payload, dict) else {}


def record_run(record: Any, result: Any, leaderboard_dir: str | os.PathLike = Path("leaderboards"), *,
               t_mean: float | None = None) -> Path:
    """Upsert the row of one `vosbench run` into ``<dataset>-<split>-<track>.{csv,md,json}``.

    record: a `vosbench.methods.runner.RunRecord` (or any object or mapping with its fields:
        method, track, dataset, split, resolution, device, n_sequences, n_frames, n_objects,
        seconds, seconds_per_frame, masks_dir, started, vosbench_version, options).
    result: the `vosbench.tracks.Result` of scoring the run's masks.
    t_mean: temporal stability T of the run's masks, when it was measured.
    Returns the path of the markdown table.
    """
    dataset, split, track = (_text(_field(record, k)) for k in ("dataset", "split", "track"))
    missing = [k for k, v in (("dataset", dataset), ("split", split), ("track", track)) if not v]
    if missing:
        raise InputError(None, f"the run record has no {', '.join(missing)}.",
                         "pass the RunRecord that `vosbench run` built.")
    row = row_from_record(record, result, t_mean=t_mean)
    params = getattr(result, "params", None)
    protocol = params.describe() if params is not None and hasattr(params, "describe") else ""
    per_sequence = sequence_rows(row["method"], result.per_object, source=Source.THIS_RUN,
                                 options=_field(record, "options"))
    paths = update_leaderboard([row], leaderboard_dir, dataset=dataset, split=split, track=track,
                               protocol=protocol, sequences=per_sequence,
                               identity=_field(record, "dataset_identity") or None)
    log.info("leaderboard row for %s written to %s", row["method"], paths["md"])
    return paths["md"]
