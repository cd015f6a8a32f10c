"""Where vosbench keeps what it makes for itself: generated datasets and the score cache."""
from __future__ import annotations

import os
from pathlib import Path


def vosbench_home() -> Path:
    """``$VOSBENCH_HOME``, else ``~/.cache/vosbench``."""
    env = os.environ.get("VOSBENCH_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vosbench"


def score_cache_dir() -> Path:
    """Per-sequence scores, keyed by the masks' bytes and the protocol (safe to share across folders)."""
    return vosbench_home() / "scores"
