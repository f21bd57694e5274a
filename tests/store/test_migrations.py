"""Migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select

from tests.conftest import PG_ENV, build_runtime, fresh_pg_database, sqlite_copy
from tests.deadlines.conftest import insert_open
from wiserpa.deadlines.models import DeadlineMiss
from wiserpa.deadlines.service import sweep
from wiserpa.policy.clock import FixedClock
from wiserpa.requests.models import Decision, PaRequest, RequestLine
from wiserpa.runtime import Runtime
from wiserpa.store.db import make_engine
from wiserpa.store.migrate import alembic_config, schema_status, upgrade
from wiserpa.store.registry import Base


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def own_db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """A migrated database of this test's own: these tests change its schema, so it cannot be the shared one."""
    if request.param == "sqlite":
        yield sqlite_copy(sqlite_template, tmp_path)
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} not set")
    with fresh_pg_database(base) as url:
        yield url


def test_migrated_database_matches_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    assert diff == [], diff


def test_upgrade_is_idempotent_and_current(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    upgrade(engine)
    status = schema_status(engine)
    assert status.current and not status.empty
    tables = set(inspect(engine).get_table_names())
    assert {"pa_requests", "decisions", "audit_log", "idempotency_keys", "api_keys"} <= tables
    engine.dispose()


def test_empty_database_is_reported_empty(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/empty.db")
    status = schema_status(engine)
    assert status.empty and not status.current
    engine.dispose()


def _settled(rt: Runtime) -> dict[int, bool]:
    with rt.sessions() as s:
        return dict(s.execute(select(PaRequest.id, PaRequest.sweep_settled)).tuples().all())


def _children(rt: Runtime) -> dict[str, int]:
    with rt.sessions() as s:
        return {
            model.__tablename__: s.scalar(select(func.count()).select_from(model)) or 0
            for model in (RequestLine, Decision, DeadlineMiss)
        }


def test_the_sweep_settled_backfill_gives_what_the_sweep_records(own_db_url: str, clock: FixedClock) -> None:
    # Migration 0011 added pa_requests.sweep_settled to a populated table. Its backfill must mark exactly the
    # requests the running sweep would have marked, or the sweep skips a request it must deem (or walks the backlog).
    rt = build_runtime(own_db_url, clock, "wiser-2026")
    now = clock.now()
    missed_open = insert_open(rt, 3, due_at=now - dt.timedelta(days=1), deems=False)
    deemed = insert_open(rt, 2, due_at=now - dt.timedelta(days=1), deems=True)
    not_due = insert_open(rt, 2, due_at=now + dt.timedelta(days=1), deems=False)
    with rt.sessions() as s:
        assert sweep(s, rt).misses_recorded == 5
    recorded, children = _settled(rt), _children(rt)
    assert recorded == {**dict.fromkeys(missed_open, True), **dict.fromkeys(deemed + not_due, False)}
    assert children == {"request_lines": 14, "decisions": 2, "deadline_misses": 5}

    # Down and up again. On SQLite the downgrade rebuilds pa_requests: with foreign keys enforced, dropping the
    # old table used to delete every line, decision and miss through ON DELETE CASCADE.
    command.downgrade(alembic_config(rt.engine), "0009")  # 0011 only: every other branch stays
    assert "sweep_settled" not in {c["name"] for c in inspect(rt.engine).get_columns("pa_requests")}
    assert _children(rt) == children
    upgrade(rt.engine)
    assert schema_status(rt.engine).current
    assert (_settled(rt), _children(rt)) == (recorded, children)
    rt.engine.dispose()
