"""Device and thread handling for torch methods, in one place."""
from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def resolve_device(device: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'. Explicit 'cuda' without a GPU is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but torch sees no CUDA device; use --device cpu or auto.")
    return device


# glibc's mallopt parameters (malloc.h) and the size below which freed blocks stay in the heap.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP_BLOCKS_BELOW = 1 << 30
_allocator_tuned: bool | None = None


def keep_freed_memory_in_heap() -> bool:
    """Have glibc's allocator serve blocks under 1 GiB from its heap and keep freed memory there.

    By default glibc maps every block above a few MB afresh from the kernel and unmaps it when
    freed, so each large activation a network allocates costs a page fault per 4 KB page on
    first touch: memory-bound operations (ReLU6, padding, additions) on a 480p feature map ran
    4-7 times slower than on reused memory, and the default STM run 10-15% slower all in. The
    price is that a process keeps the memory it freed (up to its peak) until it exits. A no-op,
    returning False, where the C library is not glibc.
    """
    global _allocator_tuned
    if _allocator_tuned is None:
        _allocator_tuned = False
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):
            log.debug("not glibc: the C allocator is left as it is")
        else:
            _allocator_tuned = bool(mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(_KEEP_BLOCKS_BELOW))
                                    and mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(_KEEP_BLOCKS_BELOW)))
            log.debug("glibc allocator keeps freed blocks under 1 GiB: %s", _allocator_tuned)
    return _allocator_tuned


# The thread count last asked for by number (`--threads`), which later calls without one keep.
_chosen_threads: int | None = None


def configure_threads(n_threads: int | None = None) -> int:
    """Set torch up for the CPU: one thread per core (oversubscription makes small machines many
    times slower) and an allocator that reuses freed memory (`keep_freed_memory_in_heap`).

    Without `n_threads`: the count an earlier call asked for by number, so that a method set up
    after `vosbench run --threads N` keeps N; else OMP_NUM_THREADS when the user set it; else
    one per core.
    """
    import torch

    global _chosen_threads
    keep_freed_memory_in_heap()

    if n_threads is not None:
        _chosen_threads = n_threads = max(1, int(n_threads))
    elif _chosen_threads is not None:
        n_threads = _chosen_threads
    else:
        env = os.environ.get("OMP_NUM_THREADS")
        n_threads = int(env) if env and env.isdigit() else (os.cpu_count() or 1)
    n_threads = max(1, int(n_threads))
    if torch.get_num_threads() != n_threads:
        torch.set_num_threads(n_threads)
    log.debug("torch uses %d threads", n_threads)
    return n_threads
