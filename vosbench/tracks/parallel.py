"""One joblib call over sequences, for scoring (`evaluator`) and for segmenting (`methods.runner`):
any joblib backend (loky processes on a laptop, Dask on a cluster) serves both, and nothing here
schedules work itself."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator

from joblib import Parallel, delayed, parallel_config


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


def run_parallel(function: Callable, items: Iterable, *, jobs: int = 1, total: int | None = None,
                 progress: bool = False, desc: str = "sequences", args: tuple = ()) -> Iterator:
    """``function(item, *args)`` for every item through `parallel_runner` (call inside `joblib_backend`
    to choose loky, threading or Dask); outputs as they finish where the backend allows, with a
    progress bar when asked. Every scoring loop of vosbench (J, F, T, benchmark measures) goes through here."""
    outputs = parallel_runner(jobs)(delayed(function)(item, *args) for item in items)
    if progress:
        from tqdm.auto import tqdm

        outputs = tqdm(outputs, total=total, desc=desc, unit="seq", leave=False)
    return iter(outputs)
