"""Object-level scope, written once: providers see their organization's objects, reviewers their participant's
state, oversight and admin everything. An object outside the caller's scope is indistinguishable from a
missing one (404), and the refused lookup is audited."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import and_
from sqlalchemy.orm import Session
from sqlalchemy.orm.interfaces import ORMOption
from sqlalchemy.sql.elements import ColumnElement

from wiserpa.audit import service as audit
from wiserpa.auth.models import Role
from wiserpa.auth.service import Principal
from wiserpa.errors import NotFound
from wiserpa.runtime import Runtime

T = TypeVar("T")


def scope_condition(principal: Principal, model: Any) -> ColumnElement[bool]:
    """SQL condition selecting the rows of `model` (with organization_id and state columns) the caller may see."""
    if principal.role is Role.PROVIDER:
        return model.organization_id == principal.organization_id
    if principal.role is Role.REVIEWER:
        return model.state == principal.state
    return and_(True)


def in_scope(principal: Principal, obj: Any) -> bool:
    """The same rule as `scope_condition`, for an object already loaded."""
    if principal.role is Role.PROVIDER:
        return bool(obj.organization_id == principal.organization_id)
    if principal.role is Role.REVIEWER:
        return bool(obj.state == principal.state)
    return principal.role in (Role.OVERSIGHT, Role.ADMIN)


def load_in_scope(
    session: Session,
    rt: Runtime,
    principal: Principal,
    model: type[T],
    object_id: int,
    *,
    object_type: str,
    action: str,
    for_update: bool = False,
    options: Sequence[ORMOption] = (),
) -> T:
    """Fetch one object the caller may see, or audit the refusal and raise NotFound.

    `options` are loader options (e.g. `lazyload("*")` for a caller that needs no related rows).
    """
    # By primary key: a cached statement, and no query at all when the session already holds the object in
    # this transaction's identity map. A row lock, when asked for, goes to the database on PostgreSQL; SQLite
    # has no row locks (a writing transaction holds the whole database from BEGIN IMMEDIATE), so there it
    # would only re-read what this transaction already holds.
    lock = for_update and session.get_bind().dialect.name != "sqlite"
    obj = session.get(model, object_id, with_for_update=True if lock else None, options=options)
    if obj is None or not in_scope(principal, obj):
        audit.record(
            session,
            actor=principal.actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            outcome="not_found",
            at=rt.clock.now(),
        )
        session.commit()
        raise NotFound(f"{object_type.replace('_', ' ')} {object_id} not found")
    return obj
