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
    from vosbench.io.folder import FolderDataset

    return FolderDataset(root, **options)
