"""Open a dataset by kind name (what the CLI's --dataset takes)."""
from __future__ import annotations

import enum
import os

from vosbench.io.datasets import Dataset, DavisDataset


class DatasetKind(str, enum.Enum):
    DAVIS2016 = "davis2016"
    DAVIS2017 = "davis2017"
    YOUTUBEVOS = "youtubevos"
    FOLDER = "folder"
    MOSE = "mose"
    MOSEV2 = "mosev2"
    LVOS = "lvos"
    SAV = "sav"
    VOST = "vost"


# The benchmarks' own layouts (MOSE, MOSEv2, LVOS, SA-V, VOST): kind -> "module:class".
_BENCHMARK_READERS = {
    DatasetKind.MOSE: "vosbench.io.flat:MoseDataset",
    DatasetKind.MOSEV2: "vosbench.io.flat:MoseV2Dataset",
    DatasetKind.LVOS: "vosbench.io.lvos:LvosDataset",
    DatasetKind.SAV: "vosbench.io.sav:SavDataset",
    DatasetKind.VOST: "vosbench.io.flat:VostDataset",
}


def open_dataset(kind: DatasetKind | str, root: str | os.PathLike, split: str = "val",
                 resolution: str = "480p", unsupervised: bool = False, **options) -> Dataset:
    """The dataset of `kind` at `root`.

    unsupervised: DAVIS 2017 keeps a separate ground truth for the unsupervised
    track (``Annotations_unsupervised``); it is used when present.
    """
    kind = DatasetKind(kind)
    if kind is DatasetKind.DAVIS2016:
        return DavisDataset(root, year=2016, split=split, resolution=resolution, **options)
    if kind is DatasetKind.DAVIS2017:
        return DavisDataset(root, year=2017, split=split, resolution=resolution,
                            annotations="Annotations_unsupervised" if unsupervised else "Annotations", **options)
    if kind is DatasetKind.YOUTUBEVOS:
        from vosbench.io.youtubevos import YouTubeVOSDataset

        return YouTubeVOSDataset(root, split=split, **options)
    if kind in _BENCHMARK_READERS:
        module, cls = _BENCHMARK_READERS[kind].split(":")
        import importlib

        return getattr(importlib.import_module(module), cls)(root, split=split, **options)
    from vosbench.io.folder import FolderDataset

    return FolderDataset(root, **options)
