"""Migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from wiserpa.store.db import make_engine
from wiserpa.store.migrate import schema_status, upgrade
from wiserpa.store.registry import Base


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


def test_empty_database_is_reported_empty(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path}/empty.db")
    status = schema_status(engine)
    assert status.empty and not status.current
    engine.dispose()
