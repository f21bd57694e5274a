"""Declarative base, portable column types and naming conventions shared by every table."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from operator import itemgetter
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import (
    JSON,
    Connection,
    CursorResult,
    DateTime,
    Executable,
    Insert,
    MetaData,
    Table,
    TextClause,
    TypeDecorator,
    Update,
    bindparam,
    insert,
    inspect,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state, set_committed_value
from sqlalchemy.orm.instrumentation import ClassManager
from sqlalchemy.orm.state import InstanceState

# Stable constraint names make Alembic migrations identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores instants as naive UTC (SQLite has no zones) and always returns aware UTC datetimes."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; attach a time zone first")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite aggregate results can come back as text
            value = dt.datetime.fromisoformat(value)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)

    # On SQLite, instants are text in SQLAlchemy's DATETIME format. The generic chain (the method above, then
    # the DATETIME type's own processor) cost 3.3 us to bind an instant, and every row of the busiest tables
    # holds several (a request: five); this does it in one step for 1.1 us, giving exactly what the chain
    # gives (tests/store/test_base.py compares them). Reading needs no such path: SQLAlchemy's parser is C.

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: dt.datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is not dt.UTC:
                if value.tzinfo is None:
                    raise ValueError("naive datetime given to a UTC column; attach a time zone first")
                value = value.astimezone(dt.UTC)
            return _SQLITE_DATETIME % (
                value.year,
                value.month,
                value.day,
                value.hour,
                value.minute,
                value.second,
                value.microsecond,
            )

        return process


# SQLAlchemy's storage format for DATETIME on SQLite (sqlalchemy.dialects.sqlite.DATETIME), positionally.
_SQLITE_DATETIME = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


# JSON everywhere, JSONB on PostgreSQL for indexing and compact storage.
JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """Base class of every table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


M = TypeVar("M", bound=DeclarativeBase)


def table_of(model: type[DeclarativeBase]) -> Table:
    """The Core table behind a mapped class, for Core statements on hot paths."""
    table = model.__table__
    assert isinstance(table, Table)  # declarative classes always map a Table
    return table


@cache
def _columns(model: type[DeclarativeBase]) -> tuple[tuple[str, Any], ...]:
    """(attribute key, scalar default or None) of every column of a mapped class, worked out once.

    `assemble` and `_row` run per new object on the busiest write paths; walking `Table.columns` and their
    default objects each time made assembling a request with a line and a decision cost 26 us instead of 16.
    """
    return tuple(
        (
            column.key,
            getattr(column.default, "arg", None)
            if column.default is not None and column.default.is_scalar
            else None,
        )
        for column in table_of(model).columns
    )


@cache
def _column_keys(model: type[DeclarativeBase]) -> tuple[str, ...]:
    """Attribute keys of every column of a mapped class, in table order (worked out once)."""
    return tuple(key for key, _ in _columns(model))


@cache
def _class_manager(model: type[DeclarativeBase]) -> ClassManager[Any]:
    """The instrumentation manager of a mapped class (looked up once: `inspect` is not free)."""
    return inspect(model).class_manager


def assemble(model: type[M], values: Mapping[str, Any], **collections: list[Any]) -> M:
    """A new, not yet stored object built the way a load builds one, for `insert_adopted`.

    Column values go straight into the instance (a column left out gets its scalar default, else None) and
    one-to-many collections are set without change events. The constructor fires an attribute event per
    column and per child, which on the busiest write paths cost more than the inserts (150 us against 11 us
    for a request with one line and one decision).
    """
    obj: M = _class_manager(model).new_instance()
    state = obj.__dict__
    for key, default in _columns(model):
        value = values.get(key)
        state[key] = default if value is None else value
    for name, children in collections.items():
        set_committed_value(obj, name, children)
    return obj


def _row(obj: DeclarativeBase) -> dict[str, Any]:
    """Column values of a new ORM object, filling in column defaults it left unset (on the object too, so
    that once adopted no attribute is expired and nothing is read back)."""
    row = {}
    state = obj.__dict__
    for key, default in _columns(type(obj)):
        value = state.get(key)
        if value is None and (default is not None or key not in state):
            value = default
            set_committed_value(obj, key, value)  # no change event: the object is not tracked yet
        row[key] = value
    return row


def allocate_ids(connection: Connection, table: Table, count: int) -> list[int]:
    """Reserve `count` new ids of a table (its `id` column) with one statement, before inserting rows with them.

    PostgreSQL takes them from the column's sequence. On SQLite this runs inside BEGIN IMMEDIATE (store.db), so
    no other writer can take the same ids before this transaction inserts them.
    """
    driver = sqlite_driver(connection)
    if driver is None:
        return list(connection.execute(_next_ids_postgresql(table), {"n": count}).scalars())
    # Straight on the driver: the read is SQLite's last rowid (2 us), SQLAlchemy's statement handling around it
    # cost 38 us, and this runs for each table of each batch insert.
    (first,) = driver.execute(_next_id_sqlite(table.name)).fetchone()
    return list(range(first, first + count))


def sqlite_driver(connection: Connection) -> sqlite3.Connection | None:
    """The sqlite3 connection under a SQLite connection (None on another database)."""
    if connection.dialect.name != "sqlite":
        return None
    driver = connection.connection.driver_connection
    assert driver is not None  # a connection inside a transaction is always open
    return driver


def driver_execute(
    connection: Connection, sql: str, params: Any = (), *, many: bool = False, beginning: bool = False
) -> Any:
    """`connection.exec_driver_sql(sql, params)` (params a list of rows when `many`), straight on the sqlite3
    driver when that changes nothing observable; returns a cursor or result to fetch from.

    For the hot paths' small statements on SQLite, SQLAlchemy's execution machinery costs several times SQLite's
    own work: 75,000 instructions around an UPDATE of one row that SQLite runs in 11,000. It is skipped only
    inside a transaction (no autobegin is needed; `beginning`: the statement begins it) and when nothing listens
    to cursor execution or errors (tests and bench/count_statements.py count statements so); errors arrive as
    SQLAlchemy's, as from exec_driver_sql.
    """
    driver = sqlite_driver(connection)
    dispatch = connection.dispatch
    if (
        driver is None
        or not (beginning or connection.in_transaction())
        or dispatch.before_cursor_execute
        or dispatch.after_cursor_execute
        or connection.dialect.dispatch.handle_error
    ):
        return connection.exec_driver_sql(sql, params)
    try:
        return driver.executemany(sql, params) if many else driver.execute(sql, params)
    except sqlite3.Error as err:
        raise DBAPIError.instance(sql, params, err, sqlite3.Error, dialect=connection.dialect) from err


def _bind_processor(compiled: Any, name: str, dialect: Dialect) -> Callable[[Any], Any] | None:
    """The type processor SQLAlchemy applies to a compiled statement's parameter `name` (None: the value as is)."""
    processor: Callable[[Any], Any] | None = (
        compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
    )
    return processor


@dataclass(frozen=True)
class _DriverPlan:
    """A Core statement compiled for the driver: its SQL; per driver parameter, the name of the value given per
    call (None: the value bound in the statement itself, processed once) and its type processor; and
    (position, processor) of each result column that has one."""

    sql: str
    binds: tuple[tuple[str | None, Any, Callable[[Any], Any] | None], ...]
    results: tuple[tuple[int, Callable[[Any], Any]], ...]

    def parameters(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The driver's parameters for one call, in the statement's order, processed as SQLAlchemy would."""
        return tuple(
            value if name is None else params[name] if process is None else process(params[name])
            for name, value, process in self.binds
        )


# Per dialect instance (an engine's JSON codec lives on its dialect), then per statement and the keys given.
_DRIVER_PLANS: WeakKeyDictionary[Dialect, dict[tuple[Executable, tuple[str, ...]], _DriverPlan]] = (
    WeakKeyDictionary()
)
_MAX_DRIVER_PLANS = 1024


def _driver_plan(dialect: Dialect, statement: Executable, keys: tuple[str, ...]) -> _DriverPlan:
    by_statement = _DRIVER_PLANS.get(dialect)
    if by_statement is None:
        by_statement = _DRIVER_PLANS[dialect] = {}
    found = by_statement.get((statement, keys))
    if found is None:
        if len(by_statement) >= _MAX_DRIVER_PLANS:
            # Bounded: callers may build statements per principal (the worklist's, from a bounded cache of its
            # own), and a plan keeps its statement alive. Starting afresh costs one compile per statement.
            by_statement.clear()
        # column_keys: an UPDATE sets the columns given, as Connection.execute compiles it for these parameters.
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))  # type: ignore[attr-defined]
        assert compiled.positional and compiled.positiontup is not None  # SQLite's qmark style
        binds: list[tuple[str | None, Any, Callable[[Any], Any] | None]] = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            assert not bind.expanding  # an IN list's parameters vary per call
            process = _bind_processor(compiled, name, dialect)
            if name in keys:
                binds.append((name, None, process))
            else:
                binds.append((None, process(bind.value) if process else bind.value, None))
        # The result's columns (a SELECT's, or RETURNING's) as the compiler lists them for CursorResult: the
        # statement's own `exported_columns` is memoized and carried into copies, so `update(...).returning(...)`
        # made after a plan for the bare UPDATE would report none (a private attribute; tests/store/test_base.py
        # fails if it stops giving the types).
        columns = compiled._result_columns
        processors = (c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns)
        found = by_statement[(statement, keys)] = _DriverPlan(
            compiled.string, tuple(binds), tuple((i, p) for i, p in enumerate(processors) if p is not None)
        )
    return found


def run_on_driver(connection: Connection, statement: Executable, params: Mapping[str, Any]) -> DriverResult:
    """Run a statement built once (module level or cached) as `connection.execute(statement, params)` would: its
    rows converted by the columns' types, and its row count.

    On SQLite it is compiled once per set of parameter names and sent through `driver_execute`: for the hot
    paths' one-row reads and writes, SQLAlchemy's execution (cache key, parameter and result handling) cost more
    than SQLite's own work (a clinician decision's locked read 580k -> 418k instructions, its UPDATE 332k ->
    284k; the worklist's id page about 1 % of a simulated year). Elsewhere it is `connection.execute`.
    """
    if connection.dialect.name != "sqlite":
        result = connection.execute(statement, params)
        return DriverResult(result.all() if result.returns_rows else [], result.rowcount)
    plan = _driver_plan(connection.dialect, statement, tuple(params))
    cursor = driver_execute(connection, plan.sql, plan.parameters(params))
    # The driver's cursor, or (when something listens) exec_driver_sql's result, whose rows are as raw.
    returns_rows = cursor.returns_rows if isinstance(cursor, CursorResult) else cursor.description is not None
    rows: Sequence[Sequence[Any]] = cursor.fetchall() if returns_rows else []
    if plan.results and rows:
        converted: list[Sequence[Any]] = []
        for row in rows:
            values = list(row)
            for i, process in plan.results:
                values[i] = process(values[i])
            converted.append(values)
        rows = converted
    return DriverResult(rows, cursor.rowcount)


@dataclass(frozen=True, slots=True)
class DriverResult:
    """What `run_on_driver` gives: the rows (sequences of converted values) and the count of rows changed."""

    rows: Sequence[Sequence[Any]]
    rowcount: int

    def first(self) -> Sequence[Any] | None:
        """The first row, or None."""
        return self.rows[0] if self.rows else None


@cache
def _next_ids_postgresql(table: Table) -> TextClause:
    return text(f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) FROM generate_series(1, :n)")


@cache
def _next_id_sqlite(table_name: str) -> str:
    return f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table_name}"


@dataclass(frozen=True)
class _DriverInsert:
    """An INSERT of some columns of a table as the driver takes it: its SQL, the parameters' order and how to
    pick and convert each row's values."""

    sql: str
    keys: tuple[str, ...]  # the rows' keys, in parameter order
    # A row's (or an object's __dict__'s) values in that order, and (position, processor) of those that have one.
    values_of: Callable[[Mapping[str, Any]], tuple[Any, ...]]
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]
    positional: bool


# Per dialect instance (an engine's JSON encoder lives on its dialect), then per table and column keys.
_DRIVER_INSERTS: WeakKeyDictionary[Dialect, dict[tuple[Table, tuple[str, ...]], _DriverInsert]] = (
    WeakKeyDictionary()
)


def _driver_insert(dialect: Dialect, table: Table, keys: tuple[str, ...]) -> _DriverInsert:
    by_table = _DRIVER_INSERTS.get(dialect)
    if by_table is None:
        by_table = _DRIVER_INSERTS[dialect] = {}
    found = by_table.get((table, keys))
    if found is None:
        compiled = insert(table).compile(dialect=dialect, column_keys=list(keys))
        order = compiled.positiontup if compiled.positional else compiled.binds
        assert order is not None
        names = tuple(order)
        assert sorted(names) == sorted(keys)  # one parameter per column, named after it
        processors = (_bind_processor(compiled, n, dialect) for n in names)
        found = by_table[(table, keys)] = _DriverInsert(
            compiled.string,
            names,
            _getter(names),
            tuple((i, p) for i, p in enumerate(processors) if p is not None),
            compiled.positional,
        )
    return found


def _getter(keys: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """The values of these keys of a mapping, as a tuple (`itemgetter` alone gives a bare value for one key)."""
    if len(keys) == 1:
        (key,) = keys
        return lambda row: (row[key],)
    return itemgetter(*keys)


def insert_rows(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows (all with the same keys, ids included) with one driver-level statement.

    What `connection.execute(insert(table), rows)` does, for the busiest inserts: SQLAlchemy's per-row
    parameter handling around the driver's executemany cost more than SQLite's own work (a request row 58 ->
    49 us, a decision 28 -> 22 us, a line 14 -> 10 us, in batches of 25). Values go through the same type
    processors, the statement through `driver_execute`, so listeners see it and errors arrive as SQLAlchemy's.
    """
    if not rows:
        return
    plan = _driver_insert(connection.dialect, table, tuple(rows[0]))
    _execute_insert(connection, plan, [plan.values_of(row) for row in rows])


def _execute_insert(connection: Connection, plan: _DriverInsert, rows: list[tuple[Any, ...]]) -> None:
    """Run a driver insert for rows of values in its parameter order, through its processors."""
    if plan.processors:
        # Column by column: the processors are mapped over each column in C, rather than called from a Python
        # loop per row and value. With the one-step pick below, inserting and adopting 25 requests with a line
        # and a decision each went from 23.7 to 20.3 M instructions (2.3 % of a simulated year).
        columns: list[Any] = list(zip(*rows, strict=True))
        for i, process in plan.processors:
            # Processors see None too, as SQLAlchemy's do (a JSON column stores None as JSON null).
            columns[i] = map(process, columns[i])
        rows = list(zip(*columns, strict=True))
    params: list[Any] = rows if plan.positional else [dict(zip(plan.keys, row, strict=True)) for row in rows]
    if len(params) > 1:
        driver_execute(connection, plan.sql, params, many=True)
    else:
        driver_execute(connection, plan.sql, params[0])


def _insert(session: Session, objs: Sequence[DeclarativeBase]) -> None:
    """Insert new objects of one class with one statement, giving ids first to those that have none."""
    model = type(objs[0])
    table = table_of(model)
    # The session's connection, not Session.execute: a Core insert into one table needs none of the ORM's
    # statement handling (about half of a small statement's cost).
    connection = session.connection()
    if len(objs) == 1 and objs[0].__dict__.get("id") is None:
        # One row without an id (every REST submission): a plain insert reports its id (SQLite's lastrowid, an
        # implicit RETURNING on PostgreSQL) for less than reserving one first.
        row = _row(objs[0])
        del row["id"]
        key = connection.execute(_plain_insert(table), row).inserted_primary_key
        assert key is not None  # a single-row insert always reports it
        objs[0].id = key.id  # type: ignore[attr-defined]
        return
    missing = [obj for obj in objs if obj.__dict__.get("id") is None]
    if missing:
        # Several: reserve their ids in one statement, then insert without RETURNING, whose result handling
        # cost more than the reservation. Written straight into the objects: they are not tracked yet, and
        # adopting them commits every attribute (make_transient_to_detached).
        for obj, id_ in zip(missing, allocate_ids(connection, table, len(missing)), strict=True):
            obj.__dict__["id"] = id_
    plan = _driver_insert(connection.dialect, table, _column_keys(model))
    rows: list[tuple[Any, ...]] | None
    try:
        # An object from `assemble` holds every column, so its values are picked in one step, not key by key
        # as `_row` does to fill in defaults (see _execute_insert for the figure).
        rows = [plan.values_of(obj.__dict__) for obj in objs]
    except KeyError:
        rows = None
    defaulted = _defaulted_positions(model, plan.keys)
    if rows is not None and defaulted:
        columns = list(zip(*rows, strict=True))
        if any(None in columns[i] for i in defaulted):
            rows = None
    if rows is None:  # a column left unset, or None where it has a default: `_row` fills those in
        rows = [plan.values_of(_row(obj)) for obj in objs]
    _execute_insert(connection, plan, rows)


@cache
def _defaulted_positions(model: type[DeclarativeBase], keys: tuple[str, ...]) -> tuple[int, ...]:
    """Positions in `keys` of the model's columns that have a scalar default."""
    return tuple(keys.index(key) for key, default in _columns(model) if default is not None)


@cache
def _plain_insert(table: Table) -> Insert:
    return insert(table)


def insert_adopted(
    session: Session, objs: DeclarativeBase | Sequence[DeclarativeBase], *collections: str
) -> None:
    """Insert a new object (or a list of new objects of one class) and the new children in their one-to-many `collections` with one Core
    statement per table, then adopt them all into the session as persistent, as if just loaded.

    For the busiest write paths (submitting requests, claims): the ORM unit of work's bookkeeping costs more
    than the inserts it issues, and a new object has no changes to track yet. Afterwards the objects are
    ordinary persistent objects, so later changes flush as usual. Children must not be in the session yet, and
    nothing is cascaded along other relationships: the objects they reach must already be in the session.
    """
    parents = [objs] if isinstance(objs, DeclarativeBase) else list(objs)
    if not parents:
        return
    model = type(parents[0])
    version = _version_key(model)
    if version is not None:
        for obj in parents:
            if obj.__dict__.get(version) is None:
                setattr(obj, version, 1)  # where the ORM's own insert would start the counter
    _insert(session, parents)
    adopted: list[DeclarativeBase] = list(parents)
    for name in collections:
        keys = _link_keys(model, name)
        children = []
        for obj in parents:
            parent = obj.__dict__
            for child in getattr(obj, name):
                for parent_key, child_key in keys:
                    # Straight into the child, without a change event: it is not tracked yet, and adopting it
                    # commits every attribute (make_transient_to_detached).
                    child.__dict__[child_key] = parent[parent_key]
                children.append(child)
        if not children:
            continue
        _insert(session, children)
        adopted.extend(children)
    states = [instance_state(obj) for obj in adopted]
    for obj, state in zip(adopted, states, strict=True):
        make_transient_to_detached(obj)
        # What `Session.add` does for a detached object, without walking every relationship of every object
        # for cascades: each object reachable here is adopted itself, and the walk cost 14 us of the 40 us
        # it took to adopt a request with a line and a decision. SQLAlchemy has no public call for this;
        # `_update_impl` is what `add` calls (pinned below 2.1, and tests/store/test_base.py fails if this
        # stops working).
        session._update_impl(state)
    _note_inserted(session, states)


@cache
def _version_key(model: type[DeclarativeBase]) -> str | None:
    """The attribute key of a mapped class's version counter, if it has one."""
    mapper = _class_manager(model).mapper
    if mapper.version_id_col is None:
        return None
    return mapper.get_property_by_column(mapper.version_id_col).key


@cache
def _link_keys(model: type[DeclarativeBase], collection: str) -> tuple[tuple[str, str], ...]:
    """(parent attribute key, child attribute key) of each column pair joining a one-to-many collection."""
    mapper = _class_manager(model).mapper
    relationship = mapper.relationships[collection]
    return tuple(
        (
            mapper.get_property_by_column(parent_col).key,
            relationship.mapper.get_property_by_column(child_col).key,
        )
        for parent_col, child_col in relationship.local_remote_pairs or ()
    )


def in_session(session: Session, model: type[DeclarativeBase], id_: int) -> bool:
    """Whether the session's identity map holds the object of this class with this primary key."""
    return _class_manager(model).mapper.identity_key_from_primary_key((id_,)) in session.identity_map


def adopt_loaded(session: Session, model: type[M], row: Sequence[Any]) -> M:
    """The persistent object of a row that a Core `select(table_of(model))` read (every column, in table order),
    added to the session as if the ORM had loaded it; its relationships load on first access.

    For hot-path reads of one row (the row a clinician decision locks): the ORM's statement, result and
    loading machinery cost more than the read (87 us against 41 us on SQLite; adopting adds about 15 us). The object must not be in the session
    yet (`in_session`): a load would hand back the object already there, this would fail.
    """
    obj: M = _class_manager(model).new_instance()
    obj.__dict__.update(zip(_column_keys(model), row, strict=True))
    # Every column is set, so nothing is expired: the unloaded relationships are not expirable (they are not
    # column attributes) and keep their lazy loaders, so reading `lines` reads only the lines, not the row
    # again (tests/store/test_base.py fails if this stops being so).
    make_transient_to_detached(obj)
    # What `Session.add` does, without its cascade walk (see insert_adopted).
    session._update_impl(inspect(obj))
    return obj


def read_connection(session: Session) -> Connection:
    """The session's connection, for a hot-path Core read of mapped tables, after flushing pending changes as
    Session.execute would for an ORM statement (so the read sees them).

    Through Session.execute, the ORM's statement and result handling cost more than a small indexed read
    (the beneficiary-history read that finds nothing: 75 us against 36 us).
    """
    if session.autoflush:
        session.flush()
    return session.connection()


@cache
def _update_by_key(table: Table, keys: tuple[str, ...]) -> Update:
    """UPDATE of these columns of one row by its (single-column) primary key, built once per table and columns."""
    (key_column,) = table.primary_key.columns
    return (
        update(table)
        .where(key_column == bindparam("row_key"))
        .values({key: bindparam(f"new_{key}") for key in keys})
    )


def update_stored(session: Session, obj: DeclarativeBase, **changes: Any) -> None:
    """Write columns of a stored object with one Core UPDATE by primary key; the object then holds them as stored.

    For hot paths that change a loaded row (a ticket, a deadline miss, the sweep's bookkeeping): the unit of work's
    flush of one dirty object costs more than the statement. No version counter moves, so on a versioned object
    (a request) it is only for bookkeeping that is not a change clients see; a rollback expires the object as
    after a flush (`note_updated`).
    """
    table = table_of(type(obj))
    (key_column,) = table.primary_key.columns
    params = {f"new_{key}": value for key, value in changes.items()}
    session.connection().execute(
        _update_by_key(table, tuple(changes)), {"row_key": getattr(obj, key_column.key), **params}
    )
    for key, value in changes.items():
        set_committed_value(obj, key, value)
    note_updated(session, obj)


def note_updated(session: Session, obj: DeclarativeBase) -> None:
    """Count an object whose row a Core UPDATE changed as changed in this transaction, as the ORM's flush does,
    so that a rollback (of a savepoint too) expires it rather than leaving the new values over the old row."""
    # SQLAlchemy has no public call for this; `_register_altered` is what its flush uses (pinned below 2.1, and
    # tests/reviews/test_decide.py fails if this stops working).
    session._register_altered([inspect(obj)])


def _note_inserted(session: Session, states: Sequence[InstanceState[Any]]) -> None:
    # Tell the session's transaction that it inserted these rows, as its own flush does, so that a rollback
    # (of a savepoint too) takes the objects out of the session instead of leaving them as if stored. SQLAlchemy
    # has no public call for this; `SessionTransaction._new` is what its flush fills (pinned below 2.1, and
    # tests/store/test_base.py fails if this stops working).
    current = session.get_nested_transaction() or session.get_transaction()
    if current is not None:
        for state in states:
            current._new[state] = True
