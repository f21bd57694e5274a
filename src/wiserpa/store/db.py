"""Engines and sessions: SQLite (WAL, one writer at a time) by default, PostgreSQL via psycopg 3."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from wiserpa.store.base import driver_execute


def normalize_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs given without a driver."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def is_sqlite(engine_or_url: Engine | str) -> bool:
    """True when the engine (or URL) is SQLite."""
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(normalize_url(engine_or_url))
    return url.get_backend_name() == "sqlite"


def _json_dumps(value: Any) -> str:
    # Non-string keys become strings, as the standard library's json.dumps makes them.
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# JSON columns (submissions, criteria results, facts, audit details) are encoded and decoded on every write and
# read: orjson does it 5-8 times faster than the standard library (1 KB submission: 7.7 -> 1.0 us to encode,
# 5.6 -> 2.1 us to decode). The audit chain's canonical digest keeps the standard library's encoder.
_JSON_CODEC: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with the pragmas and pool settings wiserpa relies on."""
    url = normalize_url(url)
    kwargs = {**_JSON_CODEC, **kwargs}
    if is_sqlite(url):
        # sqlite3 keeps 128 prepared statements per connection by default. Multi-row inserts differ in text for
        # each row count, so a busy writer (the simulator: 598 distinct statements in a 20,000-request year)
        # re-prepared long INSERT ... RETURNING statements over and over: 1,250 prepares for 20,132 statements at
        # 5,000 requests with 128 entries, 272 with no limit; 512 entries leave near only the first of each.
        connect_args = {"check_same_thread": False, "timeout": 30, "cached_statements": 512}
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    memory = engine.url.database in (None, "", ":memory:")
    # SQLite has one writer. Queue this process's writers on a lock instead of letting them spin in SQLite's
    # sleep-and-retry busy handler, which wastes tens of milliseconds under contention. Other processes still
    # wait through busy_timeout.
    write_lock = threading.Lock()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so we can issue BEGIN IMMEDIATE ourselves.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL" if not memory else "PRAGMA synchronous=OFF")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Every unit of work writes (at least its audit row), so take the write lock up front:
        # a deferred transaction that upgrades later can fail with SQLITE_BUSY under concurrency.
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        if mode == "IMMEDIATE":
            write_lock.acquire()
            conn.info["wiserpa_write_lock"] = True
        try:
            # store.base.driver_execute: through SQLAlchemy, the BEGIN cost 75,000 instructions against SQLite's
            # 11,000, and every transaction starts with one.
            driver_execute(conn, f"BEGIN {mode}", beginning=True)
        except Exception:
            _release(conn)
            raise

    def _release(conn: Any) -> None:
        if conn.info.pop("wiserpa_write_lock", False):
            write_lock.release()

    event.listen(engine, "commit", _release)
    event.listen(engine, "rollback", _release)
    _raw_savepoints(engine.dialect)


def _raw_savepoints(dialect: Any) -> None:
    """Emit SAVEPOINT, RELEASE and ROLLBACK TO straight on the sqlite3 connection.

    SQLAlchemy compiles and executes a fresh clause for each (the name differs every time): in the simulator,
    which takes a savepoint per event (6,792 for a 10,000-request state-year), a savepoint and its release
    cost 127 us that way (0.86 s of 15.5 s of CPU) against 19 us straight on the driver. Connection events
    (`savepoint`, `release_savepoint`, `rollback_savepoint`) still fire: SQLAlchemy dispatches them before
    calling these; only `before_cursor_execute` no longer sees the three statements.
    """
    quote = dialect.identifier_preparer.quote

    def run(connection: Connection, sql: str) -> None:
        driver = connection.connection.driver_connection
        assert driver is not None  # a connection inside a transaction is always open
        driver.execute(sql)

    def do_savepoint(connection: Connection, name: str) -> None:
        run(connection, f"SAVEPOINT {quote(name)}")

    def do_release_savepoint(connection: Connection, name: str) -> None:
        run(connection, f"RELEASE SAVEPOINT {quote(name)}")

    def do_rollback_to_savepoint(connection: Connection, name: str) -> None:
        run(connection, f"ROLLBACK TO SAVEPOINT {quote(name)}")

    # Instance attributes shadow the dialect class's methods for this engine only.
    dialect.do_savepoint = do_savepoint
    dialect.do_release_savepoint = do_release_savepoint
    dialect.do_rollback_to_savepoint = do_rollback_to_savepoint


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Session factory; objects stay readable after commit so views can render them."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def read_session(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for read-only work: on SQLite it does not take the write lock."""
    with factory() as session:
        session.connection(execution_options={"sqlite_begin": "DEFERRED"})
        try:
            yield session
        finally:
            session.rollback()
