"""Users and their keys. A key is shown once, when made; the database keeps only its sha256."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets

from sqlalchemy import func, select

from vosbench.errors import VosbenchError
from vosbench.server.db import Database, Submission, User, utcnow

KEY_PREFIX = "vb_"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class AuthError(VosbenchError):
    """No key, or a key that names no active user."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def add_user(db: Database, name: str, *, admin: bool = False, daily_limit: int | None = None) -> str:
    """Create `name`; return its key (the only time it can be read)."""
    if not NAME_PATTERN.match(name):
        raise VosbenchError(f"user name {name!r} is not allowed: use letters, digits, '_', '.', '-' (at most 64).")
    key = new_key()
    with db.session() as session:
        if session.scalar(select(User).where(User.name == name)) is not None:
            raise VosbenchError(f"user {name!r} already exists; `vosbench serve reset-key {name}` gives a new key.")
        session.add(User(name=name, key_hash=hash_key(key), key_prefix=key[:10], is_admin=admin,
                         daily_limit=daily_limit, created_at=utcnow()))
    return key


def _get(session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise VosbenchError(f"no user named {name!r} (`vosbench serve list-users` lists them).")
    return user


def reset_key(db: Database, name: str) -> str:
    key = new_key()
    with db.session() as session:
        user = _get(session, name)
        user.key_hash, user.key_prefix = hash_key(key), key[:10]
    return key


def set_user(db: Database, name: str, *, daily_limit: int | None = None, disabled: bool | None = None,
             admin: bool | None = None) -> None:
    with db.session() as session:
        user = _get(session, name)
        if daily_limit is not None:
            user.daily_limit = None if daily_limit < 0 else daily_limit
        if disabled is not None:
            user.disabled = disabled
        if admin is not None:
            user.is_admin = admin


def list_users(db: Database) -> list[dict]:
    with db.session() as session:
        counts = dict(session.execute(select(Submission.user_id, func.count()).group_by(Submission.user_id)).all())
        return [{"name": u.name, "key_prefix": u.key_prefix, "admin": u.is_admin, "disabled": u.disabled,
                 "daily_limit": u.daily_limit, "submissions": counts.get(u.id, 0),
                 "created_at": u.created_at.isoformat() + "Z"}
                for u in session.scalars(select(User).order_by(User.name))]


def authenticate(db: Database, key: str | None) -> User:
    """The active user holding `key`; AuthError otherwise (the same message whatever was wrong)."""
    if not key:
        raise AuthError("this call needs a key: send 'Authorization: Bearer KEY' (or the 'User-Key' header).")
    digest = hash_key(key)
    with db.session() as session:
        user = session.scalar(select(User).where(User.key_hash == digest))
    if user is None or user.disabled or not hmac.compare_digest(user.key_hash, digest):
        raise AuthError("the key is not valid (keys are made with `vosbench serve add-user NAME`).")
    return user


def day_start(now: dt.datetime | None = None) -> dt.datetime:
    now = now or utcnow()
    return now.replace(hour=0, minute=0, second=0, microsecond=0)
