"""Device and thread handling for torch methods, in one place.

Every torch baseline calls `prepare_torch` once, when it builds its network, and keeps what it
returns (the resolved device) in a public attribute; the CLI calls it once per command.
"""
from __future__ import annotations

import logging
import os

from vosbench.errors import VosbenchError
from vosbench.io.allocator import keep_freed_memory_in_heap

log = logging.getLogger(__name__)


class DeviceError(VosbenchError):
    """The device asked for does not exist on this machine."""


def resolve_device(device: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'. 'cuda' (or 'cuda:N') without one is a DeviceError."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            if torch.version.cuda:     # a CUDA build (PyPI's on Linux) on a machine without a usable GPU
                why, fix = (f"a CUDA {torch.version.cuda} build, sees no CUDA device (no NVIDIA GPU, or its driver "
                            "is missing or too old)", "or run on a machine with an NVIDIA GPU and a recent driver")
            else:
                why, fix = "a CPU-only build, sees no CUDA device", "or install a CUDA build of torch on a machine " \
                                                                    "with an NVIDIA GPU (README, Install)"
            raise DeviceError(f"--device {device} was asked for, but this torch ({torch.__version__}), {why}. "
                              f"Fix: pass --device cpu (or auto), {fix}.")
        index = device.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise DeviceError(f"--device {device}: torch sees {torch.cuda.device_count()} CUDA device(s). "
                              "Fix: pass --device cuda or cuda:N with N below that count.")
        return device
    if device != "cpu":
        raise DeviceError(f"--device {device} is not a device vosbench knows. Fix: pass auto, cpu, cuda or cuda:N.")
    return device


def prepare_torch(device: str = "auto", threads: int | None = None) -> str:
    """Resolve `device` (`resolve_device`) and set torch's CPU threads (`configure_threads`); returns the device.

    The one call a torch baseline makes before building its network, and the CLI before a run.
    """
    resolved = resolve_device(device)
    configure_threads(threads)
    return resolved


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
