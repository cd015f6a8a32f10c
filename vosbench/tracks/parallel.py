"""One joblib call over sequences, for scoring (`evaluator`) and for segmenting (`methods.runner`):
any joblib backend (loky processes on a laptop, Dask on a cluster) serves both, and nothing here
schedules work itself."""
from __future__ import annotations

import contextlib
import importlib
from typing import Callable, Iterable, Iterator

from joblib import Parallel, delayed, effective_n_jobs, parallel_config

# Warm-up calls started by `workers_started_early`, waited for by the next `run_parallel`.
_warm_ups: list[Iterator] = []


@contextlib.contextmanager
def joblib_backend(backend: str | None, scheduler: str | None = None) -> Iterator[None]:
    """Run the joblib calls inside on `backend` (None: joblib's default, loky processes);
    "dask" connects to the Dask scheduler at `scheduler`, or starts a local one."""
    if backend == "dask":
        from distributed import Client  # imported lazily: Dask is an optional extra

        client = Client(scheduler) if scheduler else Client(processes=False)
        try:
            with parallel_config(backend="dask"):
                yield
        finally:
            # Close our connection either way (it does not stop a remote cluster); a client left
            # open keeps reconnecting to a cluster that has gone away.
            client.close()
    elif backend:
        with parallel_config(backend=backend):
            yield
    else:
        yield


def parallel_runner(jobs: int) -> Parallel:
    """Results as they finish where the backend can (loky, dask); in order, or all at the end, otherwise
    (joblib's multiprocessing backend returns lists only)."""
    for return_as in (("generator_unordered", "generator", "list") if jobs != 1 else ("generator", "list")):
        try:
            return Parallel(n_jobs=jobs, return_as=return_as)
        except ValueError:
            continue
    return Parallel(n_jobs=jobs)


def _import_module(name: str) -> None:
    importlib.import_module(name)


@contextlib.contextmanager
def workers_started_early(jobs: int, module: str) -> Iterator[None]:
    """Start the worker processes of joblib's default backend (loky) now, each importing `module`, so that
    their start-up overlaps what the caller does before its `run_parallel` (which reuses them: loky's
    executor is shared by every call with the same number of workers).

    The next `run_parallel` waits for the warm-up, and so does leaving the block before one (an error,
    nothing to score): cancelling it instead races joblib's executor thread, which then prints a
    traceback. For the default backend only: a Dask or threading run has no processes to start.
    """
    warm_up = None
    for return_as in ("generator_unordered", "generator"):
        try:
            warm_up = Parallel(n_jobs=jobs, return_as=return_as)(
                delayed(_import_module)(module) for _ in range(effective_n_jobs(jobs)))
            break
        except ValueError:  # a joblib without this return_as; or n_jobs=0, which the real call reports
            continue
    if warm_up is not None:
        _warm_ups.append(warm_up)
    try:
        yield
    finally:
        if warm_up is not None and warm_up in _warm_ups:
            _warm_ups.remove(warm_up)
            for _ in warm_up:
                pass


def _wait_for_warm_ups() -> None:
    while _warm_ups:
        for _ in _warm_ups.pop():
            pass


def run_parallel(function: Callable, items: Iterable, *, jobs: int = 1, total: int | None = None,
                 progress: bool = False, desc: str = "sequences", args: tuple = ()) -> Iterator:
    """``function(item, *args)`` for every item through `parallel_runner` (call inside `joblib_backend`
    to choose loky, threading or Dask); outputs as they finish where the backend allows, with a
    progress bar when asked. Every scoring loop of vosbench (J, F, T, benchmark measures) goes through here."""
    _wait_for_warm_ups()
    outputs = parallel_runner(jobs)(delayed(function)(item, *args) for item in items)
    if progress:
        from tqdm.auto import tqdm

        outputs = tqdm(outputs, total=total, desc=desc, unit="seq", leave=False)
    return iter(outputs)
