"""Engines: savepoints on SQLite go straight to the driver and still nest, release and roll back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, text

from wiserpa.runtime import Runtime


def _ids(session: Any) -> list[int]:
    return list(session.execute(text("SELECT id FROM t ORDER BY id")).scalars())


@pytest.fixture
def table_t(rt: Runtime) -> Iterator[None]:
    """A scratch table, dropped afterwards (the PostgreSQL database is shared by this process's tests)."""
    with rt.engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
    yield
    with rt.engine.begin() as conn:
        conn.execute(text("DROP TABLE t"))


@pytest.mark.usefixtures("table_t")
def test_savepoints_nest_release_and_roll_back(rt: Runtime) -> None:
    events: list[str] = []
    for name in ("savepoint", "release_savepoint", "rollback_savepoint"):
        event.listen(rt.engine, name, lambda *_a, _n=name: events.append(_n))
    with rt.sessions() as s:
        s.execute(text("INSERT INTO t VALUES (1)"))
        kept = s.begin_nested()
        s.execute(text("INSERT INTO t VALUES (2)"))
        dropped = s.begin_nested()
        s.execute(text("INSERT INTO t VALUES (3)"))
        dropped.rollback()
        assert _ids(s) == [1, 2]
        kept.commit()
        again = s.begin_nested()
        s.execute(text("INSERT INTO t VALUES (4)"))
        again.rollback()
        s.commit()
    with rt.sessions() as s:
        assert _ids(s) == [1, 2]
    # Connection events still fire for each, so listeners (and the ORM's own bookkeeping) see them.
    assert events == ["savepoint", "savepoint", "rollback_savepoint", "release_savepoint", "savepoint",
                      "rollback_savepoint"]  # fmt: skip
