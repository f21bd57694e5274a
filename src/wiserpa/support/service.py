"""Technical-support tickets (R5): opening, responses, resolution, reopening, SLA clocks and compliance.

Rules (documented in docs/support-and-experience.md):

- A ticket is **urgent** when the provider names an urgent trigger (clinically time-sensitive care: pain,
  oncology, post-operative; or one of the profile's ``support.urgent_triggers``) or when the linked request is
  expedited or exempt (time-sensitive care, R1). Urgent tickets get ``profile.support.urgent`` (24 h), others
  ``profile.support.standard`` (72 h), in the profile's unit, through the same ``policy.clock.due_time`` that
  sets request deadlines, in the state's time zone with the profile's business hours.
- Every opening and every reopening starts a **response cycle** with its own deadline. The first response by
  the participant's staff (a ``reviewer`` of that state) stops that cycle's clock.
- A cycle is **breached** when ``coalesce(responded_at, closed_at, now) >= due_at``: at the due instant the
  window is over, exactly as a request is deemed at ``now >= due_at``. It is computed on read from ``now``
  (Python and SQL, the same rule), never stored.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, case, func, literal, select, type_coerce
from sqlalchemy.orm import Session, joinedload, lazyload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.elements import ColumnElement

from wiserpa.audit import service as audit
from wiserpa.auth.models import Organization, Role
from wiserpa.auth.scope import LoaderOptions, in_scope, load_in_scope, scope_condition
from wiserpa.auth.service import Principal
from wiserpa.errors import Conflict, FieldError, Forbidden, Invalid, invalid
from wiserpa.experience.taxonomy import TicketCategory
from wiserpa.policy.clock import BusinessCalendar, Duration, due_time
from wiserpa.policy.profiles import PolicyProfile, calendar_for
from wiserpa.requests.models import PaRequest
from wiserpa.runtime import Runtime
from wiserpa.store.base import (
    UTCDateTime,
    adopt_loaded,
    assemble,
    in_session,
    insert_adopted,
    insert_rows,
    read_connection,
    table_of,
    update_stored,
)
from wiserpa.support.models import SupportCycle, SupportMessage, SupportTicket

__all__ = [
    "Compliance",
    "add_message",
    "allowed_triggers",
    "breached_sql",
    "classify_urgency",
    "compliance",
    "cycle_breached",
    "cycle_view",
    "get_ticket",
    "list_tickets",
    "open_ticket",
    "percentile",
    "reopen",
    "resolve",
    "response_due_at",
    "ticket_view",
]


URGENT = "urgent"
STANDARD = "standard"
OPEN_STATUSES = ("open", "answered")


# ---------------------------------------------------------------------------------------------- policy


def allowed_triggers(profile: PolicyProfile) -> list[str]:
    """Urgent triggers a provider may name: the profile's clinically time-sensitive needs (R5)."""
    return list(profile.support.urgent_triggers)


def classify_urgency(
    profile: PolicyProfile, *, trigger: str | None, linked: PaRequest | None
) -> tuple[str, str]:
    """Urgency and the reason for it: a named trigger, or a linked expedited/exempt request, else standard."""
    if trigger:
        if trigger not in allowed_triggers(profile):
            raise invalid("urgent_trigger", f"must be one of: {', '.join(allowed_triggers(profile))}")
        return URGENT, f"trigger:{trigger}"
    if linked is not None:
        if linked.urgency == "expedited":
            return URGENT, "linked_request_expedited"
        if linked.exemption:
            return URGENT, "linked_request_exempt"
    return STANDARD, "none"


def sla_window(profile: PolicyProfile, urgency: str) -> Duration:
    """The profile's response window for this urgency."""
    spec = profile.support.urgent if urgency == URGENT else profile.support.standard
    return spec.to_duration()


def _calendar(rt: Runtime, state: str) -> BusinessCalendar:
    info = rt.catalog.state(state)
    if info is None:  # tickets are only ever opened for model states
        raise ValueError(f"{state} is not a model state")
    return calendar_for(rt.profile, info.timezone)


def response_due_at(start: dt.datetime, window: Duration, calendar: BusinessCalendar) -> dt.datetime:
    """When a response cycle opened at ``start`` breaches: the shared request-deadline clock."""
    return due_time(start, window, calendar)


def cycle_breached(cycle: SupportCycle, now: dt.datetime) -> bool:
    """True when the cycle's clock ran out before a response (Python form of ``breached_sql``)."""
    end = cycle.responded_at or cycle.closed_at or now
    return end >= cycle.due_at


def breached_sql(now: dt.datetime) -> ColumnElement[bool]:
    """The same rule as ``cycle_breached`` as a SQL condition."""
    now_ = type_coerce(literal(now, UTCDateTime()), UTCDateTime())
    return func.coalesce(SupportCycle.responded_at, SupportCycle.closed_at, now_) >= SupportCycle.due_at


def _open_breach_sql(now: dt.datetime) -> ColumnElement[bool]:
    """Unanswered, not closed, and past due at ``now``."""
    now_ = type_coerce(literal(now, UTCDateTime()), UTCDateTime())
    return and_(
        SupportCycle.responded_at.is_(None), SupportCycle.closed_at.is_(None), SupportCycle.due_at <= now_
    )


# ---------------------------------------------------------------------------------------------- scope


# A ticket is read with its cycles joined (one per opening or reopening, and never none, so an inner join) and
# its thread by a plain SELECT: 0.54 ms against 1.14 ms for the relationships' own selectin loads (SQLite, CPU).
# The ORM's form runs when the session holds the ticket or a cycle, or to refuse one; otherwise `_ROWS` does.
_WITH_CYCLES = LoaderOptions(
    joinedload(SupportTicket.cycles, innerjoin=True), lazyload(SupportTicket.messages)
)
_THREAD = (
    select(SupportMessage)
    .where(SupportMessage.ticket_id == bindparam("ticket_id"))
    .order_by(SupportMessage.id)
)


# The same read with Core: the ticket's columns, then its cycle's, a row per cycle. FOR UPDATE is rendered only
# on PostgreSQL (SQLite's writer lock is already held), where it locks the cycle rows too, as the ORM's does.
_TICKETS, _CYCLES = table_of(SupportTicket), table_of(SupportCycle)
_TICKET_WIDTH = len(_TICKETS.columns)
_ROWS = (
    select(_TICKETS, _CYCLES)
    .join(_CYCLES, _CYCLES.c.ticket_id == _TICKETS.c.id)
    .where(_TICKETS.c.id == bindparam("id"))
    .order_by(_CYCLES.c.seq)
)
_ROWS_LOCKED = _ROWS.with_for_update()


def _load(
    session: Session, rt: Runtime, principal: Principal, ticket_id: int, for_update: bool
) -> SupportTicket:
    """The ticket with its cycles, in the caller's scope, or NotFound."""
    if not in_session(session, SupportTicket, ticket_id):
        # Read with Core and adopted (store.base.adopt_loaded): the ORM's statement and joined loading cost more
        # than the read (the simulator's ticket handlers, 1,000 requests: 168.2 -> 157.4 M instructions).
        # Objects the session already holds are handed back as the ORM would (they may carry changes), so then,
        # and for a ticket not found or out of scope (refused and audited), load_in_scope runs instead.
        statement = _ROWS_LOCKED if for_update else _ROWS
        rows = read_connection(session).execute(statement, {"id": ticket_id}).all()
        if rows and not any(in_session(session, SupportCycle, row[_TICKET_WIDTH]) for row in rows):
            ticket = adopt_loaded(session, SupportTicket, rows[0][:_TICKET_WIDTH])
            cycles = [adopt_loaded(session, SupportCycle, row[_TICKET_WIDTH:]) for row in rows]
            set_committed_value(ticket, "cycles", cycles)
            if in_scope(principal, ticket):
                return ticket
    return load_in_scope(
        session,
        rt,
        principal,
        SupportTicket,
        ticket_id,
        object_type="support_ticket",
        action="ticket.read",
        for_update=for_update,
        options=_WITH_CYCLES,
    )


def get_ticket(
    session: Session, rt: Runtime, *, principal: Principal, ticket_id: int, for_update: bool = False
) -> SupportTicket:
    """A ticket in the caller's scope, or NotFound (another organization's ticket is a 404 too)."""
    ticket = _load(session, rt, principal, ticket_id, for_update)
    if "messages" not in ticket.__dict__:
        set_committed_value(ticket, "messages", list(session.scalars(_THREAD, {"ticket_id": ticket.id})))
    return ticket


def _ticket_to_change(session: Session, rt: Runtime, principal: Principal, ticket_id: int) -> SupportTicket:
    """The ticket in the caller's scope, row-locked, with its cycles but not its thread.

    A change never reads the thread: a new message is inserted without reading the others, and the thread is
    read only if someone shows it (a lazy load then). On PostgreSQL the lock takes the joined cycle rows too,
    which only a change of their ticket writes.
    """
    return _load(session, rt, principal, ticket_id, for_update=True)


# Changes are written with Core statements (store.base.update_stored, a message by one insert) and then held by
# the objects as committed: the flush of a ticket, its cycle and a message cost more than its statements.
_MESSAGES = table_of(SupportMessage)


def _add_message(
    session: Session, ticket: SupportTicket, principal: Principal, kind: str, body: str, at: dt.datetime
) -> None:
    """Append to the thread: one insert, plus the new message in the collection when it is loaded."""
    row = {
        "ticket_id": ticket.id,
        "kind": kind,
        "author_user_id": principal.user_id,
        "author_role": principal.role.value,
        "body": body,
        "at": at,
    }
    if "messages" not in ticket.__dict__:
        # Not loaded: nothing in memory to keep in step; whoever shows the thread loads this row with the rest.
        # A driver-level insert (store.base.insert_rows): SQLAlchemy's statement handling cost more than it
        # (the simulator's ticket handlers, 1,000 requests: 157.4 -> 145.2 M instructions).
        insert_rows(session.connection(), _MESSAGES, [row])
        return
    message = assemble(SupportMessage, row)
    insert_adopted(session, message)
    set_committed_value(ticket, "messages", [*ticket.messages, message])


# ---------------------------------------------------------------------------------------------- operations


def open_ticket(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    category: str,
    subject: str,
    description: str,
    state: str | None = None,
    request_id: int | None = None,
    urgent_trigger: str | None = None,
) -> SupportTicket:
    """Open a ticket with the participant of the provider's state; its response clock starts now."""
    if principal.role is not Role.PROVIDER or principal.organization_id is None:
        raise Forbidden("only provider users open support tickets")
    now = rt.clock.now()
    errors: list[FieldError] = []
    try:
        TicketCategory(category)
    except ValueError:
        errors.append(FieldError("category", f"must be one of: {', '.join(c.value for c in TicketCategory)}"))
    linked: PaRequest | None = None
    if request_id is not None:
        linked = session.get(PaRequest, request_id)
        if linked is None or linked.organization_id != principal.organization_id:
            # Same answer whether the id exists elsewhere or not at all.
            errors.append(FieldError("request_id", "no request with this id in your organization"))
            linked = None
    chosen = state.strip().upper() if state else None
    if linked is not None:
        if chosen and chosen != linked.state:
            errors.append(FieldError("state", f"the linked request is in {linked.state}"))
        chosen = linked.state
    if chosen is None:
        org = session.get(Organization, principal.organization_id)
        chosen = org.state if org is not None else None
    info = rt.catalog.state(chosen) if chosen else None
    if info is None and not any(e.field == "state" for e in errors):
        errors.append(
            FieldError("state", "must be a WISeR model state (" + ", ".join(rt.catalog.states) + ")")
        )
    try:
        urgency, reason = classify_urgency(rt.profile, trigger=urgent_trigger, linked=linked)
    except Invalid as exc:
        errors.extend(exc.fields)
        urgency, reason = STANDARD, "none"
    if errors:
        raise Invalid("; ".join(f"{e.field}: {e.message}" for e in errors), errors)
    assert info is not None
    window = sla_window(rt.profile, urgency)
    values = {
        "organization_id": principal.organization_id,
        "opened_by_user_id": principal.user_id,
        "state": info.code,
        "participant": info.participant,
        "request_id": linked.id if linked else None,
        "category": category,
        "urgency": urgency,
        "urgent_trigger": urgent_trigger or None,
        "urgency_reason": reason,
        "subject": subject,
        "description": description,
        "status": "open",
        "sla_amount": window.amount,
        "sla_unit": window.unit,
        "profile_id": rt.profile.id,
        "profile_version": rt.profile.version,
        "opened_at": now,
        "reopen_count": 0,
        "updated_at": now,
    }
    # Inserted with Core and adopted (store.base.insert_adopted): the new ticket has no changes to track. Its
    # thread is empty, so it is set rather than read back when the ticket is shown.
    ticket = assemble(SupportTicket, values, messages=[])
    cycle = _new_cycle(rt, ticket, seq=1, start=now)
    set_committed_value(ticket, "cycles", [cycle])
    insert_adopted(session, ticket, "cycles")
    audit.record(
        session,
        actor=principal.actor,
        action="support.open",
        object_type="support_ticket",
        object_id=ticket.id,
        outcome=urgency,
        at=now,
        details={"state": ticket.state, "category": category, "due_at": cycle.due_at},
    )
    return ticket


def _new_cycle(rt: Runtime, ticket: SupportTicket, *, seq: int, start: dt.datetime) -> SupportCycle:
    """A new response cycle of the ticket (not stored yet), its clock started at ``start``."""
    window = Duration(ticket.sla_amount, ticket.sla_unit)  # type: ignore[arg-type]
    return assemble(
        SupportCycle,
        {
            "ticket_id": ticket.id,  # None for a new ticket: insert_adopted sets it
            "seq": seq,
            "state": ticket.state,
            "participant": ticket.participant,
            "urgency": ticket.urgency,
            "started_at": start,
            "due_at": response_due_at(start, window, _calendar(rt, ticket.state)),
        },
    )


def add_message(
    session: Session, rt: Runtime, *, principal: Principal, ticket_id: int, body: str
) -> SupportTicket:
    """Add to the thread: staff write responses (the first stops the clock), the practice comments."""
    if principal.role not in (Role.PROVIDER, Role.REVIEWER):
        raise Forbidden("only the practice and the participant's staff write on a ticket")
    ticket = _ticket_to_change(session, rt, principal, ticket_id)
    if ticket.status == "resolved":
        raise Conflict("the ticket is resolved; reopen it first", [FieldError("status", "resolved")])
    now = rt.clock.now()
    kind = "response" if principal.role is Role.REVIEWER else "comment"
    _add_message(session, ticket, principal, kind, body, now)
    cycle = ticket.current_cycle
    first = kind == "response" and cycle.responded_at is None
    if first:
        update_stored(session, cycle, responded_at=now, responded_by_user_id=principal.user_id)
        update_stored(session, ticket, status="answered", updated_at=now)
    else:
        update_stored(session, ticket, updated_at=now)
    audit.record(
        session,
        actor=principal.actor,
        action=f"support.{kind}",
        object_type="support_ticket",
        object_id=ticket.id,
        outcome="late" if first and now >= cycle.due_at else "ok",
        at=now,
        details={"cycle": cycle.seq, "first_response": first},
    )
    return ticket


def resolve(
    session: Session, rt: Runtime, *, principal: Principal, ticket_id: int, note: str | None = None
) -> SupportTicket:
    """Mark resolved (participant staff or the practice); staff resolving an unanswered cycle answers it."""
    if principal.role not in (Role.PROVIDER, Role.REVIEWER):
        raise Forbidden("only the practice and the participant's staff resolve a ticket")
    ticket = _ticket_to_change(session, rt, principal, ticket_id)
    if ticket.status == "resolved":
        raise Conflict("the ticket is already resolved", [FieldError("status", "resolved")])
    now = rt.clock.now()
    cycle = ticket.current_cycle
    if cycle.responded_at is None:
        if principal.role is Role.REVIEWER:
            # A resolution is a response: the practice heard back.
            update_stored(session, cycle, responded_at=now, responded_by_user_id=principal.user_id)
        else:
            # The practice closed it unanswered; a clock already run out stays a breach.
            update_stored(session, cycle, closed_at=now)
    update_stored(session, ticket, status="resolved", resolved_at=now, updated_at=now)
    _add_message(session, ticket, principal, "resolution", note or "", now)
    audit.record(
        session,
        actor=principal.actor,
        action="support.resolve",
        object_type="support_ticket",
        object_id=ticket.id,
        outcome="resolved",
        at=now,
        details={"cycle": cycle.seq},
    )
    return ticket


def reopen(
    session: Session, rt: Runtime, *, principal: Principal, ticket_id: int, reason: str
) -> SupportTicket:
    """Reopen a resolved ticket (the practice): a new response cycle with a new deadline starts now."""
    if principal.role is not Role.PROVIDER:
        raise Forbidden("only the practice that opened a ticket reopens it")
    ticket = _ticket_to_change(session, rt, principal, ticket_id)
    if ticket.status != "resolved":
        raise Conflict("only a resolved ticket can be reopened", [FieldError("status", ticket.status)])
    now = rt.clock.now()
    reopens = ticket.reopen_count + 1
    cycle = _new_cycle(rt, ticket, seq=reopens + 1, start=now)
    insert_adopted(session, cycle)
    set_committed_value(ticket, "cycles", [*ticket.cycles, cycle])
    update_stored(session, ticket, reopen_count=reopens, status="open", resolved_at=None, updated_at=now)
    _add_message(session, ticket, principal, "reopen", reason, now)
    audit.record(
        session,
        actor=principal.actor,
        action="support.reopen",
        object_type="support_ticket",
        object_id=ticket.id,
        outcome="open",
        at=now,
        details={"cycle": cycle.seq, "due_at": cycle.due_at},
    )
    return ticket


@dataclass(frozen=True)
class TicketPage:
    """One page of tickets."""

    items: list[SupportTicket]
    total: int


def list_tickets(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    status: str | None = None,
    state: str | None = None,
    breached: bool | None = None,
    limit: int = 50,
    offset: int = 0,
) -> TicketPage:
    """Tickets in scope; open ones first by current due time (a staff queue), then the rest newest first."""
    now = rt.clock.now()
    # The current cycle is the one numbered reopen_count + 1.
    join = and_(
        SupportCycle.ticket_id == SupportTicket.id, SupportCycle.seq == SupportTicket.reopen_count + 1
    )
    where = [scope_condition(principal, SupportTicket)]
    if status:
        where.append(SupportTicket.status == status)
    if state:
        where.append(SupportTicket.state == state.upper())
    if breached is not None:
        where.append(breached_sql(now) if breached else ~breached_sql(now))
    base = select(SupportTicket).join(SupportCycle, join).where(*where)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    is_open = case((SupportTicket.status.in_(OPEN_STATUSES), 0), else_=1)
    items = session.scalars(
        base.order_by(is_open, SupportCycle.due_at, SupportTicket.id.desc()).limit(limit).offset(offset)
    ).all()
    return TicketPage(list(items), int(total))


# ---------------------------------------------------------------------------------------------- compliance


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolation percentile (PostgreSQL ``percentile_cont``), ``q`` in [0, 1]; None when empty."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass(frozen=True)
class Compliance:
    """One participant's support record over the cycles started in the period."""

    state: str
    participant: str
    cycles: int
    measured: int
    within_sla: int
    breached: int
    open_breaches: int
    awaiting_response: int
    within_sla_pct: float | None
    median_hours_to_first_response: float | None
    p90_hours_to_first_response: float | None

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def compliance(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    state: str | None = None,
) -> list[Compliance]:
    """Per-participant SLA compliance: % answered within SLA, median/p90 hours to first response, breaches.

    A cycle is *measured* once its outcome is known (answered, or past due); ``within_sla_pct`` is
    within_sla / measured. Hours are real elapsed hours from the cycle's start to the first response.
    """
    if principal.role is Role.PROVIDER:
        raise Forbidden("compliance figures are for participants and oversight")
    now = rt.clock.now()
    now_ = type_coerce(literal(now, UTCDateTime()), UTCDateTime())
    where: list[ColumnElement[bool]] = []
    if principal.role is Role.REVIEWER:
        where.append(SupportCycle.state == principal.state)
    if state:
        where.append(SupportCycle.state == state.upper())
    if since:
        where.append(SupportCycle.started_at >= since)
    if until:
        where.append(SupportCycle.started_at < until)
    met = and_(SupportCycle.responded_at.is_not(None), SupportCycle.responded_at < SupportCycle.due_at)
    awaiting = and_(SupportCycle.responded_at.is_(None), SupportCycle.closed_at.is_(None))
    rows = session.execute(
        select(
            SupportCycle.state,
            SupportCycle.participant,
            func.count().label("cycles"),
            func.sum(case((met, 1), else_=0)).label("within_sla"),
            func.sum(case((breached_sql(now), 1), else_=0)).label("breached"),
            func.sum(case((_open_breach_sql(now), 1), else_=0)).label("open_breaches"),
            func.sum(case((and_(awaiting, SupportCycle.due_at > now_), 1), else_=0)).label("awaiting"),
        )
        .where(*where)
        .group_by(SupportCycle.state, SupportCycle.participant)
        .order_by(SupportCycle.state)
    ).all()
    # Percentiles are not portable SQL (SQLite has none), so fetch only the answered durations.
    durations: dict[tuple[str, str], list[float]] = {}
    for st, part, started, responded in session.execute(
        select(
            SupportCycle.state, SupportCycle.participant, SupportCycle.started_at, SupportCycle.responded_at
        ).where(*where, SupportCycle.responded_at.is_not(None))
    ):
        durations.setdefault((st, part), []).append((responded - started).total_seconds() / 3600)
    out: list[Compliance] = []
    for r in rows:
        within, breached = int(r.within_sla or 0), int(r.breached or 0)
        measured = within + breached
        hours = durations.get((r.state, r.participant), [])
        out.append(
            Compliance(
                state=r.state,
                participant=r.participant,
                cycles=int(r.cycles),
                measured=measured,
                within_sla=within,
                breached=breached,
                open_breaches=int(r.open_breaches or 0),
                awaiting_response=int(r.awaiting or 0),
                within_sla_pct=round(100 * within / measured, 1) if measured else None,
                median_hours_to_first_response=_round(percentile(hours, 0.5)),
                p90_hours_to_first_response=_round(percentile(hours, 0.9)),
            )
        )
    return out


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


# ---------------------------------------------------------------------------------------------- views


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat().replace("+00:00", "Z") if t else None


def cycle_view(cycle: SupportCycle, now: dt.datetime) -> dict[str, Any]:
    """A response cycle with its breach flag as of ``now``."""
    return {
        "seq": cycle.seq,
        "started_at": _iso(cycle.started_at),
        "due_at": _iso(cycle.due_at),
        "responded_at": _iso(cycle.responded_at),
        "closed_at": _iso(cycle.closed_at),
        "breached": cycle_breached(cycle, now),
    }


def ticket_view(ticket: SupportTicket, *, now: dt.datetime, with_thread: bool = True) -> dict[str, Any]:
    """The JSON form every interface shows; deadlines and breach flags are as of ``now``."""
    cur = ticket.current_cycle
    view: dict[str, Any] = {
        "id": ticket.id,
        "state": ticket.state,
        "participant": ticket.participant,
        "organization_id": ticket.organization_id,
        "request_id": ticket.request_id,
        "category": ticket.category,
        "urgency": ticket.urgency,
        "urgent_trigger": ticket.urgent_trigger,
        "urgency_reason": ticket.urgency_reason,
        "sla": {"amount": ticket.sla_amount, "unit": ticket.sla_unit},
        "subject": ticket.subject,
        "status": ticket.status,
        "opened_at": _iso(ticket.opened_at),
        "response_due_at": _iso(cur.due_at),
        "first_response_at": _iso(cur.responded_at),
        "breached": cycle_breached(cur, now),
        "overdue": cur.responded_at is None and cur.closed_at is None and now >= cur.due_at,
        "ever_breached": any(cycle_breached(c, now) for c in ticket.cycles),
        "resolved_at": _iso(ticket.resolved_at),
        "reopen_count": ticket.reopen_count,
        "profile": {"id": ticket.profile_id, "version": ticket.profile_version},
        "cycles": [cycle_view(c, now) for c in ticket.cycles],
    }
    if with_thread:
        view["description"] = ticket.description
        view["messages"] = [
            {"kind": m.kind, "author_role": m.author_role, "body": m.body, "at": _iso(m.at)}
            for m in ticket.messages
        ]
    return view
