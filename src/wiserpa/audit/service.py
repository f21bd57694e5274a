"""Writing and verifying the hash-chained audit log."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from wiserpa.audit.models import AuditEntry, AuditHead

GENESIS = "0" * 64


@dataclass(frozen=True)
class Actor:
    """Who did something, as the audit log records it."""

    name: str
    role: str


SYSTEM = Actor("system", "system")


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
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _lock_head(session: Session) -> AuditHead:
    # FOR UPDATE serializes writers on PostgreSQL; SQLite already holds its single write lock. The locked
    # head is kept for the rest of the transaction, so a unit of work that records many entries (a sweep)
    # reads it once.
    transaction = session.get_transaction()
    cached = session.info.get("audit_head")
    if cached is not None and cached[0] is transaction:
        head: AuditHead = cached[1]
        return head
    # populate_existing: sessions keep objects across commits, and another writer may have moved the head.
    head_row = session.scalars(
        select(AuditHead).where(AuditHead.id == 1).with_for_update().execution_options(populate_existing=True)
    ).first()
    if head_row is None:
        head_row = AuditHead(id=1, last_id=0, last_hash=GENESIS)
        session.add(head_row)
    session.info["audit_head"] = (transaction, head_row)
    return head_row


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
) -> AuditEntry:
    """Append one entry in the caller's transaction (it commits with the change it describes)."""
    return record_many(
        session,
        actor=actor,
        action=action,
        object_type=object_type,
        object_ids=[object_id],
        outcome=outcome,
        at=at,
        details=details,
    )[0]


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
) -> list[AuditEntry]:
    """Append one entry per object id, taking the chain head once."""
    head = _lock_head(session)
    entries = []
    details = json.loads(json.dumps(details or {}, default=str))
    for object_id in object_ids:
        oid = None if object_id is None else str(object_id)
        entry_id = head.last_id + 1
        digest = _digest(
            entry_id, at, actor.name, actor.role, action, object_type, oid, outcome, details, head.last_hash
        )
        entry = AuditEntry(
            id=entry_id,
            at=at,
            actor=actor.name,
            actor_role=actor.role,
            action=action,
            object_type=object_type,
            object_id=oid,
            outcome=outcome,
            details=details,
            prev_hash=head.last_hash,
            hash=digest,
        )
        session.add(entry)
        head.last_id = entry_id
        head.last_hash = digest
        entries.append(entry)
    return entries


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
