"""Gather evaluated runs and published masks into a leaderboard.

`build_leaderboard` scores each folder of published result masks with
`vosbench.evaluate` (J, F) and `results_t` (T), quotes the published figures
when an official leaderboard file is given, adds the rows of vosbench runs,
and writes ``<dataset>-<split>-<track>.{csv,md,json}``. Rows already in the
leaderboard that this build does not touch (runs recorded by `vosbench run`)
are kept.

Which published methods a track's leaderboard holds follows from the track each
was made for (``vosbench/data/published_methods.csv``): a method may rank on a
track that gives it at least what it used. The semi-supervised leaderboard takes
semi-supervised and unsupervised methods (the DAVIS 2016 leaderboard ranks them
together); the unsupervised one takes unsupervised methods only, since a
semi-supervised method was given the first frame's mask.
"""
from __future__ import annotations

import enum
import json
import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from vosbench.errors import InputError
from vosbench.io.identity import DatasetIdentity
from vosbench.reports.leaderboard import (IdentityMismatch, Source, check_identity, leaderboard_paths,
                                          read_leaderboard, reproduction_table, row_from_result, row_from_summary,
                                          run_masks_path, sequence_rows, short_path, update_leaderboard)
from vosbench.tracks.params import EvalParams, Track

log = logging.getLogger(__name__)

# The keys of the official DAVIS 2016 leaderboard file, and our columns.
OFFICIAL_KEYS = {"Jmean": "J-Mean", "Jrecall": "J-Recall", "Jdecay": "J-Decay", "Fmean": "F-Mean",
                 "Frecall": "F-Recall", "Fdecay": "F-Decay", "T": "T-Mean"}
RUN_RECORD_NAMES = ("run.json", "record.json")
PUBLISHED_METHODS_FILE = "published_methods.csv"
# The tracks whose methods a track's leaderboard admits: those given no more than the track gives.
ADMITTED = {Track.SEMI: frozenset({Track.SEMI, Track.UNSUPERVISED}),
            Track.UNSUPERVISED: frozenset({Track.UNSUPERVISED})}


class Measure(str, enum.Enum):
    """What a leaderboard build measures. J and F come together (J&F needs both)."""

    J = "J"
    F = "F"
    T = "T"


def parse_measures(text: str | Iterable[str]) -> frozenset[Measure]:
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if str(t).strip()]
    try:
        measures = frozenset(Measure(t.upper()) for t in items)
    except ValueError as exc:
        raise InputError(None, f"unknown measure in {items} ({exc}).", "Use a comma-separated list of J, F, T.") \
            from exc
    # J and F are always measured: J&F, the ranking column, needs both.
    return measures | {Measure.J, Measure.F}


def is_masks_folder(folder: Path) -> bool:
    """A folder with at least one sub-folder of PNG masks."""
    if not folder.is_dir():
        return False
    for sub in folder.iterdir():
        if sub.is_dir() and not sub.name.startswith(".") and any(sub.glob("*.png")):
            return True
    return False


def published_folders(root: str | os.PathLike) -> dict[str, Path]:
    """{method: folder} for every sub-folder of `root` holding per-sequence mask folders."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "is not a folder.", "Pass the folder that holds one folder of masks per method.")
    found = {p.name: p for p in sorted(root.iterdir()) if not p.name.startswith(".") and is_masks_folder(p)}
    if not found:
        raise InputError(root, "holds no folder of result masks (<method>/<sequence>/<frame>.png).",
                         "Pass the folder that holds one folder of masks per method.")
    return found


def official_figures(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """An official leaderboard file ({method: {Jmean, Jrecall, ..., T}}) as {method: {our column: value}}."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot be read as JSON ({exc}).", "Pass the official leaderboard JSON.") from exc
    out = {}
    for method, figures in payload.items():
        if not isinstance(figures, Mapping):
            continue
        row = {column: float(figures[key]) for key, column in OFFICIAL_KEYS.items() if key in figures}
        if "J-Mean" in row and "F-Mean" in row:
            row["J&F-Mean"] = (row["J-Mean"] + row["F-Mean"]) / 2
        out[str(method)] = row
    if not out:
        raise InputError(path, "holds no leaderboard rows.", "Pass the official leaderboard JSON.")
    return out


@lru_cache(maxsize=1)
def published_method_tracks() -> dict[str, Track]:
    """{method: the track it was made for} of the published methods vosbench knows (shipped table)."""
    with resources.files("vosbench").joinpath("data", PUBLISHED_METHODS_FILE).open("r", encoding="utf-8") as handle:
        table = pd.read_csv(handle, dtype=str)
    return {str(m): Track(t) for m, t in zip(table["method"], table["track"])}


def select_methods(available: Iterable[str], track: Track | str, methods: Sequence[str] | None = None, *,
                   where: str | os.PathLike | None = None) -> list[str]:
    """The names among `available` that belong on the leaderboard of `track`, in their order.

    methods: the methods asked for (``--methods``); None: every method the track admits by the
        shipped table. On the semi-supervised track a method missing from the table is taken; on
        the unsupervised track it must be named in `methods`.
    where: the folder or file the names come from, for error messages.
    Raises InputError for a named method made for a track that gives more than `track`.
    """
    track = Track(track)
    if track not in ADMITTED:
        raise InputError(where, f"has no published-method leaderboard for the {track.value} track.",
                         "Use --track semi or --track unsupervised.")
    admitted, known, available = ADMITTED[track], published_method_tracks(), list(available)
    if methods:
        wrong = sorted(m for m in methods if m in known and known[m] not in admitted)
        if wrong:
            made_for = ", ".join(f"{m} ({known[m].value})" for m in wrong)
            raise InputError(where, f"{made_for}: made for a track that gives more than the {track.value} track, "
                             f"so not ranked on its leaderboard (see vosbench/data/{PUBLISHED_METHODS_FILE}).",
                             "Leave them out of --methods, or build the leaderboard of their track.")
        return [m for m in available if m in set(methods)]
    unknown = [m for m in available if m not in known]
    if unknown and track is not Track.SEMI:
        raise InputError(where, f"holds {unknown}, whose track vosbench does not know (vosbench/data/"
                         f"{PUBLISHED_METHODS_FILE}), so it cannot tell whether they are {track.value} methods.",
                         f"Name the {track.value} methods to rank with --methods.")
    return [m for m in available if m not in known or known[m] in admitted]


def find_official_file(published_root: Path, split: str) -> Path | None:
    for name in (f"official_global_{split}.json", "official_global.json"):
        if (published_root / name).is_file():
            return published_root / name
    return None


def _eval_t(dataset_kind: str) -> dict[str, bool] | None:
    from vosbench.reports.attributes import AttributeSet, attribute_table

    try:
        table = attribute_table(AttributeSet(dataset_kind))
    except ValueError:
        return None
    return table["eval_t"].to_dict()


def _left_out_note(track: Track, left_out: list[str], named: bool) -> str:
    if named:
        return f"- Published methods not named for this leaderboard (`--methods`), left out: {', '.join(left_out)}."
    known = published_method_tracks()
    return (f"- Published methods made for a track that gives more than the {track.value} track are left out "
            f"(vosbench/data/{PUBLISHED_METHODS_FILE}): "
            + ", ".join(f"{m} ({known[m].value})" if m in known else m for m in left_out) + ".")


@dataclass
class LeaderboardBuild:
    """What a build produced: the rows it wrote, the files, and the reproduction check."""

    rows: list[dict[str, Any]]
    paths: dict[str, Path]
    table: pd.DataFrame
    reproduction: pd.DataFrame = field(default_factory=pd.DataFrame)


def _run_record(folder: Path) -> dict[str, Any]:
    for name in RUN_RECORD_NAMES:
        path = folder / name
        if path.is_file():
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise InputError(path, f"is not valid JSON ({exc}).", "Re-run the method or delete the file.") \
                    from exc
            if isinstance(record, Mapping):
                return dict(record)
    return {}


def _run_summary(folder: Path, split: str, protocol: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The global scores stored in a run folder; None when there are none, or (given `protocol`, the
    `EvalParams.to_dict()` of the leaderboard) when they were made under another protocol."""
    for path in [folder / f"results-{split}.json", *sorted(folder.glob("*/results-*.json"))]:
        if path.is_file():
            try:
                payload = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                continue
            if isinstance(payload, Mapping) and isinstance(payload.get("global"), Mapping):
                stored = payload.get("protocol")
                if protocol is not None and isinstance(stored, Mapping) and dict(stored) != dict(protocol):
                    log.info("%s: its scores were made under another protocol (%s); its masks are scored again",
                             path, stored)
                    return None
                return dict(payload["global"])
    return None


def _official_protocol(track: str, dataset: str) -> dict[str, Any] | None:
    from vosbench.io.factory import DatasetKind

    try:
        return EvalParams.official(track, dataset=DatasetKind(dataset)).to_dict()
    except ValueError:  # a dataset name that is no kind (e.g. synthetic): nothing to compare with
        return None


def run_row(folder: str | os.PathLike, *, gt: str | os.PathLike | None, dataset: str, split: str, track: str,
            resolution: str = "480p", measures: frozenset[Measure] = frozenset({Measure.J, Measure.F}),
            jobs: int = 1, progress: bool = False, sequences_out: list[dict[str, Any]] | None = None,
            backend: str | None = None, scheduler: str | None = None,
            identity: DatasetIdentity | None = None, board: str | os.PathLike | None = None) -> dict[str, Any]:
    """The leaderboard row of one vosbench run folder (its record, its scores; masks scored if need be).

    sequences_out: when given, the run's per-object rows (J, F and, when measured, T) are appended
        to it, for the leaderboard's per-sequence table.
    identity: the leaderboard's dataset (`board`: its file, for messages). A run recorded on other data
        (run.json's ``dataset_identity``; for a record without one, its dataset name, split and number
        of sequences) is refused with `IdentityMismatch`, naming both.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "is not a run folder.", "Pass folders written by `vosbench run`.")
    record = _run_record(folder)
    if identity is not None:
        _check_run_identity(folder, record, identity, board)
    if record.get("track") and str(record["track"]) != Track(track).value:
        raise InputError(folder, f"is a run of the {record['track']} track, not of the {Track(track).value} track.",
                         f"Pass it to the leaderboard of its track (--track {record['track']}).")
    masks = Path(record["masks_dir"]) if record.get("masks_dir") else folder / "masks"
    if not masks.is_absolute() and not masks.exists():
        masks = folder / masks.name
    if not masks.is_dir() and is_masks_folder(folder):
        masks = folder
    summary = _run_summary(folder, split, _official_protocol(track, dataset))
    result, t_scores = None, []
    if summary is None or Measure.T in measures:
        if gt is None:
            raise InputError(folder, "holds no results-<split>.json to read the scores from.",
                             "Pass --gt so that its masks can be scored.")
        import vosbench
        from vosbench.io.factory import open_dataset
        from vosbench.reports.temporal_scores import results_t, t_mean

        if summary is None:
            result = vosbench.evaluate(gt, masks, dataset=dataset, track=track, split=split,
                                       resolution=resolution, jobs=jobs, cache=True, progress=progress,
                                       backend=backend, scheduler=scheduler)
            summary = dict(result.summary)
            sequences = [s.sequence for s in result.sequences]
        else:
            sequences = None
        if Measure.T in measures:
            ds = open_dataset(dataset, gt, split=split, resolution=resolution)
            t_scores = results_t(ds, masks, sequences=sequences, jobs=jobs, progress=progress,
                                 backend=backend, scheduler=scheduler)
            summary["T-Mean"] = t_mean(t_scores, _eval_t(dataset))
    info = {k: record.get(k) for k in ("device", "n_sequences", "n_frames", "n_objects", "resolution",
                                       "vosbench_version", "commit", "dirty", "threads", "cpu")
            if record.get(k) is not None}
    recorded = record.get("dataset_identity") or {}
    info["dataset"] = recorded.get("name") or (identity.name if identity is not None else record.get("dataset"))
    info["gt_fingerprint"] = recorded.get("fingerprint", "")
    spf = record.get("seconds_per_frame")
    if sequences_out is not None:
        per_object = None if result is None else result.per_object
        stored = folder / f"per-object_results-{split}.csv"
        if per_object is None and stored.is_file():
            # The per-object figures `vosbench run` wrote beside the global ones (same protocol).
            per_object = pd.read_csv(stored, dtype={"sequence": str})
        sequences_out += sequence_rows(str(record.get("method") or folder.name), per_object,
                                       source=Source.THIS_RUN, options=record.get("options"), t_scores=t_scores)
    return row_from_summary(str(record.get("method") or folder.name), summary, source=Source.THIS_RUN,
                            options=record.get("options"), masks=run_masks_path(masks),
                            seconds_per_frame=float(spf) if spf is not None else None,
                            date=str(record.get("started") or "")[:19] or None, **info)


def _check_run_identity(folder: Path, record: Mapping[str, Any], identity: DatasetIdentity,
                        board: str | os.PathLike | None) -> None:
    what = f"the run in {folder}"
    recorded = record.get("dataset_identity")
    if recorded:
        check_identity(identity, recorded, where=board, what=what)
        return
    # A run.json written before datasets had identities: what it does say must agree.
    said = {"name": record.get("dataset"), "split": record.get("split"), "n_sequences": record.get("n_sequences")}
    board_values = {"name": identity.name, "split": identity.split, "n_sequences": identity.n_sequences}
    differ = [k for k, v in said.items() if v is not None and str(v) != str(board_values[k])]
    if differ or said["name"] is None:
        made_on = ", ".join(f"{k} {said[k]}" for k in said if said[k] is not None) or "unnamed data"
        raise IdentityMismatch(board, f"is the leaderboard of {identity.describe()}; {what} was made on "
                               f"{made_on} (it differs in {', '.join(differ) or 'name: not recorded'}).",
                               "Record it on the leaderboard of its own dataset, or run the method on "
                               f"{identity.title} {identity.split}.")
    log.warning("%s: run.json records no dataset identity (made before vosbench recorded one); its dataset name, "
                "split and number of sequences agree with %s", folder, identity.describe())


def build_leaderboard(gt: str | os.PathLike, *, dataset: str | None = None, split: str = "val",
                      track: str = "semi",
                      published: str | os.PathLike | None = None, official: str | os.PathLike | None = None,
                      runs: Sequence[str | os.PathLike] = (), measures: Iterable[Measure | str] = ("J", "F", "T"),
                      leaderboard_dir: str | os.PathLike = "leaderboards", resolution: str = "480p",
                      jobs: int = 1, cache: bool = True, progress: bool = False,
                      backend: str | None = None, scheduler: str | None = None,
                      t_without_first_reference: Iterable[str] = (),
                      methods: Sequence[str] | None = None) -> LeaderboardBuild:
    """Score published mask folders and runs, and write the leaderboard files.

    published: a folder of ``<method>/<sequence>/<frame>.png`` folders (each scored here).
    official: the published leaderboard figures ({method: {Jmean, ..., T}}); by default
        ``official_global_<split>.json`` in `published` when it exists. Its rows are quoted,
        labelled as such, beside the rows computed here.
    methods: the published methods to score and quote; None: those `track` admits
        (`select_methods`: on the unsupervised track, unsupervised methods only).
    runs: vosbench run folders (their record and scores; masks scored when no scores are stored).
    t_without_first_reference: published methods whose T is computed without comparing the first
        evaluated frame with the first frame's ground truth (the DAVIS toolkit's ``eval_result``, by
        which some published T figures were made). Their rows say so in the options column, and a
        note gives their T the other way.
    """
    import vosbench
    from vosbench.io.factory import detect_dataset_kind, open_dataset
    from vosbench.io.identity import dataset_identity
    from vosbench.reports.temporal_scores import results_t, t_mean

    rewrite = published is None and official is None and not runs
    if rewrite and not any(Path(leaderboard_dir).glob(f"*-{split}-{track}.json")):
        raise InputError(None, "nothing to put on the leaderboard.", "Pass --published and/or --runs.")
    # The leaderboard belongs to the dataset at `gt` (kind checked against the folder), named by it.
    dataset = detect_dataset_kind(gt, dataset).value
    ds = open_dataset(dataset, gt, split=split, resolution=resolution)
    identity = dataset_identity(ds)
    paths = leaderboard_paths(leaderboard_dir, identity.name, split, track)
    board = paths["md"]
    if rewrite:
        # Nothing new: the existing leaderboard of this dataset is written again (byte for byte when it is
        # already in the current format; one written before identities takes this dataset's).
        if not paths["json"].is_file():
            raise InputError(paths["json"], "nothing to put on the leaderboard, and no leaderboard of this dataset "
                             "to rewrite.", "Pass --published and/or --runs.")
        paths = update_leaderboard([], leaderboard_dir, dataset=identity.name, split=split, track=str(track),
                                   identity=identity)
        table = read_leaderboard(paths["json"])
        return LeaderboardBuild(rows=[], paths=paths, table=table, reproduction=reproduction_table(table))
    measures = parse_measures([m.value if isinstance(m, Measure) else m for m in measures])
    methods = list(methods) if methods else None
    rows: list[dict[str, Any]] = []
    per_sequence: list[dict[str, Any]] = []
    drop: list[tuple[str, str]] = []
    notes: list[str] | None = None
    without_reference = set(t_without_first_reference)
    protocol = ""
    eval_t = _eval_t(str(dataset))
    # Every published name is checked before anything is scored.
    folders: dict[str, Path] = {}
    if published is not None:
        published = Path(published)
        folders = published_folders(published)
        unknown = sorted(without_reference - set(folders))
        if unknown:
            raise InputError(published, f"has no published masks of {unknown} (named for T without the first "
                             "reference).", f"Name methods among {sorted(folders)}.")
        if official is None:
            official = find_official_file(published, split)
    quoted = official_figures(official) if official is not None else {}
    offered = set(folders) | set(quoted)
    missing = sorted(set(methods or ()) - offered)
    if missing:
        raise InputError(published or official, f"has no published method {missing} (named in --methods).",
                         f"Name methods among {sorted(offered)}.")
    chosen_quoted = select_methods(quoted, track, methods, where=official)
    folders = {m: folders[m] for m in select_methods(folders, track, methods, where=published)}
    left_out = offered - set(folders) - set(chosen_quoted)

    if published is not None:
        notes = []
        for method, folder in folders.items():
            log.info("scoring the published masks of %s", method)
            result = vosbench.evaluate(gt, folder, dataset=dataset, track=track, split=split,
                                       resolution=resolution, jobs=jobs, cache=cache, progress=progress,
                                       backend=backend, scheduler=scheduler)
            protocol = result.params.describe()
            t_value, scores = None, []
            with_reference = method not in without_reference
            options = {} if with_reference else {"t_first_reference": False}
            if Measure.T in measures:
                names = [s.sequence for s in result.sequences]
                scores = results_t(ds, folder, sequences=names, first_reference=with_reference, jobs=jobs,
                                   backend=backend, scheduler=scheduler,
                                   cache=cache, progress=progress)
                t_value = t_mean(scores, eval_t)
                if not with_reference:
                    other = t_mean(results_t(ds, folder, sequences=names, jobs=jobs, cache=cache,
                                             backend=backend, scheduler=scheduler,
                                             progress=progress), eval_t)
                    notes.append(f"- {method}: T computed without comparing the first evaluated frame with the "
                                 f"first frame's ground truth (the DAVIS toolkit's `eval_result`), "
                                 f"{t_value:.4f}; compared with it, as for the other rows, T is {other:.4f}.")
            drop += [(method, Source.RECOMPUTED.value), (method, Source.PUBLISHED.value)]
            per_sequence += sequence_rows(method, result.per_object, source=Source.RECOMPUTED, options=options,
                                          t_scores=scores)
            rows.append(row_from_result(method, result, source=Source.RECOMPUTED, t_mean=t_value, options=options,
                                        masks=short_path(folder, published.parent), resolution=resolution,
                                        vosbench_version=vosbench.__version__, dataset=identity.name,
                                        gt_fingerprint=identity.fingerprint))
    for method in chosen_quoted:
        rows.append(row_from_summary(method, quoted[method], source=Source.PUBLISHED,
                                     masks=short_path(official, Path(official).parent.parent),
                                     dataset=identity.name))
    # A rebuild that leaves a published method out takes its earlier rows away too.
    drop += [(m, source.value) for m in sorted(left_out) for source in (Source.RECOMPUTED, Source.PUBLISHED)]
    if left_out:
        log.info("published methods left out of the %s leaderboard: %s", track, ", ".join(sorted(left_out)))
        if notes is not None:
            notes.append(_left_out_note(Track(track), sorted(left_out), named=methods is not None))
    for folder in runs:
        rows.append(run_row(folder, gt=gt, dataset=str(dataset), split=split, track=str(track),
                            resolution=resolution, measures=measures, jobs=jobs, progress=progress,
                            backend=backend, scheduler=scheduler,
                            sequences_out=per_sequence, identity=identity, board=board))
    if not rows:
        raise InputError(None, "nothing to put on the leaderboard.", "Pass --published and/or --runs.")
    if notes:
        notes.insert(0, "Notes:")
    paths = update_leaderboard(rows, leaderboard_dir, dataset=identity.name, split=split, track=str(track),
                               protocol=protocol, sequences=per_sequence, drop=drop, notes=notes, identity=identity)
    table = read_leaderboard(paths["json"])
    return LeaderboardBuild(rows=rows, paths=paths, table=table, reproduction=reproduction_table(table))
