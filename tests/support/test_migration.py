"""Migration 0004 creates exactly what the support and experience models declare (both databases)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from wiserpa.runtime import Runtime
from wiserpa.store.registry import Base

MINE = {"support_tickets", "support_cycles", "support_messages", "experience_reports", "experience_obstacles"}


def test_models_match_migration(rt: Runtime) -> None:
    with rt.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)

    def table_of(d: object) -> str | None:
        item = d[0] if isinstance(d, list) else d
        for part in item[1:] if isinstance(item, tuple) else ():
            name = getattr(part, "name", None)
            table = getattr(part, "table", None)
            if table is not None and getattr(table, "name", None) in MINE:
                return str(table.name)
            if name in MINE:
                return str(name)
            if isinstance(part, str) and part in MINE:
                return part
        return None

    assert [d for d in diff if table_of(d)] == []
