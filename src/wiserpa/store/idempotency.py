"""Idempotency keys: a retried POST returns the first response; another body with the same key is a 409."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, Row, String, UniqueConstraint, bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from wiserpa.store.base import Base, JSONType, UTCDateTime, table_of


class IdempotencyRecord(Base):
    """The committed response to a keyed request, stored in the same transaction as its effects."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("scope", "key", name="uq_idempotency_scope_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class IdempotencyConflict(Exception):
    """The key was used before with a different request body."""


@dataclass(frozen=True)
class Outcome:
    """A response to send: status code, JSON body, and whether it is a replay."""

    status_code: int
    body: dict[str, Any]
    replayed: bool = False


def fingerprint(method: str, path: str, body: Any) -> str:
    """A stable digest of what was asked, used to tell a retry from a different request."""
    canonical = json.dumps(
        {"m": method, "p": path, "b": body}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


# Built once: every keyed POST runs this lookup.
_LOOKUP = select(
    IdempotencyRecord.fingerprint, IdempotencyRecord.status_code, IdempotencyRecord.response
).where(IdempotencyRecord.scope == bindparam("scope"), IdempotencyRecord.key == bindparam("key"))


_STORE = insert(table_of(IdempotencyRecord))


def _lookup(session: Session, scope: str, key: str) -> Row[tuple[str, int, dict[str, Any]]] | None:
    return session.execute(_LOOKUP, {"scope": scope, "key": key}).first()


def run_once(
    session: Session,
    *,
    scope: str,
    key: str | None,
    fingerprint_: str,
    now: dt.datetime,
    work: Callable[[], Outcome],
) -> Outcome:
    """Run `work` and commit, or replay the stored outcome of an earlier run with the same key.

    `work` adds its changes to the session without committing; this function commits them together
    with the stored response, so a 2xx is only ever sent for something committed.
    """
    if key is None:
        outcome = work()
        session.commit()
        return outcome
    if len(key) > 200:
        raise ValueError("Idempotency-Key longer than 200 characters")
    existing = _lookup(session, scope, key)
    if existing is not None:
        return _replay(existing, fingerprint_)
    outcome = work()
    try:
        if outcome.status_code < 300:
            # A Core insert: the stored response is write-once, so it needs no unit-of-work bookkeeping.
            session.execute(
                _STORE,
                {
                    "scope": scope,
                    "key": key,
                    "fingerprint": fingerprint_,
                    "status_code": outcome.status_code,
                    "response": outcome.body,
                    "created_at": now,
                },
            )
        session.commit()
    except IntegrityError:
        # A concurrent request with the same key committed first: answer as it did.
        session.rollback()
        existing = _lookup(session, scope, key)
        if existing is None:
            raise
        return _replay(existing, fingerprint_)
    return outcome


def _replay(record: Row[tuple[str, int, dict[str, Any]]], fingerprint_: str) -> Outcome:
    if record.fingerprint != fingerprint_:
        raise IdempotencyConflict("this Idempotency-Key was already used with a different request")
    return Outcome(record.status_code, record.response, replayed=True)
