"""DAVIS sequence attributes (occlusion, fast motion, ...) and J&F per attribute.

The attribute tables ship with vosbench (``vosbench/data``), converted from the
DAVIS ``db_info.yml``; see ``vosbench/data/README.md`` for their source.
"""
from __future__ import annotations

import enum
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

import pandas as pd

from vosbench.errors import InputError

ALL_SEQUENCES = "all"


class AttributeSet(str, enum.Enum):
    """Which shipped attribute table to use."""

    DAVIS2016 = "davis2016"
    DAVIS2017 = "davis2017"


def _data_file(name: str):
    return resources.files("vosbench").joinpath("data", name)


@lru_cache(maxsize=None)
def _read_table(kind: AttributeSet) -> pd.DataFrame:
    with _data_file(f"{kind.value}_attributes.csv").open("r", encoding="utf-8") as handle:
        table = pd.read_csv(handle, dtype={"sequence": str, "set": str})
    return table.set_index("sequence")


@lru_cache(maxsize=None)
def attribute_names() -> dict[str, str]:
    """{code: name} of every DAVIS attribute, e.g. {"OCC": "Occlusion", ...}."""
    with _data_file("davis_attribute_names.csv").open("r", encoding="utf-8") as handle:
        table = pd.read_csv(handle, dtype=str)
    return dict(zip(table["code"], table["name"]))


def attribute_table(dataset: AttributeSet | str = AttributeSet.DAVIS2016, *, split: str | None = None,
                    path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Rows: sequences; columns: ``set``, ``num_frames``, ``eval_t`` and one bool column per attribute.

    dataset: which shipped table (DAVIS 2017 knows attributes only for the 50 sequences
        inherited from DAVIS 2016; the others are left out).
    split: keep only the sequences of one split (``train``, ``val``, ``test-dev``).
    path: read a DAVIS ``db_info.yml`` instead of a shipped table.
    """
    if path is not None:
        table = read_db_info(path)
    else:
        try:
            kind = AttributeSet(dataset)
        except ValueError as exc:
            raise InputError(None, f"no attribute table for dataset {dataset!r}.",
                             f"Use one of {[k.value for k in AttributeSet]} or pass the dataset's db_info.yml.") from exc
        table = _read_table(kind)
    codes = [c for c in attribute_names() if c in table.columns]
    table = table.dropna(subset=codes, how="all").copy()
    table[codes] = table[codes].astype(int).astype(bool)
    if "eval_t" in table:
        table["eval_t"] = table["eval_t"].astype(int).astype(bool)
    if split is not None:
        table = table[table["set"] == split]
    return table


def read_db_info(path: str | os.PathLike) -> pd.DataFrame:
    """A DAVIS ``db_info.yml`` as an attribute table (split names mapped to train / val)."""
    import yaml

    path = Path(path)
    try:
        info = yaml.safe_load(path.read_text(encoding="utf-8"))
        codes = list(info["attributes"])
        rows = []
        for seq in info["sequences"]:
            row = {"sequence": str(seq["name"]),
                   "set": {"training": "train", "test": "val"}.get(seq["set"], seq["set"]),
                   "num_frames": int(seq["num_frames"]), "eval_t": int(bool(seq.get("eval_t", True)))}
            row.update({c: int(c in (seq.get("attributes") or [])) for c in codes})
            rows.append(row)
    except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise InputError(path, f"is not a DAVIS db_info.yml ({exc}).",
                         "Pass the db_info.yml from the DAVIS root.") from exc
    return pd.DataFrame(rows).set_index("sequence")


def sequence_attributes(dataset: AttributeSet | str = AttributeSet.DAVIS2016) -> dict[str, list[str]]:
    """{sequence: [attribute codes]}."""
    table = attribute_table(dataset)
    codes = [c for c in attribute_names() if c in table.columns]
    return {seq: [c for c in codes if row[c]] for seq, row in table.iterrows()}


def eval_t_sequences(dataset: AttributeSet | str = AttributeSet.DAVIS2016) -> list[str]:
    """Sequences that count towards temporal stability T (``eval_t`` in db_info.yml)."""
    table = attribute_table(dataset)
    return sorted(table.index[table["eval_t"]])


def jf_per_attribute(tidy: pd.DataFrame, dataset: AttributeSet | str = AttributeSet.DAVIS2016, *,
                     measure: str = "J&F", attributes: pd.DataFrame | None = None,
                     min_sequences: int = 1) -> pd.DataFrame:
    """Rows: attributes (plus ``all``); columns: methods, then ``n_sequences``.

    A cell is the measure's mean over the objects of the sequences that carry the
    attribute (per-object mean over frames first, as the global table does).
    attributes: a table of your own (index: sequence; one bool column per attribute)
        instead of the shipped DAVIS one.
    Sequences absent from the attribute table are counted in ``all`` only.
    """
    if attributes is None:
        attributes = attribute_table(dataset)
        codes = [c for c in attribute_names() if c in attributes.columns]
    else:
        # Any table of bool columns indexed by sequence: the DAVIS one or a dataset's own.
        codes = [c for c in attributes.columns if attributes[c].dtype == bool and c != "eval_t"]
    data = tidy[tidy["measure"] == measure]
    if data.empty:
        raise KeyError(f"no {measure} scores in the frame")
    per_object = data.groupby(["method", "sequence", "object"])["value"].mean().reset_index()
    methods = list(dict.fromkeys(tidy["method"]))
    sequences = sorted(per_object["sequence"].unique())
    rows = {}
    counts = {}
    known = [s for s in sequences if s in attributes.index]
    for code in codes:
        with_attr = [s for s in known if attributes.at[s, code]]
        if len(with_attr) < min_sequences:
            continue
        subset = per_object[per_object["sequence"].isin(with_attr)]
        rows[code] = subset.groupby("method")["value"].mean()
        counts[code] = len(with_attr)
    rows[ALL_SEQUENCES] = per_object.groupby("method")["value"].mean()
    counts[ALL_SEQUENCES] = len(sequences)
    table = pd.DataFrame(rows).T.reindex(columns=methods)
    table.index.name = "attribute"
    table.columns.name = "method"
    table["n_sequences"] = pd.Series(counts)
    names = attribute_names()
    table.insert(0, "name", [names.get(c, c) if c != ALL_SEQUENCES else "all sequences" for c in table.index])
    return table
