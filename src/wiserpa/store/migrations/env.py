"""Alembic environment: uses the engine wiserpa passes in, or the URL in the config."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, engine_from_config, pool

from wiserpa.store.registry import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    if connection.dialect.name == "sqlite" and not connection.in_transaction():
        _run_without_sqlite_foreign_keys(connection)
        return
    _configure_and_run(connection)


def _run_without_sqlite_foreign_keys(connection: Connection) -> None:
    # A batch operation rebuilds a SQLite table: copy, DROP, rename. With foreign keys enforced, that DROP deletes
    # the rows of every table referencing it ON DELETE CASCADE (a request's lines, decisions, misses...), so
    # migrations run with enforcement off (a PRAGMA that only takes effect outside a transaction) and the result
    # is checked before enforcement comes back on for the pooled connection.
    raw = connection.connection.driver_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        _configure_and_run(connection)
        broken = raw.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"migration left rows whose foreign keys point nowhere: {broken[:5]}")
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite needs table rebuilds for ALTERs
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against a live connection."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = config.attributes.get("engine")
    if engine is None:
        engine = engine_from_config(
            config.get_section(config.config_ini_section) or {}, prefix="sqlalchemy.", poolclass=pool.NullPool
        )
    with engine.connect() as conn:
        _run(conn)
        conn.commit()


run_migrations_online()
