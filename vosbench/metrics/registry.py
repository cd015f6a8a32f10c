"""The one place where metrics are registered: name -> the class that computes it.

Built-in metrics are listed in `BUILTIN` as ``"module:Class"`` (imported on first use, so a run
that does not ask for T never imports it). Third-party metrics register through the
``vosbench.metrics`` entry-point group, the same way methods do::

    [project.entry-points."vosbench.metrics"]
    mymeasure = "mypackage.measure:MyMeasure"

A built-in name cannot be replaced by a plug-in.
"""
from __future__ import annotations

import importlib
from functools import lru_cache
from importlib import metadata
from typing import Any, Iterable, Mapping

from vosbench.errors import VosbenchError
from vosbench.metrics.base import Metric

ENTRY_POINT_GROUP = "vosbench.metrics"

# name -> "module:Class". Adding a metric: its file, and one line here.
BUILTIN: dict[str, str] = {
    "J": "vosbench.metrics.region:RegionJ",
    "F": "vosbench.metrics.boundary:BoundaryF",
    "T": "vosbench.metrics.temporal:StabilityT",
    "mosev2": "vosbench.metrics.mosev2:MoseV2",
    "lvos": "vosbench.metrics.lvos:Lvos",
    "sav": "vosbench.metrics.sav:Sav",
    "vost": "vosbench.metrics.vost:Vost",
}

# What a run measures when nobody says (the DAVIS tables).
DEFAULT_METRICS: tuple[str, ...] = ("J", "F")


def _load(target: str) -> type[Metric]:
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Metric)):
        raise VosbenchError(f"{target} is not a vosbench.metrics.base.Metric subclass.")
    return cls


@lru_cache(maxsize=1)
def _plugins() -> dict[str, Any]:
    found = {}
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in BUILTIN:
            found[entry.name] = entry
    return found


def metric_names() -> list[str]:
    """Every registered metric name: the built-in ones first, then plug-ins (sorted)."""
    return list(BUILTIN) + sorted(_plugins())


def get_metric(name: str) -> type[Metric]:
    """The class registered as `name`."""
    if name in BUILTIN:
        return _load(BUILTIN[name])
    plugin = _plugins().get(name)
    if plugin is None:
        raise VosbenchError(f"unknown metric {name!r}; registered: {', '.join(metric_names())}.")
    cls = plugin.load()
    if not (isinstance(cls, type) and issubclass(cls, Metric)):
        raise VosbenchError(f"entry point {name!r} ({plugin.value}) is not a Metric subclass.")
    return cls


def make_metrics(spec: Iterable[str | Metric] | str | None = None,
                 options: Mapping[str, Mapping[str, Any]] | None = None) -> list[Metric]:
    """Metric instances from names ("J,F,T", ["J", "F"]) and/or ready instances, in the order given.

    options: {name: keyword arguments} for metrics given by name. Each name may appear once.
    """
    if spec is None:
        spec = DEFAULT_METRICS
    if isinstance(spec, str):
        spec = [s.strip() for s in spec.split(",") if s.strip()]
    options = options or {}
    out: list[Metric] = []
    for item in spec:
        metric = item if isinstance(item, Metric) else get_metric(str(item))(**dict(options.get(str(item), {})))
        if any(m.name == metric.name for m in out):
            raise VosbenchError(f"metric {metric.name!r} is asked for twice.")
        out.append(metric)
    return out
