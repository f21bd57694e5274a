"""`insert_adopted`: Core inserts whose objects then behave as ordinary persistent ORM objects; `insert_rows`
stores what a Core insert stores; `run_on_driver` reads and writes what Connection.execute does; instants bound
for SQLite exactly as SQLAlchemy's own chain binds them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    bindparam,
    event,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from wiserpa.store.base import (
    JSONType,
    UTCDateTime,
    adopt_loaded,
    allocate_ids,
    in_session,
    insert_adopted,
    insert_rows,
    read_connection,
    run_on_driver,
    table_of,
)
from wiserpa.store.db import make_engine


class _Base(DeclarativeBase):
    pass


class _Parent(_Base):
    __tablename__ = "test_adopt_parent"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(20))
    flag: Mapped[str] = mapped_column(String(5), default="no")
    version: Mapped[int] = mapped_column(Integer)
    children: Mapped[list[_Child]] = relationship(
        back_populates="parent", order_by="_Child.seq", lazy="selectin"
    )
    __mapper_args__ = {"version_id_col": version}


class _Child(_Base):
    __tablename__ = "test_adopt_child"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("test_adopt_parent.id"))
    seq: Mapped[int] = mapped_column(Integer)
    parent: Mapped[_Parent] = relationship(back_populates="children")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    _Base.metadata.create_all(engine)
    try:
        yield engine
    finally:
        _Base.metadata.drop_all(engine)  # the migration test compares the whole database with the models
        engine.dispose()


def test_adopted_objects_are_persistent_and_need_no_reads(engine: Engine) -> None:
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with Session(engine, expire_on_commit=False) as session:
        parent = _Parent(name="p", children=[_Child(seq=0), _Child(seq=1)])
        insert_adopted(session, parent, "children")
        inserted = len(statements)
        assert parent.id is not None and [c.id for c in parent.children] != [None, None]
        assert parent.flag == "no" and parent.version == 1  # defaults and the version counter are filled in
        assert [c.parent_id for c in parent.children] == [parent.id, parent.id]
        assert parent in session and not session.new and not session.dirty
        assert len(statements) == inserted  # reading the attributes issued no query
        parent.name = "q"  # a later change flushes as an ordinary versioned UPDATE
        session.commit()
    with Session(engine) as session:
        stored = session.scalars(select(_Parent)).one()
        assert (stored.name, stored.flag, stored.version) == ("q", "no", 2)
        assert [c.seq for c in stored.children] == [0, 1]


def test_many_parents_take_one_statement_per_table(engine: Engine) -> None:
    statements: list[str] = []
    with Session(engine, expire_on_commit=False) as session:
        session.connection()  # begin first, so only the inserts are counted
        event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        parents = [_Parent(name=f"p{i}", children=[_Child(seq=s) for s in range(i)]) for i in range(4)]
        insert_adopted(session, parents, "children")
        inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT")]
        assert len(inserts) == 2  # parents in one statement, all six children in another
        # Each table's ids are reserved first, in one statement (on SQLite straight on the driver, unseen here).
        assert len(statements) == (2 if engine.dialect.name == "sqlite" else 4)
        assert len({p.id for p in parents}) == 4
        for parent in parents:
            assert [c.parent_id for c in parent.children] == [parent.id] * len(parent.children)
        session.commit()
    with Session(engine) as session:
        stored = session.scalars(select(_Parent).order_by(_Parent.id)).all()
        assert [(p.name, [c.seq for c in p.children]) for p in stored] == [
            (f"p{i}", list(range(i))) for i in range(4)
        ]


def test_a_rolled_back_savepoint_takes_adopted_objects_out_of_the_session(engine: Engine) -> None:
    with Session(engine, expire_on_commit=False) as session:
        kept = _Parent(name="kept", children=[_Child(seq=0)])
        insert_adopted(session, kept, "children")
        savepoint = session.begin_nested()
        gone = _Parent(name="gone", children=[_Child(seq=0)])
        insert_adopted(session, gone, "children")
        gone_id = gone.id
        savepoint.rollback()
        assert gone not in session and all(c not in session for c in gone.children)
        assert kept in session
        assert session.get(_Parent, gone_id) is None  # no ghost in the identity map
        session.commit()
    with Session(engine) as session:
        assert [p.name for p in session.scalars(select(_Parent))] == ["kept"]


def test_each_adopted_object_is_in_the_identity_map_and_one_row_tables_get_their_id(engine: Engine) -> None:
    # insert_adopted adopts with Session._update_impl (what Session.add does, without the cascade walk): this
    # fails if that private call stops making objects persistent members of the session.
    with Session(engine, expire_on_commit=False) as session:
        parent = _Parent(name="p", children=[_Child(seq=0)])  # one row per table: the plain-insert path
        insert_adopted(session, parent, "children")
        child = parent.children[0]
        assert parent.id is not None and child.id is not None and child.parent_id == parent.id
        for obj in (parent, child):
            assert inspect(obj).persistent and obj in session
            assert session.identity_map.get(inspect(obj).key) is obj
        assert session.get(_Child, child.id) is child
        child.seq = 5  # a change to an adopted child flushes
        session.commit()
    with Session(engine) as session:
        assert session.scalars(select(_Child.seq)).one() == 5


def test_read_connection_sees_pending_changes_as_session_execute_does(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(_Parent(name="pending", version=1))
        names = read_connection(session).execute(select(_Parent.__table__.c.name)).scalars().all()
        assert names == ["pending"]
        with session.no_autoflush:  # and leaves them pending when autoflush is off
            session.add(_Parent(name="later", version=1))
            assert read_connection(session).execute(select(func.count()).select_from(_Parent)).scalar() == 1


def test_a_row_read_with_core_adopts_as_a_loaded_object_whose_children_load_alone(engine: Engine) -> None:
    # adopt_loaded relies on make_transient_to_detached leaving unloaded relationships lazy-loadable (not
    # expired, which would read the row again) and on Session._update_impl: this fails if either changes.
    with Session(engine) as session:
        insert_adopted(session, _Parent(name="p", children=[_Child(seq=0), _Child(seq=1)]), "children")
        parent_id = session.scalars(select(_Parent.id)).one()
        session.commit()
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(" ".join(a[2].split())))
    table = _Parent.__table__
    with Session(engine) as session:
        assert not in_session(session, _Parent, parent_id)
        row = read_connection(session).execute(select(table).where(table.c.id == parent_id)).one()
        parent = adopt_loaded(session, _Parent, row)
        assert inspect(parent).persistent and in_session(session, _Parent, parent_id)
        assert session.get(_Parent, parent_id) is parent and not session.dirty
        assert not inspect(parent).expired_attributes
        statements.clear()
        assert (parent.name, parent.flag, parent.version) == ("p", "no", 1)
        assert statements == []  # every column is loaded
        assert [c.seq for c in parent.children] == [0, 1]
        assert len(statements) == 1 and statements[0].startswith("SELECT test_adopt_child."), statements
        parent.name = "q"  # a change flushes as an ordinary versioned UPDATE
        session.commit()
    with Session(engine) as session:
        stored = session.scalars(select(_Parent)).one()
        assert (stored.name, stored.version) == ("q", 2)


class _GenericUTCDateTime(TypeDecorator[dt.datetime]):
    """UTCDateTime without its SQLite bind shortcut: the decorator's method, then DATETIME's own processor."""

    impl = DateTime
    cache_ok = True
    process_bind_param = UTCDateTime.process_bind_param


_ZONES = st.sampled_from([dt.UTC, ZoneInfo("UTC"), ZoneInfo("America/Chicago"), ZoneInfo("Asia/Kolkata")])


@given(st.datetimes(min_value=dt.datetime(1900, 1, 2), timezones=_ZONES))
def test_sqlite_binds_instants_exactly_as_the_generic_chain_does(value: dt.datetime) -> None:
    dialect = sqlite.dialect()
    fast = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    generic = _GenericUTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert fast is not None and generic is not None
    assert fast(value) == generic(value)
    assert fast(None) is None


def test_sqlite_refuses_a_naive_instant_as_the_generic_chain_does() -> None:
    dialect = sqlite.dialect()
    fast = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert fast is not None
    with pytest.raises(ValueError, match="naive datetime"):
        fast(dt.datetime(2026, 1, 5, 9, 0))


class _Typed(_Base):
    """A column of each type the application's tables use."""

    __tablename__ = "test_insert_rows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    day: Mapped[dt.date | None] = mapped_column(Date)
    doc: Mapped[Any] = mapped_column(JSONType, nullable=True)
    flag: Mapped[bool | None] = mapped_column(Boolean)
    share: Mapped[float | None] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)


def test_insert_rows_stores_what_a_core_insert_stores(engine: Engine) -> None:
    table = table_of(_Typed)
    chicago = ZoneInfo("America/Chicago")
    values = [
        {"at": dt.datetime(2026, 3, 8, 1, 30, tzinfo=chicago), "day": dt.date(2026, 1, 5),
         "doc": {"b": [1, "é"], "a": None}, "flag": True, "share": 0.25, "label": "x", "note": "ü\n"},
        {"at": None, "day": None, "doc": None, "flag": None, "share": None, "label": None, "note": None},
        {"at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "day": dt.date(2026, 12, 31), "doc": [],
         "flag": False, "share": 1e16, "label": "", "note": ""},
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(table), [{"id": i + 1, **v} for i, v in enumerate(values)])
        insert_rows(conn, table, [{"id": i + 11, **v} for i, v in enumerate(values)])
        insert_rows(conn, table, [{"id": 21, **values[0]}])  # one row: a plain execute
    with engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT * FROM test_insert_rows ORDER BY id").all()
        loaded = conn.execute(select(table).order_by(table.c.id)).all()
    assert [r[1:] for r in stored[3:6]] == [r[1:] for r in stored[:3]]
    assert stored[6][1:] == stored[0][1:]
    assert [r[1:] for r in loaded[3:6]] == [r[1:] for r in loaded[:3]]


def test_allocate_ids_reserves_ids_after_the_last_row(engine: Engine) -> None:
    table = table_of(_Parent)
    with engine.begin() as conn:
        first = allocate_ids(conn, table, 3)
        assert len(set(first)) == 3
        insert_rows(conn, table, [{"id": i, "name": "p", "flag": "no", "version": 1} for i in first])
        assert min(allocate_ids(conn, table, 2)) > max(first)


def test_direct_inserts_fail_as_sqlalchemy_errors_and_stay_visible_to_listeners(engine: Engine) -> None:
    # insert_rows goes straight to sqlite3 when nothing listens (store.base.driver_execute): its errors must
    # still be SQLAlchemy's, and a statement counter must still see every insert.
    table = table_of(_Parent)
    row = {"id": 1, "name": "p", "flag": "no", "version": 1}
    with engine.begin() as conn:
        insert_rows(conn, table, [row])
    with pytest.raises(IntegrityError), engine.begin() as conn:
        insert_rows(conn, table, [{**row, "id": 2}, row])
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with engine.begin() as conn:
        insert_rows(conn, table, [{**row, "id": 3}, {**row, "id": 4}])
    assert sum(s.startswith("INSERT INTO test_adopt_parent") for s in statements) == 1
    assert any(s.startswith("BEGIN") for s in statements) == (engine.dialect.name == "sqlite")
    with engine.connect() as conn:
        assert conn.execute(select(table.c.id).order_by(table.c.id)).scalars().all() == [1, 3, 4]


def test_run_on_driver_reads_and_writes_what_connection_execute_does(engine: Engine) -> None:
    # run_on_driver compiles a statement once and, on SQLite, sends it straight to sqlite3: the rows it reads
    # (converted by the columns' types), the values it binds (given per call, or bound in the statement itself)
    # and its row counts must be Connection.execute's, with or without a listener watching.
    table = table_of(_Typed)
    chicago = ZoneInfo("America/Chicago")
    rows = [
        {"id": 1, "at": dt.datetime(2026, 3, 8, 1, 30, tzinfo=chicago), "day": dt.date(2026, 1, 5),
         "doc": {"b": [1, "é"], "a": None}, "flag": True, "share": 0.25, "label": "x", "note": "ü\n"},
        {"id": 2, "at": None, "day": None, "doc": None, "flag": None, "share": None, "label": "x", "note": None},
        {"id": 3, "at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "day": dt.date(2026, 12, 31), "doc": [],
         "flag": False, "share": 1e16, "label": "y", "note": ""},
    ]  # fmt: skip
    read = (
        select(table)
        .where(table.c.label == "x", table.c.id >= bindparam("low"))  # "x" is bound in the statement itself
        .order_by(table.c.id)
    )
    write = update(table).where(table.c.id == bindparam("_id"))
    later = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(insert(table), rows)
        for low in (0, 2, 9):
            expected = [tuple(r) for r in conn.execute(read, {"low": low})]
            assert [tuple(r) for r in run_on_driver(conn, read, {"low": low}).rows] == expected
        assert run_on_driver(conn, read, {"low": 9}).first() is None
        changed = run_on_driver(conn, write, {"at": later, "doc": {"k": 1}, "_id": 2})
        assert changed.rowcount == 1 and not changed.rows
        assert run_on_driver(conn, write, {"label": "z", "_id": 99}).rowcount == 0
        assert conn.execute(select(table.c.at, table.c.doc).where(table.c.id == 2)).one() == (later, {"k": 1})
        # RETURNING columns are converted as a SELECT's are.
        returning = write.returning(table.c.at, table.c.day, table.c.doc)
        returned = run_on_driver(conn, returning, {"label": "w", "_id": 1}).rows
        assert [tuple(r) for r in returned] == [(rows[0]["at"], rows[0]["day"], rows[0]["doc"])]
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with engine.begin() as conn:
        # A listener watches: the statement goes through exec_driver_sql, which listeners see, with the same rows.
        expected = [tuple(r) for r in conn.execute(read, {"low": 0})]
        assert [tuple(r) for r in run_on_driver(conn, read, {"low": 0}).rows] == expected
    assert sum(s.startswith("SELECT") for s in statements) == 2
