"""The request state machine, and deemed approval as a function of time (Python and SQL, one rule)."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import and_, case, literal
from sqlalchemy.sql.elements import BindParameter, ColumnElement

if TYPE_CHECKING:
    from wiserpa.requests.models import PaRequest


class Status(StrEnum):
    """Every state a request can be in."""

    RECEIVED = "received"
    PENDED = "pended"
    AFFIRMED = "affirmed"
    NON_AFFIRMED = "non_affirmed"
    EXEMPT_AFFIRMED = "exempt_affirmed"
    GOLD_CARD_AFFIRMED = "gold_card_affirmed"
    DEEMED_AFFIRMED = "deemed_affirmed"
    WITHDRAWN = "withdrawn"


OPEN = frozenset({Status.RECEIVED, Status.PENDED})
AFFIRMED_STATES = frozenset(
    {Status.AFFIRMED, Status.EXEMPT_AFFIRMED, Status.GOLD_CARD_AFFIRMED, Status.DEEMED_AFFIRMED}
)
DECIDED = AFFIRMED_STATES | {Status.NON_AFFIRMED}

# The only allowed moves. Anything else is a bug or a race, and is refused.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.RECEIVED: frozenset(
        {Status.PENDED, Status.AFFIRMED, Status.EXEMPT_AFFIRMED, Status.GOLD_CARD_AFFIRMED, Status.WITHDRAWN}
    ),
    Status.PENDED: frozenset(
        {Status.AFFIRMED, Status.NON_AFFIRMED, Status.DEEMED_AFFIRMED, Status.WITHDRAWN}
    ),
    Status.AFFIRMED: frozenset({Status.WITHDRAWN}),
    Status.EXEMPT_AFFIRMED: frozenset({Status.WITHDRAWN}),
    Status.GOLD_CARD_AFFIRMED: frozenset({Status.WITHDRAWN}),
    Status.DEEMED_AFFIRMED: frozenset({Status.WITHDRAWN}),
    Status.NON_AFFIRMED: frozenset(),
    Status.WITHDRAWN: frozenset(),
}


class TransitionError(Exception):
    """A move the state machine does not allow."""


def check_transition(current: str, new: str) -> None:
    """Raise TransitionError unless `current -> new` is allowed."""
    if Status(new) not in TRANSITIONS[Status(current)]:
        raise TransitionError(f"a request that is {current} cannot become {new}")


def is_deemed(request: PaRequest, now: dt.datetime) -> bool:
    """True when the request is undecided past its due time under a profile with deemed approval."""
    return deemed_by_time(request.status, request.deems_on_due, request.due_at, now)


def deemed_by_time(status: str, deems_on_due: bool, due_at: dt.datetime, now: dt.datetime) -> bool:
    """`is_deemed` on a request's columns, for rows read without loading the request."""
    return deems_on_due and status in OPEN and now >= due_at


def effective_status(request: PaRequest, now: dt.datetime) -> str:
    """The status every reader sees: a stored status, or deemed-affirmed once the deadline has passed."""
    return Status.DEEMED_AFFIRMED.value if is_deemed(request, now) else request.status


def effective_status_sql(now: dt.datetime | BindParameter[dt.datetime]) -> ColumnElement[str]:
    """The same rule as `effective_status`, as a SQL expression for filters and reports.

    `now` may be a bound parameter, so a statement built once can be run at any time.
    """
    from wiserpa.requests.models import PaRequest

    if not isinstance(now, BindParameter):
        now = literal(now, PaRequest.due_at.type)
    return case(
        (
            and_(
                PaRequest.deems_on_due.is_(True),
                PaRequest.status.in_([s.value for s in OPEN]),
                PaRequest.due_at <= now,
            ),
            literal(Status.DEEMED_AFFIRMED.value),
        ),
        else_=PaRequest.status,
    )
