"""vosbench: benchmark and evaluation harness for video object segmentation.

    >>> import vosbench
    >>> result = vosbench.evaluate("DAVIS", "my_results", dataset="davis2017", track="semi")
    >>> result.global_table      # pandas DataFrame, the official columns
"""
from __future__ import annotations

from pathlib import Path

from vosbench.errors import InputError, ValidationError, VosbenchError
from vosbench.io.factory import DatasetKind, open_dataset
from vosbench.tracks import EvalParams, Result, Track, evaluate_dataset

__version__ = "0.1.0"
__all__ = ["evaluate", "EvalParams", "Result", "Track", "DatasetKind", "open_dataset",
           "VosbenchError", "InputError", "ValidationError", "__version__"]


def evaluate(gt: str | Path, results: str | Path, *, dataset: DatasetKind | str = DatasetKind.DAVIS2017,
             track: Track | str = Track.SEMI, split: str = "val", resolution: str = "480p",
             params: EvalParams | None = None, jobs: int = 1, backend: str | None = None,
             scheduler: str | None = None, cache: bool = True, lenient: bool = False,
             progress: bool = False) -> Result:
    """Score a folder of result masks against a dataset's ground truth under the official protocol."""
    kind = DatasetKind(dataset)
    track = Track(track)
    ds = open_dataset(kind, gt, split=split, resolution=resolution, unsupervised=track is Track.UNSUPERVISED)
    params = params or EvalParams.official(track, dataset=kind)
    return evaluate_dataset(ds, results, params, jobs=jobs, backend=backend, scheduler=scheduler,
                            cache_dir=cache, lenient=lenient, progress=progress, split=split)
