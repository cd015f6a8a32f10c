"""Keep freed frame buffers in the process for reuse, where the C library is glibc.

Scoring decodes two masks per frame into fresh ~400 KiB buffers (a 480p frame) and
drops them a frame later. glibc hands blocks that size back to the kernel as soon as
they are freed (its trim threshold follows the largest block freed so far, about
twice a frame), so every frame pays for the same memory again in page faults: on
real DAVIS masks that was a fifth of a whole evaluation's CPU time (280,000 minor
faults for 2,049 frames). Raising the two thresholds keeps up to
`TRIM_THRESHOLD` bytes of freed memory in the process instead.

Called once per process by the scoring entry point (`tracks.jobs.score_guarded`), so
it applies to evaluation workers and to in-process evaluations; elsewhere (musl,
macOS, Windows) it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

# mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks below this come from the heap (a 4K frame is 8.3 MB); 32 MiB is glibc's own upper bound for it.
MMAP_THRESHOLD = 32 * 1024 * 1024
# Freed memory kept at the top of the heap before it goes back to the kernel.
TRIM_THRESHOLD = 64 * 1024 * 1024

_done: bool | None = None


def keep_freed_buffers() -> bool:
    """Set glibc's malloc thresholds once for this process; True when they are set."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    log.debug("glibc malloc thresholds set for frame buffers: %s", _done)
    return _done
