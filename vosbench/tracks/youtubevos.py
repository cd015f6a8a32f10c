"""YouTube-VOS's seen/unseen breakdown of a Result.

YouTube-VOS reports J and F separately for objects of categories seen in
training and of categories never seen there, and their plain mean as the
overall score: ``overall = (J_seen + F_seen + J_unseen + F_unseen) / 4``. Each of
the four is the mean over the objects of the group of the object's J (or F)
averaged over its scored frames (the per-object J-Mean / F-Mean of the Result).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from vosbench.errors import InputError
from vosbench.tracks.result import Result

COLUMNS = ["overall", "J_seen", "F_seen", "J_unseen", "F_unseen"]


def read_category_list(path: str | os.PathLike) -> set[str]:
    """Category names from a text file, one per line (blank lines and ``#`` comments ignored)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(path, f"category list cannot be read ({exc}).", "Give a text file, one category per line.")
    return {line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")}


def seen_unseen_breakdown(result: Result, categories: Mapping[tuple[str, int], str] | object,
                          seen: Iterable[str], unseen: Iterable[str]) -> pd.DataFrame:
    """One-row DataFrame: overall, J_seen, F_seen, J_unseen, F_unseen (and n_seen, n_unseen objects).

    categories: (sequence, object id) -> category name, or a dataset with a
        ``categories()`` method (`YouTubeVOSDataset`, read from meta.json).
    seen, unseen: the category names of each group (e.g. the training categories and
        the rest). A scored object whose category is in neither, or in both, is an error:
        a silently dropped object would change the numbers.
    A group with no object gives NaN, and so does overall.
    """
    if hasattr(categories, "categories") and callable(categories.categories):
        categories = categories.categories()
    seen, unseen = set(seen), set(unseen)
    both = seen & unseen
    if both:
        raise ValueError(f"categories listed as both seen and unseen: {sorted(both)}")
    objects = result.per_object
    groups = []
    unknown = []
    for sequence, object_id in zip(objects["sequence"], objects["object_id"]):
        category = categories.get((sequence, int(object_id)))
        if category in seen:
            groups.append("seen")
        elif category in unseen:
            groups.append("unseen")
        else:
            groups.append(None)
            unknown.append(f"{sequence}/{object_id} ({category or 'no category'})")
    if unknown:
        raise InputError(None, f"{len(unknown)} scored object(s) belong to neither the seen nor the unseen "
                               f"categories: {', '.join(unknown[:10])}.",
                         "Give every object a category in meta.json and list every category in one of the two lists.")
    groups = np.asarray(groups, dtype=object)
    row: dict[str, float] = {}
    for group in ("seen", "unseen"):
        chosen = objects[groups == group]
        row[f"J_{group}"] = float(chosen["J-Mean"].mean()) if len(chosen) else float("nan")
        row[f"F_{group}"] = float(chosen["F-Mean"].mean()) if len(chosen) else float("nan")
        row[f"n_{group}"] = int(len(chosen))
    row["overall"] = (row["J_seen"] + row["F_seen"] + row["J_unseen"] + row["F_unseen"]) / 4
    return pd.DataFrame([row], columns=COLUMNS + ["n_seen", "n_unseen"])
