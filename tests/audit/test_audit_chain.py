"""The audit log is hash-chained: any edited, deleted or cut row is detected."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from tests.factories import body
from wiserpa.audit import service as audit
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


def test_released_savepoints_read_the_chain_tip_once(rt) -> None:  # type: ignore[no-untyped-def]
    """A unit of work with a savepoint per item (the simulator's hourly batches) takes the tip once."""
    from sqlalchemy import event

    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(rt.engine, "before_cursor_execute", count)
    try:
        with rt.sessions() as s:
            for n in range(5):
                with s.begin_nested():
                    _entry(s, n)
            s.commit()
    finally:
        event.remove(rt.engine, "before_cursor_execute", count)
    assert sum("FROM audit_head" in st for st in statements) == 1
