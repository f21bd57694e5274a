"""Writing and verifying the hash-chained audit log."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.orm import Session

from wiserpa.audit.models import AuditEntry, AuditHead
from wiserpa.store.base import table_of

GENESIS = "0" * 64


@dataclass(frozen=True)
class Actor:
    """Who did something, as the audit log records it."""

    name: str
    role: str


SYSTEM = Actor("system", "system")


# The canonical text's encoder, built once: `json.dumps` with these options builds this very encoder on every
# call (1.4 us of the 7 us an entry's digest costs). Existing chains are verified against this text, so its
# options must not change.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)

# Values a JSON round trip gives back unchanged, so details made only of these (with text keys) need no trip.
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _json_details(details: dict[str, Any] | None) -> dict[str, Any]:
    """The details as the log stores and hashes them: what a JSON round trip makes of them (dates as text).

    Most details are flat text and numbers (a submission's UTN and predecessor), for which the round trip
    (6 us an entry) only copies the dict.
    """
    if not details:
        return {}
    if all(type(k) is str and type(v) in _JSON_SCALARS for k, v in details.items()):
        return dict(details)
    loaded: dict[str, Any] = json.loads(json.dumps(details, default=str))
    return loaded


def _digest(
    entry_id: int,
    at: dt.datetime,
    actor: str,
    role: str,
    action: str,
    object_type: str,
    object_id: str | None,
    outcome: str,
    details: dict[str, Any],
    prev_hash: str,
) -> str:
    payload = {
        "id": entry_id,
        "at": at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": actor,
        "role": role,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "outcome": outcome,
        "details": details,
        "prev": prev_hash,
    }
    canonical = _CANONICAL.encode(payload)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class _Head:
    """The chain tip as this transaction last wrote it."""

    last_id: int
    last_hash: str


# Built once: every audited unit of work runs these.
_HEAD_FOR_UPDATE = select(AuditHead.last_id, AuditHead.last_hash).where(AuditHead.id == 1).with_for_update()
_HEAD_CREATE = insert(table_of(AuditHead))
_HEAD_MOVE = (
    update(table_of(AuditHead))
    .where(table_of(AuditHead).c.id == 1)
    .values(last_id=bindparam("new_id"), last_hash=bindparam("new_hash"))
)
_ENTRY_INSERT = insert(table_of(AuditEntry))


def _lock_head(session: Session) -> _Head:
    # FOR UPDATE serializes writers on PostgreSQL; SQLite already holds its single write lock. The tip is
    # remembered for the rest of the transaction, so a unit of work that records many entries (a sweep)
    # reads it once.
    transaction = session.get_transaction()
    cached = session.info.get("audit_head")
    if cached is not None and cached[0] is transaction:
        head: _Head = cached[1]
        return head
    row = session.execute(_HEAD_FOR_UPDATE).first()
    if row is None:
        session.execute(_HEAD_CREATE, {"id": 1, "last_id": 0, "last_hash": GENESIS})
        head = _Head(0, GENESIS)
    else:
        head = _Head(row.last_id, row.last_hash)
    session.info["audit_head"] = (transaction, head)
    return head


@event.listens_for(Session, "after_rollback")
def _forget_head_after_rollback(session: Session) -> None:
    # Fires for a rolled-back savepoint too: its entries are gone, so the remembered tip may be ahead of the
    # database and the next entry must re-read it. A released savepoint keeps the tip it moved (shared with
    # its parent), so a unit of work with a savepoint per item still reads the tip once.
    session.info.pop("audit_head", None)


def record(
    session: Session,
    *,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: str | int | None,
    outcome: str,
    at: dt.datetime,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one entry in the caller's transaction (it commits with the change it describes)."""
    record_many(
        session,
        actor=actor,
        action=action,
        object_type=object_type,
        object_ids=[object_id],
        outcome=outcome,
        at=at,
        details=details,
    )


def record_many(
    session: Session,
    *,
    actor: Actor,
    action: str,
    object_type: str,
    object_ids: Iterable[str | int | None],
    outcome: str,
    at: dt.datetime,
    details: dict[str, Any] | None = None,
) -> int:
    """Append one entry per object id, all alike but for the id; returns how many were written."""
    return append(
        session,
        (Entry(actor, action, object_type, object_id, outcome, at, details) for object_id in object_ids),
    )


@dataclass(frozen=True)
class Entry:
    """One audit entry to append: who did what to which object, with what outcome, when."""

    actor: Actor
    action: str
    object_type: str
    object_id: str | int | None
    outcome: str
    at: dt.datetime
    details: dict[str, Any] | None = None


def append(session: Session, entries: Iterable[Entry]) -> int:
    """Append entries in order in the caller's transaction, taking the chain head once; returns the count.

    Entries and the moved head are written at once with Core statements: the log is append-only, so the
    ORM's change tracking would only cost time.
    """
    head = _lock_head(session)
    rows = []
    last_id, last_hash = head.last_id, head.last_hash
    for e in entries:
        oid = None if e.object_id is None else str(e.object_id)
        details = _json_details(e.details)
        last_id += 1
        digest = _digest(
            last_id, e.at, e.actor.name, e.actor.role, e.action, e.object_type, oid, e.outcome, details,
            last_hash,
        )  # fmt: skip
        rows.append(
            {
                "id": last_id,
                "at": e.at,
                "actor": e.actor.name,
                "actor_role": e.actor.role,
                "action": e.action,
                "object_type": e.object_type,
                "object_id": oid,
                "outcome": e.outcome,
                "details": details,
                "prev_hash": last_hash,
                "hash": digest,
            }
        )
        last_hash = digest
    if rows:
        connection = session.connection()  # Core statements on one table each need no ORM handling
        connection.execute(_ENTRY_INSERT, rows)
        connection.execute(_HEAD_MOVE, {"new_id": last_id, "new_hash": last_hash})
        head.last_id, head.last_hash = last_id, last_hash
    return len(rows)


@dataclass
class VerifyReport:
    """Result of walking the chain."""

    entries: int = 0
    ok: bool = True
    problems: list[str] = field(default_factory=list)


def verify(session: Session, *, batch: int = 5000) -> VerifyReport:
    """Recompute every hash in id order; report edits, deletions, insertions and a cut tail."""
    report = VerifyReport()
    prev_hash = GENESIS
    expected_id = 1
    stmt = select(AuditEntry).order_by(AuditEntry.id).execution_options(yield_per=batch)
    for entry in session.scalars(stmt):
        report.entries += 1
        if entry.id != expected_id:
            report.problems.append(f"entries {expected_id}..{entry.id - 1} are missing (deleted rows)")
        if entry.prev_hash != prev_hash:
            report.problems.append(f"entry {entry.id}: link to the previous entry is broken")
        digest = _digest(
            entry.id,
            entry.at,
            entry.actor,
            entry.actor_role,
            entry.action,
            entry.object_type,
            entry.object_id,
            entry.outcome,
            entry.details,
            entry.prev_hash,
        )
        if digest != entry.hash:
            report.problems.append(f"entry {entry.id}: contents do not match its hash (edited)")
        prev_hash = entry.hash
        expected_id = entry.id + 1
        if len(report.problems) > 100:
            break
    head = session.get(AuditHead, 1)
    last_id = expected_id - 1
    if head is not None and (head.last_id != last_id or head.last_hash != prev_hash):
        report.problems.append(
            f"chain head says the last entry is {head.last_id}, the log ends at {last_id} (tail removed or altered)"
        )
    report.ok = not report.problems
    return report
