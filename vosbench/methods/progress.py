"""Progress of a method's own phases (online fine-tuning, detection, propagation), shown under the
runner's frame bar.

A method wraps a phase's loop in `phase_bar` (a tqdm bar with its rate and time left, or the bare
iterable when progress is off); `segment_dataset` turns the bars on for the sequences it runs in
this process when asked for progress (`showing_progress`). Off by default, so library use and
parallel workers print nothing.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
_state = threading.local()


def progress_enabled() -> bool:
    return bool(getattr(_state, "enabled", False))


@contextlib.contextmanager
def showing_progress(enabled: bool = True) -> Iterator[None]:
    """Phase bars on (or off) for the calls made inside, in this thread."""
    before = progress_enabled()
    _state.enabled = bool(enabled)
    try:
        yield
    finally:
        _state.enabled = before


def phase_bar(iterable: Iterable[T], *, desc: str, unit: str = "step", total: int | None = None) -> Iterable[T]:
    """`iterable`, shown as a bar (`desc`, count, rate, time left) while progress is on."""
    if not progress_enabled():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, unit=unit, total=total, leave=False)
