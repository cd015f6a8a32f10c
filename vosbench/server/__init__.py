"""A benchmark server with hidden ground truth: `vosbench serve` (needs the `server` extra).

    vosbench serve --gt DATASET_ROOT [--db URL] [--port N]
    vosbench serve add-user NAME            # prints the user's key, once

Submissions (zips of result masks in the official layout, what `vosbench pack`
writes) are validated on upload by the same validator as `vosbench validate`,
queued (Huey, SQLite storage), scored by `vosbench.evaluate`, and shown on a
public leaderboard (HTML and JSON). Storage is SQLAlchemy with Alembic
migrations: SQLite in WAL mode under ``$VOSBENCH_HOME/server`` by default, or
PostgreSQL by URL.
"""
from __future__ import annotations

from vosbench.server.config import Limits, ServerConfig

__all__ = ["ServerConfig", "Limits"]
