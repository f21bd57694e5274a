"""Idempotency keys: a retried POST returns the first response; another body with the same key is a 409."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, String, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from wiserpa.store.base import Base, JSONType, UTCDateTime


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


def _lookup(session: Session, scope: str, key: str) -> IdempotencyRecord | None:
    return session.scalars(
        select(IdempotencyRecord).where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
    ).first()


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
    if outcome.status_code < 300:
        session.add(
            IdempotencyRecord(
                scope=scope,
                key=key,
                fingerprint=fingerprint_,
                status_code=outcome.status_code,
                response=outcome.body,
                created_at=now,
            )
        )
    try:
        session.commit()
    except IntegrityError:
        # A concurrent request with the same key committed first: answer as it did.
        session.rollback()
        existing = _lookup(session, scope, key)
        if existing is None:
            raise
        return _replay(existing, fingerprint_)
    return outcome


def _replay(record: IdempotencyRecord, fingerprint_: str) -> Outcome:
    if record.fingerprint != fingerprint_:
        raise IdempotencyConflict("this Idempotency-Key was already used with a different request")
    return Outcome(record.status_code, record.response, replayed=True)
