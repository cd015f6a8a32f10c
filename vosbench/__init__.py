"""vosbench: benchmark and evaluation harness for video object segmentation.

    >>> import vosbench
    >>> result = vosbench.evaluate("DAVIS", "my_results", dataset="davis2017", track="semi")
    >>> result.global_table      # pandas DataFrame, the official columns
"""
from __future__ import annotations

from pathlib import Path

from typing import TYPE_CHECKING, Any

from vosbench.errors import InputError, ValidationError, VosbenchError

if TYPE_CHECKING:
    from vosbench.io.factory import DatasetKind, detect_dataset_kind, open_dataset
    from vosbench.tracks.params import EvalParams, Track
    from vosbench.tracks.result import Result

__version__ = "0.1.0"
__all__ = ["evaluate", "EvalParams", "Result", "Track", "DatasetKind", "open_dataset", "detect_dataset_kind",
           "embedded_dataset", "segment_dataset", "load_method", "available_methods",
           "VosbenchError", "InputError", "ValidationError", "__version__"]


def evaluate(gt: str | Path, results: str | Path, *, dataset: DatasetKind | str | None = None,
             track: Track | str = "semi", split: str = "val", resolution: str = "480p",
             params: EvalParams | None = None, jobs: int = 1, backend: str | None = None,
             scheduler: str | None = None, cache: bool = True, lenient: bool = False,
             progress: bool = False, metrics=None, metric_options=None) -> Result:
    """Score a folder of result masks against a dataset's ground truth under the official protocol.

    dataset: the kind of `gt` (davis2016, davis2017, youtubevos, synthetic, folder, or a benchmark
        layout: mose, mosev2, lvos, sav, vost); None detects it from the folder, and a kind that
        contradicts the folder is an InputError. The result carries the dataset's identity
        (`Result.identity`: kind, name, split, resolution, number of sequences, ground-truth
        fingerprint), written with its CSVs and JSON.
    metrics: what to measure: registry names ("J,F,T", ["J", "F"]) or `vosbench.metrics.base.Metric`
        instances; default: the dataset's official measures (J and F for DAVIS).
    metric_options: {metric name: keyword arguments} for metrics given by name.
    """
    from vosbench.io.factory import detect_dataset_kind, open_dataset
    from vosbench.io.identity import dataset_identity
    from vosbench.tracks.benchmarks import evaluate_benchmark, uses_benchmark_jobs
    from vosbench.tracks.evaluator import evaluate_dataset
    from vosbench.tracks.first_frame import is_test_split
    from vosbench.tracks.params import EvalParams, Track

    kind = detect_dataset_kind(gt, dataset)
    track = Track(track)
    ds = open_dataset(kind, gt, split=split, resolution=resolution, unsupervised=track is Track.UNSUPERVISED)
    params = params or EvalParams.official(track, dataset=kind)
    if is_test_split(ds):
        raise VosbenchError(f"the ground truth of {ds.describe()} is not public (only first frames), so it "
                            f"cannot be scored here. Fix: check the results with `vosbench validate --dataset "
                            f"{kind.value} --split {split}` and submit them to the evaluation server.")
    if uses_benchmark_jobs(ds):
        if track is not Track.SEMI:
            raise VosbenchError(f"--dataset {kind.value} is scored with its semi-supervised evaluator only; "
                                f"the {track.value} track of that benchmark is not implemented. "
                                "Fix: use --track semi.")
        result = evaluate_benchmark(ds, results, params, jobs=jobs, backend=backend, scheduler=scheduler,
                                    lenient=lenient, progress=progress, split=split, metrics=metrics,
                                    metric_options=metric_options, cache_dir=cache)
    else:
        result = evaluate_dataset(ds, results, params, jobs=jobs, backend=backend, scheduler=scheduler,
                                  cache_dir=cache, lenient=lenient, progress=progress, split=split,
                                  metrics=metrics, metric_options=metric_options)
    result.identity = dataset_identity(ds).to_dict()
    return result


def embedded_dataset(split: str = "val", seed: int = 0, resolution: str = "480p"):
    """The dataset `vosbench run` uses without --gt: generated on first use under
    ``$VOSBENCH_HOME/datasets`` (DAVIS 2017 layout, named ``synthetic``), opened."""
    from vosbench.io.factory import DatasetKind, open_dataset
    from vosbench.io.synthetic import default_dataset_root

    return open_dataset(DatasetKind.SYNTHETIC, default_dataset_root(seed=seed), split=split, resolution=resolution)


# Every public name but the errors is imported when first asked for: `import vosbench` (which every
# `vosbench` command and every worker process pays first) then costs no numpy, OpenCV or pandas,
# and `vosbench evaluate --jobs N` can start its workers before this process imports them.
_LAZY = {"DatasetKind": "vosbench.io.factory", "detect_dataset_kind": "vosbench.io.factory",
         "open_dataset": "vosbench.io.factory", "EvalParams": "vosbench.tracks.params",
         "Track": "vosbench.tracks.params", "Result": "vosbench.tracks.result",
         "segment_dataset": "vosbench.methods.runner", "load_method": "vosbench.methods.registry",
         "available_methods": "vosbench.methods.registry"}
_SUBPACKAGES = {"io", "metrics", "tracks", "interactive", "methods", "reports", "server", "cli"}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY:
        value = globals()[name] = getattr(importlib.import_module(_LAZY[name]), name)
        return value
    if name in _SUBPACKAGES:  # `import vosbench; vosbench.io.read_mask(...)` as when the names were eager
        return importlib.import_module(f"vosbench.{name}")
    raise AttributeError(f"module 'vosbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
