"""vosbench: benchmark and evaluation harness for video object segmentation.

    >>> import vosbench
    >>> result = vosbench.evaluate("DAVIS", "my_results", dataset="davis2017", track="semi")
    >>> result.global_table      # pandas DataFrame, the official columns
"""
from __future__ import annotations

from pathlib import Path

from vosbench.errors import InputError, ValidationError, VosbenchError
from vosbench.io.factory import DatasetKind, detect_dataset_kind, open_dataset
from vosbench.tracks import EvalParams, Result, Track, evaluate_dataset

__version__ = "0.1.0"
__all__ = ["evaluate", "EvalParams", "Result", "Track", "DatasetKind", "open_dataset", "detect_dataset_kind",
           "VosbenchError", "InputError", "ValidationError", "__version__"]


def evaluate(gt: str | Path, results: str | Path, *, dataset: DatasetKind | str | None = None,
             track: Track | str = Track.SEMI, split: str = "val", resolution: str = "480p",
             params: EvalParams | None = None, jobs: int = 1, backend: str | None = None,
             scheduler: str | None = None, cache: bool = True, lenient: bool = False,
             progress: bool = False) -> Result:
    """Score a folder of result masks against a dataset's ground truth under the official protocol.

    dataset: the kind of `gt` (davis2016, davis2017, youtubevos, synthetic, folder); None detects it
        from the folder, and a kind that contradicts the folder is an InputError. The result carries
        the dataset's identity (`Result.identity`: kind, name, split, resolution, number of sequences,
        ground-truth fingerprint), written with its CSVs and JSON.
    """
    from vosbench.io.identity import dataset_identity

    kind = detect_dataset_kind(gt, dataset)
    track = Track(track)
    ds = open_dataset(kind, gt, split=split, resolution=resolution, unsupervised=track is Track.UNSUPERVISED)
    params = params or EvalParams.official(track, dataset=kind)
    result = evaluate_dataset(ds, results, params, jobs=jobs, backend=backend, scheduler=scheduler,
                              cache_dir=cache, lenient=lenient, progress=progress, split=split)
    result.identity = dataset_identity(ds).to_dict()
    return result
