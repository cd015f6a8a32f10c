"""The C allocator's thresholds, set once per process (glibc only): the one home of this tuning.

By default glibc maps every block above a few MB afresh from the kernel and unmaps it when
freed, and gives freed heap memory back once about twice the largest freed block sits at the
top. Work that allocates the same large blocks over and over then pays a page fault per 4 KB
page on every first touch:

* torch methods: each large activation; memory-bound operations (ReLU6, padding, additions) on
  a 480p feature map ran 4-7 times slower than on reused memory, the default STM run 10-15%
  slower all in (`methods.device.configure_threads` calls this);
* scoring: two decoded ~400 KiB masks per frame, dropped a frame later; on 2,049 real DAVIS
  frames that was 280,000 minor faults and about a fifth of the evaluation's CPU time
  (`tracks.jobs.score_guarded` calls this, in every worker).

Blocks under 1 GiB then come from the heap, and freed memory stays there for the next block.
The price is that a process keeps the memory it freed (up to its peak) until it exits.
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)

# glibc's mallopt parameters (malloc.h) and the size below which freed blocks stay in the heap.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP_BLOCKS_BELOW = 1 << 30
_allocator_tuned: bool | None = None


def keep_freed_memory_in_heap() -> bool:
    """Have glibc serve blocks under 1 GiB from its heap and keep freed memory there (once per
    process); True when set. A no-op, returning False, where the C library is not glibc."""
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
