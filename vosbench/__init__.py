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
           "embedded_dataset", "segment_dataset", "load_method", "available_methods",
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


def embedded_dataset(split: str = "val", seed: int = 0, resolution: str = "480p"):
    """The dataset `vosbench run` uses without --gt: generated on first use under
    ``$VOSBENCH_HOME/datasets`` (DAVIS 2017 layout, named ``synthetic``), opened."""
    from vosbench.io.synthetic import default_dataset_root

    return open_dataset(DatasetKind.SYNTHETIC, default_dataset_root(seed=seed), split=split, resolution=resolution)


# Methods and the runner, imported when first asked for (they bring in the method registry).
_LAZY = {"segment_dataset": "vosbench.methods.runner", "load_method": "vosbench.methods.registry",
         "available_methods": "vosbench.methods.registry"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vosbench' has no attribute {name!r}")
