"""The audit log is hash-chained: any edited, deleted or cut row is detected."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select, text
from typer.testing import CliRunner

from tests.factories import body
from wiserpa.audit import service as audit
from wiserpa.audit.models import AuditEntry
from wiserpa.audit.service import verify
from wiserpa.cli import app as cli


def _activity(client: TestClient, make_actor) -> None:  # type: ignore[no-untyped-def]
    provider = make_actor("provider")
    created = client.post("/api/v1/requests", json=body(), headers=provider.headers).json()
    client.get(f"/api/v1/requests/{created['id']}", headers=provider.headers)
    client.get("/api/v1/requests", headers=provider.headers)
    client.get(f"/api/v1/requests/{created['id']}", headers=make_actor("provider").headers)  # denied read


def test_every_read_and_write_is_recorded(client: TestClient, make_actor, rt) -> None:
    _activity(client, make_actor)
    with rt.sessions() as s:
        rows = s.execute(text("SELECT action, outcome FROM audit_log ORDER BY id")).all()
        report = verify(s)
    assert [tuple(r) for r in rows] == [
        ("request.submit", "affirmed"),
        ("request.read", "ok"),
        ("request.list", "ok"),
        ("request.read", "not_found"),
    ]
    assert report.ok and report.entries == 4


def test_cli_verify_catches_an_edited_row(client: TestClient, make_actor, rt) -> None:
    _activity(client, make_actor)
    runner = CliRunner()
    url = str(rt.engine.url.render_as_string(hide_password=False))
    ok = runner.invoke(cli, ["audit", "verify", "--database-url", url])
    assert ok.exit_code == 0, ok.output
    with rt.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET outcome = 'ok' WHERE id = 4"))
    bad = runner.invoke(cli, ["audit", "verify", "--database-url", url])
    assert bad.exit_code == 1
    assert "entry 4" in bad.output and "edited" in bad.output


def test_deleted_middle_and_tail_rows_are_detected(client: TestClient, make_actor, rt) -> None:
    _activity(client, make_actor)
    with rt.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE id = 2"))
    with rt.sessions() as s:
        report = verify(s)
    assert not report.ok and any("missing" in p for p in report.problems)
    with rt.engine.begin() as conn:
        conn.execute(text("INSERT INTO audit_log SELECT * FROM audit_log WHERE 1 = 0"))
        conn.execute(text("DELETE FROM audit_log WHERE id = 4"))
    with rt.sessions() as s:
        report = verify(s)
    assert any("tail" in p for p in report.problems)


def _entry(session, n: int) -> None:  # type: ignore[no-untyped-def]
    audit.record(
        session,
        actor=audit.SYSTEM,
        action="test.entry",
        object_type="test",
        object_id=n,
        outcome="ok",
        at=dt.datetime(2026, 3, 2, 16, 0, tzinfo=dt.UTC),
    )


def test_chain_stays_whole_across_savepoints(rt) -> None:  # type: ignore[no-untyped-def]
    """Entries written in a released savepoint are kept, a rolled-back savepoint's are gone, the chain is gapless."""
    with rt.sessions() as s:
        _entry(s, 1)
        with s.begin_nested():
            _entry(s, 2)
        savepoint = s.begin_nested()
        _entry(s, 3)
        savepoint.rollback()
        _entry(s, 4)
        s.commit()
    with rt.sessions() as s:
        ids = s.execute(text("SELECT object_id FROM audit_log ORDER BY id")).scalars().all()
        report = verify(s)
    assert ids == ["1", "2", "4"]
    assert report.ok and report.entries == 3, report.problems


@contextmanager
def _statements(rt) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    """The SQL statements the runtime's engine sends inside the block."""
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(rt.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(rt.engine, "before_cursor_execute", count)


def _logged(rt) -> tuple[list[str | None], audit.VerifyReport]:  # type: ignore[no-untyped-def]
    """The committed entries' object ids in chain order, and the verifier's report."""
    with rt.sessions() as s:
        ids = s.execute(text("SELECT object_id FROM audit_log ORDER BY id")).scalars().all()
        return list(ids), verify(s)


def test_a_transaction_writes_its_entries_once_at_commit(rt) -> None:  # type: ignore[no-untyped-def]
    """A unit of work with a savepoint per item (the simulator's day) reads the tip once and writes the entries
    and the moved head with one statement each when it commits, not two statements per append."""
    with _statements(rt) as statements, rt.sessions() as s:
        for n in range(5):
            with s.begin_nested():
                _entry(s, n)
        assert not any("INSERT INTO audit_log" in st for st in statements)  # nothing written before commit
        s.commit()
    assert sum("FROM audit_head" in st for st in statements) == 1
    assert sum(st.startswith("INSERT INTO audit_log") for st in statements) == 1
    assert sum(st.startswith("UPDATE audit_head") for st in statements) == 1
    ids, report = _logged(rt)
    assert ids == ["0", "1", "2", "3", "4"] and report.ok, report.problems


def test_nested_savepoints_keep_exactly_what_was_not_rolled_back(rt) -> None:  # type: ignore[no-untyped-def]
    with rt.sessions() as s:
        _entry(s, 1)
        outer = s.begin_nested()
        _entry(s, 2)
        inner = s.begin_nested()
        _entry(s, 3)
        inner.rollback()
        _entry(s, 4)
        outer.commit()
        doomed = s.begin_nested()
        _entry(s, 5)
        with s.begin_nested():
            _entry(s, 6)  # released into `doomed`, so rolled back with it
        doomed.rollback()
        _entry(s, 7)
        s.commit()
    ids, report = _logged(rt)
    assert ids == ["1", "2", "4", "7"]
    assert report.ok and report.entries == 4, report.problems


def test_a_savepoint_that_began_before_the_first_entry_starts_the_chain_over(rt) -> None:  # type: ignore[no-untyped-def]
    """The head was read (and on PostgreSQL locked) inside the savepoint; its rollback undoes both."""
    with rt.sessions() as s:
        savepoint = s.begin_nested()
        _entry(s, 1)
        savepoint.rollback()
        _entry(s, 2)
        s.commit()
    ids, report = _logged(rt)
    assert ids == ["2"] and report.ok, report.problems


def test_a_rolled_back_transaction_leaves_the_chain_as_it_was(rt) -> None:  # type: ignore[no-untyped-def]
    with rt.sessions() as s:
        _entry(s, 1)
        s.commit()
        _entry(s, 2)
        s.rollback()
        _entry(s, 3)
        s.commit()
    ids, report = _logged(rt)
    assert ids == ["1", "3"] and report.ok, report.problems


def test_a_bad_entry_adds_none_of_its_batch(rt) -> None:  # type: ignore[no-untyped-def]
    at = dt.datetime(2026, 3, 2, 16, 0, tzinfo=dt.UTC)
    good = audit.Entry(audit.SYSTEM, "test.entry", "test", "good", "ok", at)
    bad = audit.Entry(audit.SYSTEM, "test.entry", "test", "bad", "ok", "not a time")  # type: ignore[arg-type]
    with rt.sessions() as s:
        _entry(s, 1)
        with pytest.raises(AttributeError):  # the bad entry's time has no astimezone
            audit.append(s, [good, bad])
        _entry(s, 2)
        s.commit()
    ids, report = _logged(rt)
    assert ids == ["1", "2"] and report.ok, report.problems


def test_reads_in_the_same_transaction_see_its_entries(rt) -> None:  # type: ignore[no-untyped-def]
    """An ORM read of the log writes what is pending first; a savepoint rolled back after such a write still
    keeps the entries appended before it began."""
    with rt.sessions() as s:
        _entry(s, 1)
        savepoint = s.begin_nested()
        _entry(s, 2)
        seen = s.scalars(select(AuditEntry.object_id).order_by(AuditEntry.id)).all()
        assert seen == ["1", "2"]
        savepoint.rollback()
        # The rollback took back the write: entry 1 is pending again (a text read does not write it).
        assert s.execute(text("SELECT count(*) FROM audit_log")).scalar() == 0
        _entry(s, 3)
        assert audit.write_pending(s) == 2
        assert audit.write_pending(s) == 0
        assert s.scalars(select(AuditEntry.object_id).order_by(AuditEntry.id)).all() == ["1", "3"]
        _entry(s, 4)
        s.commit()
    ids, report = _logged(rt)
    assert ids == ["1", "3", "4"] and report.ok, report.problems


def test_a_writer_whose_savepoint_took_the_lock_rereads_the_tip(rt) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL releases a row lock taken inside a rolled-back savepoint, so another writer may append in
    between: the first writer must re-read the tip, not chain onto the one it read before."""
    if rt.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: no other writer can get in between")
    with rt.sessions() as first:
        savepoint = first.begin_nested()
        _entry(first, 1)
        savepoint.rollback()  # the head lock went with the savepoint
        with rt.sessions() as second:
            _entry(second, 2)
            second.commit()
        _entry(first, 3)
        first.commit()
    ids, report = _logged(rt)
    assert ids == ["2", "3"] and report.ok, report.problems


def test_concurrent_writers_keep_one_gapless_chain(rt) -> None:  # type: ignore[no-untyped-def]
    """Writers that append in savepoints, some rolled back, and commit at once: every kept entry is chained."""
    if rt.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    start = threading.Barrier(4)

    def writer(w: int) -> None:
        start.wait()
        for batch in range(5):
            with rt.sessions() as s:
                for n in range(3):
                    savepoint = s.begin_nested()
                    _entry(s, w * 100 + batch * 10 + n)
                    if n == 1:
                        savepoint.rollback()
                    else:
                        savepoint.commit()
                s.commit()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    ids, report = _logged(rt)
    assert len(ids) == 4 * 5 * 2 and not any(i is not None and i.endswith("1") for i in ids)
    assert report.ok and report.entries == 40, report.problems
