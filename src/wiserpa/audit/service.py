"""Writing and verifying the hash-chained audit log."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from sqlalchemy import bindparam, event, insert, inspect, select, update
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from wiserpa.audit.models import AuditEntry, AuditHead
from wiserpa.store.base import driver_execute, insert_rows, read_connection, table_of

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

# The C function that encoder's `encode` builds on every call, built once with the same options (no circular
# reference check: details are what a JSON round trip gave, or scalars). Called as `_ENCODE(value, 0)`, it
# returns the text in chunks.
_ENCODE = c_make_encoder(None, str, encode_basestring_ascii, None, ":", ",", True, False, True)

# Values a JSON round trip gives back unchanged, so details made only of these (with text keys) need no trip.
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _json_details(details: dict[str, Any] | None) -> dict[str, Any]:
    """The details as the log stores and hashes them: what a JSON round trip makes of them (dates as text).

    Most details are flat text and numbers (a submission's UTN and predecessor), for which the round trip
    (6 us an entry) only copies the dict.
    """
    if not details:
        return {}
    for key, value in details.items():
        if type(key) is not str or type(value) not in _JSON_SCALARS:
            loaded: dict[str, Any] = json.loads(json.dumps(details, default=str))
            return loaded
    return dict(details)


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
    """The entry's hash: SHA-256 of its canonical text (`_canonical_text`), chained to the previous hash."""
    try:
        canonical = _canonical_text(
            entry_id, at, actor, role, action, object_type, object_id, outcome, details, prev_hash
        )
    except TypeError:  # a field of another type than the log's columns hold: the general encoder decides
        canonical = _CANONICAL.encode(
            _payload(entry_id, at, actor, role, action, object_type, object_id, outcome, details, prev_hash)
        )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _payload(
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
) -> dict[str, Any]:
    """The hashed fields, by name: their canonical text is `_CANONICAL.encode` of this."""
    return {
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


def _canonical_text(
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
    """`_CANONICAL.encode(_payload(...))`, written out for the types the log's columns hold.

    The payload's keys are fixed, so their sorted order is too: each field is encoded in place with the
    encoder's own C string function, the details with its C encoder. This halves an entry's digest (83,000 ->
    45,000 instructions); tests/audit/test_audit_digest.py checks it against the general encoder. A field of
    another type raises TypeError.
    """
    if type(entry_id) is not int or type(at) is not dt.datetime:
        raise TypeError("not the log's column types")
    if at.tzinfo is not dt.UTC:
        at = at.astimezone(dt.UTC)
    if at.year < 1000:  # strftime writes such years without leading zeros
        raise TypeError("a year before 1000")
    text = encode_basestring_ascii
    return "".join(
        (
            '{"action":', text(action),
            ',"actor":', text(actor),
            ',"at":"', _INSTANT % (at.year, at.month, at.day, at.hour, at.minute, at.second, at.microsecond),
            '","details":', *_ENCODE(details, 0),
            ',"id":', int.__repr__(entry_id),
            ',"object_id":', "null" if object_id is None else text(object_id),
            ',"object_type":', text(object_type),
            ',"outcome":', text(outcome),
            ',"prev":', text(prev_hash),
            ',"role":', text(role),
            "}",
        )
    )  # fmt: skip


# What strftime("%Y-%m-%dT%H:%M:%S.%fZ") writes for years from 1000 on, for a fraction of its cost.
_INSTANT = "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ"


@dataclass
class _Chain:
    """The chain as one transaction sees it: the tip it locked and the entries it appended since.

    Entries are hashed as they are appended but written when the transaction commits (or when something reads
    the log before that), one INSERT and one head UPDATE for all of them: a unit of work appends many times
    (the simulator's day, a sweep), and writing per append cost two statements each time. Only the first
    `written` entries are in the database. `marks` holds, for each savepoint begun since, the entries and
    written count at its start, so rolling it back drops what it appended.
    """

    root: SessionTransaction
    base_id: int
    base_hash: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    written: int = 0
    marks: dict[SessionTransaction, tuple[int, int]] = field(default_factory=dict)

    def tip(self) -> tuple[int, str]:
        """The id and hash of the last entry (appended, written or not)."""
        if self.rows:
            last = self.rows[-1]
            return last["id"], last["hash"]
        return self.base_id, self.base_hash


_CHAIN = "audit_chain"  # the session.info key of the current transaction's _Chain

# Built once: every audited unit of work runs these.
_HEAD_TABLE = table_of(AuditHead)
_HEAD_FOR_UPDATE = (
    select(_HEAD_TABLE.c.last_id, _HEAD_TABLE.c.last_hash).where(_HEAD_TABLE.c.id == 1).with_for_update()
)
_HEAD_CREATE = insert(_HEAD_TABLE)
_HEAD_MOVE = (
    update(_HEAD_TABLE)
    .where(_HEAD_TABLE.c.id == 1)
    .values(last_id=bindparam("new_id"), last_hash=bindparam("new_hash"))
)
_ENTRY_TABLE = table_of(AuditEntry)

# On SQLite the head is read and moved with plain SQL on the driver (store.base.driver_execute; SQLite has no FOR
# UPDATE: the transaction already holds the write lock). Every audited transaction does both (499 in a
# 1,000-request simulated year), and through SQLAlchemy they cost 358,000 (the read, as an ORM statement) and
# 156,000 instructions against 14,000 and 11,000.
_SQLITE_HEAD_READ = "SELECT last_id, last_hash FROM audit_head WHERE id = 1"
_SQLITE_HEAD_MOVE = "UPDATE audit_head SET last_id = ?, last_hash = ? WHERE id = 1"


def _chain(session: Session) -> _Chain:
    """This transaction's chain, locking the head on its first append.

    FOR UPDATE serializes writers on PostgreSQL until commit; SQLite already holds its single write lock. The
    tip is read once per transaction, however many entries and savepoints follow.
    """
    root = session.get_transaction()
    chain: _Chain | None = session.info.get(_CHAIN)
    if chain is not None and chain.root is root:
        return chain
    connection = read_connection(session)  # flushes first, as the ORM statement this was did
    if connection.dialect.name == "sqlite":
        row = driver_execute(connection, _SQLITE_HEAD_READ).fetchone()
    else:
        row = connection.execute(_HEAD_FOR_UPDATE).first()
    if row is None:
        connection.execute(_HEAD_CREATE, {"id": 1, "last_id": 0, "last_hash": GENESIS})
        base_id, base_hash = 0, GENESIS
    else:
        base_id, base_hash = row
    root = session.get_transaction()  # the read began it if none was open
    assert root is not None
    chain = _Chain(root, base_id, base_hash)
    session.info[_CHAIN] = chain
    return chain


def write_pending(session: Session) -> int:
    """Write the entries this transaction appended and has not written yet; returns how many.

    Commit does this itself. Call it before reading the log in the transaction that appended to it
    (`verify` does).
    """
    chain: _Chain | None = session.info.get(_CHAIN)
    if chain is None or chain.root is not session.get_transaction() or chain.written == len(chain.rows):
        return 0
    pending = chain.rows[chain.written :]
    connection = session.connection()  # Core statements on one table each need no ORM handling
    insert_rows(connection, _ENTRY_TABLE, pending)
    last_id, last_hash = chain.tip()
    if connection.dialect.name == "sqlite":
        driver_execute(connection, _SQLITE_HEAD_MOVE, (last_id, last_hash))
    else:
        connection.execute(_HEAD_MOVE, {"new_id": last_id, "new_hash": last_hash})
    chain.written = len(chain.rows)
    return len(pending)


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    # Fires for a released savepoint too; its entries stay pending until the transaction itself commits.
    if not session.in_nested_transaction():
        write_pending(session)


_LOG_MAPPERS = frozenset({inspect(AuditEntry), inspect(AuditHead)})


@event.listens_for(Session, "do_orm_execute")
def _write_before_reading(state: ORMExecuteState) -> None:
    # A read of the log through the session sees what its own transaction appended, as if each append had
    # written at once. (A Core or text read on the session's connection must call write_pending first.)
    chain: _Chain | None = state.session.info.get(_CHAIN)
    if (
        chain is not None
        and chain.written < len(chain.rows)
        and not _LOG_MAPPERS.isdisjoint(state.all_mappers)
    ):
        write_pending(state.session)


@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    chain: _Chain | None = session.info.get(_CHAIN)
    if transaction.nested and chain is not None:
        chain.marks[transaction] = (len(chain.rows), chain.written)


@event.listens_for(Session, "after_soft_rollback")
def _rollback_chain(session: Session, transaction: SessionTransaction) -> None:
    chain: _Chain | None = session.info.get(_CHAIN)
    if chain is None:
        return
    mark = chain.marks.get(transaction) if transaction.nested else None
    if mark is None:
        # The transaction, or a savepoint begun before its first append: everything it appended is gone from
        # the database, and on PostgreSQL so is the head lock if that savepoint took it. Start over.
        session.info.pop(_CHAIN, None)
        return
    # A savepoint begun after the head was locked (the lock outlives it): the database is back to what it held
    # when the savepoint began, so the entries are too.
    appended, written = mark
    del chain.rows[appended:]
    chain.written = written


@event.listens_for(Session, "after_transaction_end")
def _forget_chain(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_CHAIN, None)


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
    """Append entries in order in the caller's transaction; returns the count.

    They are hashed into the chain now and written when the transaction commits (`write_pending`), so they
    commit with the change they describe or not at all.
    """
    chain = _chain(session)
    last_id, last_hash = chain.tip()
    rows = []  # added to the chain only once all are built: a bad entry adds none
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
    chain.rows.extend(rows)
    return len(rows)


@dataclass
class VerifyReport:
    """Result of walking the chain."""

    entries: int = 0
    ok: bool = True
    problems: list[str] = field(default_factory=list)


def verify(session: Session, *, batch: int = 5000) -> VerifyReport:
    """Recompute every hash in id order; report edits, deletions, insertions and a cut tail."""
    write_pending(session)  # a caller verifying its own transaction's entries
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
