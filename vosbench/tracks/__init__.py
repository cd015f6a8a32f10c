"""The protocols: semi-supervised, unsupervised (matching), interactive. evaluate -> accumulate -> summarize.

Names are imported on first use, so that a worker process that only scores sequences
(`vosbench.tracks.jobs`) does not import pandas and the tables."""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"evaluate_dataset": "vosbench.tracks.evaluator", "EvalParams": "vosbench.tracks.params",
         "Track": "vosbench.tracks.params", "Result": "vosbench.tracks.result",
         "SequenceScores": "vosbench.tracks.scores"}

__all__ = ["evaluate_dataset", "EvalParams", "Track", "Result", "SequenceScores"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vosbench.tracks' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
