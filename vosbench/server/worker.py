"""``python -m vosbench.server.worker``: the queue worker `vosbench serve` starts (configured by the environment)."""
from __future__ import annotations

from vosbench.server.runner import worker_main

if __name__ == "__main__":
    raise SystemExit(worker_main())
