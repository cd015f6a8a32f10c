"""The server's database: SQLAlchemy models, the engine (SQLite in WAL mode or PostgreSQL), Alembic migrations.

Every time is a naive UTC datetime, the same on SQLite and PostgreSQL.
The schema is created and upgraded only by the Alembic migrations in
``vosbench/server/migrations`` (`upgrade`), never by ``create_all``.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import (Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint, create_engine,
                        event)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    # sha256 of the key: keys are 256-bit random tokens, so a fast hash is a safe one-way store.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    key_prefix: Mapped[str] = mapped_column(String(12), nullable=False)
    is_admin: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    daily_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    submissions: Mapped[list["Submission"]] = relationship(back_populates="user")


class Status:
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Submission(Base):
    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    track: Mapped[str] = mapped_column(String(16), nullable=False)
    method: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=Status.QUEUED, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow, index=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # How many times a worker claimed the job (1 unless a worker died or gave it back).
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # How many times a score was recorded: 1 for every scored submission, whatever happened.
    scored_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    scores_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    jf_mean: Mapped[float | None] = mapped_column(Float, nullable=True)
    chosen: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    upload_bytes: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    n_masks: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    worker_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)

    user: Mapped[User] = relationship(back_populates="submissions")

    @property
    def scores(self) -> dict[str, float | None]:
        return json.loads(self.scores_json) if self.scores_json else {}


class InteractiveSession(Base):
    """One play of the interactive track by the DAVIS interactive client (its ``Session-Key``)."""

    __tablename__ = "interactive_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_key: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # Per sample ("sequence/idx"): the frames the robot scribbled, when the last scribble was handed out.
    state_json: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    summary_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    auc: Mapped[float | None] = mapped_column(Float, nullable=True)
    jf_at_threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    n_interactions: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    user: Mapped[User] = relationship()


class Interaction(Base):
    """One submitted interaction: the client's timing and the server's own, and the scores of the masks."""

    __tablename__ = "interactive_interactions"
    __table_args__ = (UniqueConstraint("session_id", "sequence", "scribble_idx", "interaction",
                                       name="uq_interaction_once"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("interactive_sessions.id"), nullable=False, index=True)
    sequence: Mapped[str] = mapped_column(String(128), nullable=False)
    scribble_idx: Mapped[int] = mapped_column(Integer, nullable=False)
    interaction: Mapped[int] = mapped_column(Integer, nullable=False)
    client_timing: Mapped[float] = mapped_column(Float, nullable=False)
    # Seconds from handing out the scribble to receiving the masks, as the server saw them.
    server_timing: Mapped[float | None] = mapped_column(Float, nullable=True)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    dropped: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    next_frame: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # {"j": [[per frame] per object], "f": [...]}; empty for a dropped interaction.
    scores_json: Mapped[str] = mapped_column(Text, nullable=False, default="{}")


def dump_scores(values: dict[str, float]) -> str:
    """JSON of the global row; floats keep every digit (repr round-trips), NaN becomes null."""
    return json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else float(v)) for k, v in values.items()})


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN IMMEDIATE instead of pysqlite's deferred BEGIN:
    # a read-then-write transaction then waits for the lock instead of failing with "database is locked".
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` with the project's Alembic migrations."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


class Database:
    """An engine and its sessions. `session()` commits on success and rolls back on an exception."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def upgrade(self) -> None:
        upgrade(self.engine)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session:
            with session.begin():
                yield session

    def dispose(self) -> None:
        self.engine.dispose()

    @property
    def backend(self) -> str:
        return self.engine.url.get_backend_name()


def row_dict(obj: Any, fields: list[str]) -> dict[str, Any]:
    out = {}
    for name in fields:
        value = getattr(obj, name)
        out[name] = value.isoformat() + "Z" if isinstance(value, dt.datetime) else value
    return out
