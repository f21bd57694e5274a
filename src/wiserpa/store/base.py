"""Declarative base, portable column types and naming conventions shared by every table."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, Table, TypeDecorator, insert, inspect
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, make_transient_to_detached

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


# JSON everywhere, JSONB on PostgreSQL for indexing and compact storage.
JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """Base class of every table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def table_of(model: type[Base]) -> Table:
    """The Core table behind a mapped class, for Core statements on hot paths."""
    table = model.__table__
    assert isinstance(table, Table)  # declarative classes always map a Table
    return table


def _row(obj: Base) -> dict[str, Any]:
    """Column values of a new ORM object, filling in column defaults it left unset (on the object too, so
    that once adopted no attribute is expired and nothing is read back)."""
    row = {}
    for column in table_of(type(obj)).columns:
        value = getattr(obj, column.key)
        if value is None and column.default is not None and column.default.is_scalar:
            value = getattr(column.default, "arg", None)
        setattr(obj, column.key, value)
        row[column.key] = value
    return row


def _insert(session: Session, objs: Sequence[Base]) -> None:
    """Insert new objects of one class with one Core statement, taking generated ids back."""
    table = table_of(type(objs[0]))
    rows = [_row(obj) for obj in objs]
    if all(row["id"] is not None for row in rows):
        session.execute(insert(table), rows)
        return
    ids = session.execute(
        insert(table).returning(table.c.id, sort_by_parameter_order=True),
        [{k: v for k, v in row.items() if k != "id"} for row in rows],
    ).scalars()
    for obj, new_id in zip(objs, ids, strict=True):
        obj.id = new_id  # type: ignore[attr-defined]


def insert_adopted(session: Session, obj: Base, *collections: str) -> None:
    """Insert a new object and the new children in its one-to-many `collections` with Core statements, then
    adopt them all into the session as persistent, as if just loaded.

    For the busiest write paths (submitting a request, a claim): the ORM unit of work's bookkeeping costs more
    than the inserts it issues, and a new object has no changes to track yet. Afterwards the objects are
    ordinary persistent objects, so later changes flush as usual. Children must not be in the session yet.
    """
    mapper = inspect(type(obj))
    if mapper.version_id_col is not None:
        version = mapper.get_property_by_column(mapper.version_id_col).key
        if getattr(obj, version) is None:
            setattr(obj, version, 1)  # where the ORM's own insert would start the counter
    _insert(session, [obj])
    for name in collections:
        children = getattr(obj, name)
        if not children:
            continue
        relationship = mapper.relationships[name]
        for parent_col, child_col in relationship.local_remote_pairs or ():
            parent_key = mapper.get_property_by_column(parent_col).key
            child_key = relationship.mapper.get_property_by_column(child_col).key
            for child in children:
                setattr(child, child_key, getattr(obj, parent_key))
        _insert(session, children)
        for child in children:
            make_transient_to_detached(child)
    make_transient_to_detached(obj)
    session.add(obj)
