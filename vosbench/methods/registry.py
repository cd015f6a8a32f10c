"""Methods are found through the entry-point group ``vosbench.methods``.

The baselines register themselves in vosbench's own pyproject; a third-party
package adds a line to its own::

    [project.entry-points."vosbench.methods"]
    my-method = "my_package.module:MyMethod"
"""
from __future__ import annotations

import inspect
from importlib.metadata import entry_points
from typing import Any

from vosbench.errors import VosbenchError
from vosbench.methods.base import Method, SemiSupervisedMethod

ENTRY_POINT_GROUP = "vosbench.methods"


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_methods() -> list[str]:
    """Names of every registered method."""
    return sorted(_entry_points())


def get_method(name: str) -> type[Method]:
    """The method class registered under `name`."""
    eps = _entry_points()
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none"
        raise VosbenchError(f"unknown method {name!r}. Registered methods: {known}. "
                            f"A package registers one under the entry-point group {ENTRY_POINT_GROUP!r}.")
    cls = eps[name].load()
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise VosbenchError(f"entry point {name!r} ({eps[name].value}) is not a vosbench Method subclass.")
    return cls


def load_method(name: str, **options: Any) -> Method:
    """Instantiate a registered method with its options (device, weights, ...)."""
    return get_method(name)(**options)


def load_propagator(name: str, device: str) -> SemiSupervisedMethod:
    """A registered semi-supervised method set up to carry masks a pipeline made itself (proposals,
    masks drawn from scribbles) rather than annotations: with its ``propagator_options``."""
    cls = get_method(name)
    if not issubclass(cls, SemiSupervisedMethod):
        raise TypeError(f"propagator {name!r} is not a semi-supervised method")
    return cls(device=device, **cls.propagator_options)


def method_parameters(cls: type[Method]) -> list[str] | None:
    """The named constructor options of a method class (besides ``device``), or None when its
    constructor takes nothing by name and stores whatever options it is given."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    named = [p.name for p in parameters
             if p.name not in ("self", "device") and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    return named or None


def check_options(name: str, options: dict[str, Any]) -> None:
    """Refuse an option the method does not name (a typo would otherwise be stored and ignored)."""
    named = method_parameters(get_method(name))
    unknown = sorted(set(options) - set(named)) if named is not None else []
    if unknown:
        raise VosbenchError(f"method {name!r} has no option {', '.join(map(repr, unknown))}; "
                            f"its options are: {', '.join(named)}.")
