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


def configure_threads(n_threads: int | None = None) -> int:
    """Give torch one thread per core (oversubscription makes small machines many times slower).

    Honours OMP_NUM_THREADS when the user set it.
    """
    import torch

    if n_threads is None:
        env = os.environ.get("OMP_NUM_THREADS")
        n_threads = int(env) if env and env.isdigit() else (os.cpu_count() or 1)
    n_threads = max(1, int(n_threads))
    if torch.get_num_threads() != n_threads:
        torch.set_num_threads(n_threads)
    log.debug("torch uses %d threads", n_threads)
    return n_threads
