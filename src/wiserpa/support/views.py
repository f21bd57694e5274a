"""REST routes for technical-support tickets (R5): open, read, respond, resolve, reopen, compliance."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import Field
from starlette.datastructures import FormData

from wiserpa.auth.models import Role
from wiserpa.auth.service import Principal
from wiserpa.errors import Invalid, invalid
from wiserpa.experience.taxonomy import TicketCategory, labels
from wiserpa.http import IdPath, PrincipalDep, RawBody, RuntimeDep, SessionDep, once
from wiserpa.ids import MAX_ID, parse_id
from wiserpa.inbound import Strict
from wiserpa.store.idempotency import Outcome
from wiserpa.support import service
from wiserpa.web.auth import WebPrincipal, csrf_form, page_roles
from wiserpa.web.views import page_router, redirect, register_nav, render

router = APIRouter(prefix="/api/v1/support", tags=["support"])

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


class TicketIn(Strict):
    """A new support ticket. ``state`` defaults to the linked request's state, else your organization's."""

    category: TicketCategory
    subject: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=4000)
    state: str | None = Field(default=None, min_length=2, max_length=2)
    request_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    urgent_trigger: str | None = Field(
        default=None,
        max_length=40,
        description="When clinically time-sensitive: pain, oncology, post_operative (or a profile trigger)",
    )


class MessageIn(Strict):
    """A message on a ticket: a response from participant staff, a comment from the practice."""

    body: str = Field(min_length=1, max_length=4000)


class ResolveIn(Strict):
    """Optional resolution note."""

    note: str | None = Field(default=None, max_length=4000)


class ReopenIn(Strict):
    """Why the ticket is reopened."""

    reason: str = Field(min_length=1, max_length=4000)


def _respond(outcome: Outcome) -> JSONResponse:
    headers: dict[str, str] = {}
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    if outcome.status_code == 201 and "id" in outcome.body:
        headers["Location"] = f"/api/v1/support/tickets/{outcome.body['id']}"
    return JSONResponse(outcome.body, status_code=outcome.status_code, headers=headers)


@router.post("/tickets", status_code=201, responses={422: {"description": "Invalid input, fields named"}})
def open_ticket(
    body: TicketIn,
    raw: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Open a ticket with your state's participant; the answer says when a response is due."""

    def work() -> Outcome:
        t = service.open_ticket(
            session,
            rt,
            principal=principal,
            category=body.category.value,
            subject=body.subject,
            description=body.description,
            state=body.state,
            request_id=body.request_id,
            urgent_trigger=body.urgent_trigger,
        )
        return Outcome(201, service.ticket_view(t, now=rt.clock.now()))

    return _respond(
        once(
            session,
            rt,
            scope=f"user:{principal.user_id}:support-open",
            key=idempotency_key,
            raw=raw,
            work=work,
        )
    )


@router.get("/tickets")
def list_tickets(
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    status: Annotated[str | None, Query(pattern="^(open|answered|resolved)$")] = None,
    state: Annotated[str | None, Query(min_length=2, max_length=2)] = None,
    breached: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Tickets in your scope (practice: yours; participant staff: your state; oversight: all)."""
    page = service.list_tickets(
        session,
        rt,
        principal=principal,
        status=status,
        state=state,
        breached=breached,
        limit=limit,
        offset=offset,
    )
    now = rt.clock.now()
    return {
        "items": [service.ticket_view(t, now=now, with_thread=False) for t in page.items],
        "total": page.total,
        "limit": limit,
        "offset": offset,
    }


@router.get("/tickets/{ticket_id}", responses={404: {"description": "Not found or not yours"}})
def get_ticket(
    ticket_id: IdPath, session: SessionDep, rt: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    """One ticket with its thread, response cycles and breach flags as of now."""
    t = service.get_ticket(session, rt, principal=principal, ticket_id=ticket_id)
    return service.ticket_view(t, now=rt.clock.now())


def _mutate(session: SessionDep, rt: RuntimeDep, t_view: Any) -> dict[str, Any]:
    session.commit()
    return service.ticket_view(t_view, now=rt.clock.now())


@router.post("/tickets/{ticket_id}/messages")
def post_message(
    ticket_id: IdPath, body: MessageIn, session: SessionDep, rt: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Write on the thread; participant staff's first message in a cycle is its first response."""
    t = service.add_message(session, rt, principal=principal, ticket_id=ticket_id, body=body.body)
    return _mutate(session, rt, t)


@router.post("/tickets/{ticket_id}/resolve")
def resolve_ticket(
    ticket_id: IdPath, body: ResolveIn, session: SessionDep, rt: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Mark the ticket resolved."""
    t = service.resolve(session, rt, principal=principal, ticket_id=ticket_id, note=body.note)
    return _mutate(session, rt, t)


@router.post("/tickets/{ticket_id}/reopen")
def reopen_ticket(
    ticket_id: IdPath, body: ReopenIn, session: SessionDep, rt: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Reopen a resolved ticket: a new response deadline starts now."""
    t = service.reopen(session, rt, principal=principal, ticket_id=ticket_id, reason=body.reason)
    return _mutate(session, rt, t)


@router.get("/compliance")
def get_compliance(
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    since: dt.date | None = None,
    until: dt.date | None = None,
    state: Annotated[str | None, Query(min_length=2, max_length=2)] = None,
) -> dict[str, Any]:
    """Per-participant SLA compliance over response cycles started in [since, until) (UTC dates)."""
    if since and until and until <= since:
        raise invalid("until", "must be after since (the period is [since, until))")
    rows = service.compliance(
        session,
        rt,
        principal=principal,
        since=_midnight(since),
        until=_midnight(until),
        state=state,
    )
    return {
        "as_of": rt.clock.now().isoformat().replace("+00:00", "Z"),
        "participants": [r.as_dict() for r in rows],
    }


def _midnight(d: dt.date | None) -> dt.datetime | None:
    return dt.datetime.combine(d, dt.time(0), tzinfo=dt.UTC) if d else None


# ---------------------------------------------------------------------------------------------- web pages
# Thin page handlers over the same service calls; templates in web/templates/support/.

pages = page_router()
register_nav(
    "Support",
    "/support",
    "Technical-support tickets with the participant, and their 24/72-hour response clocks.",
    roles=(Role.PROVIDER, Role.REVIEWER, Role.OVERSIGHT, Role.ADMIN),
    order=40,
)

ProviderPage = Annotated[Principal, Depends(page_roles(Role.PROVIDER))]


def _form_values(form: FormData) -> dict[str, str]:
    return {k: str(v) for k, v in form.items() if isinstance(v, str)}


@pages.get("/support", response_class=HTMLResponse)
def support_list_page(
    request: Request,
    session: SessionDep,
    rt: RuntimeDep,
    principal: WebPrincipal,
    status: Annotated[str | None, Query(pattern="^(|open|answered|resolved)$")] = None,
) -> HTMLResponse:
    """Practice: its tickets; participant staff: its state's queue, soonest due first; oversight: all."""
    page = service.list_tickets(session, rt, principal=principal, status=status or None, limit=200)
    now = rt.clock.now()
    items = [service.ticket_view(t, now=now, with_thread=False) for t in page.items]
    figures = []
    if principal.role is not Role.PROVIDER:
        figures = [c.as_dict() for c in service.compliance(session, rt, principal=principal)]
    return render(
        request,
        "support/list.html",
        items=items,
        total=page.total,
        status=status or "",
        figures=figures,
        categories=labels(TicketCategory),
    )


def _new_form(
    request: Request, rt: RuntimeDep, values: dict[str, str], errors: dict[str, str], status_code: int = 200
) -> HTMLResponse:
    return render(
        request,
        "support/new.html",
        status_code=status_code,
        values=values,
        errors=errors,
        categories=labels(TicketCategory),
        triggers=service.allowed_triggers(rt.profile),
        states=list(rt.catalog.states.values()),
        support=rt.profile.support,
    )


@pages.get("/support/new", response_class=HTMLResponse)
def support_new_page(
    request: Request, rt: RuntimeDep, principal: ProviderPage, request_id: int | None = None
) -> HTMLResponse:
    """The new-ticket form."""
    return _new_form(request, rt, {"request_id": str(request_id or "")}, {})


@pages.post("/support/new", response_class=HTMLResponse)
def support_new_post(
    request: Request,
    session: SessionDep,
    rt: RuntimeDep,
    principal: ProviderPage,
    form: Annotated[FormData, Depends(csrf_form("support-new"))],
) -> Response:
    """Open the ticket through the service; errors re-render the form naming each field."""
    values = _form_values(form)
    errors: dict[str, str] = {}
    req_id: int | None = None
    if values.get("request_id", "").strip():
        req_id = parse_id(values["request_id"])
        if req_id is None:
            errors["request_id"] = "enter a request number"
    for name, label, limit in (("subject", "a subject", 200), ("description", "what happened", 4000)):
        text = values.get(name, "").strip()
        if not text:
            errors[name] = f"enter {label}"
        elif len(text) > limit:
            errors[name] = f"at most {limit} characters"
    if not errors:
        try:
            t = service.open_ticket(
                session,
                rt,
                principal=principal,
                category=values.get("category", ""),
                subject=values["subject"].strip(),
                description=values["description"].strip(),
                state=values.get("state") or None,
                request_id=req_id,
                urgent_trigger=values.get("urgent_trigger") or None,
            )
            session.commit()
            return redirect(
                f"/support/{t.id}",
                notice="Ticket opened. A response is due by "
                f"{t.current_cycle.due_at.strftime('%a %d %b %Y, %H:%M UTC')}.",
            )
        except Invalid as exc:
            session.rollback()
            errors = {f.field: f.message for f in exc.fields} or {"form": exc.message}
    return _new_form(request, rt, values, errors, 422)


@pages.get("/support/{ticket_id}", response_class=HTMLResponse)
def support_detail_page(
    request: Request, ticket_id: IdPath, session: SessionDep, rt: RuntimeDep, principal: WebPrincipal
) -> HTMLResponse:
    """One ticket: deadline, breach flags per response cycle, the thread, and what the caller may do."""
    t = service.get_ticket(session, rt, principal=principal, ticket_id=ticket_id)
    view = service.ticket_view(t, now=rt.clock.now())
    return render(
        request,
        "support/detail.html",
        t=view,
        categories=labels(TicketCategory),
        can_write=principal.role in (Role.PROVIDER, Role.REVIEWER) and view["status"] != "resolved",
        can_reopen=principal.role is Role.PROVIDER and view["status"] == "resolved",
    )


def _act(request: Request, session: SessionDep, ticket_id: IdPath, fn: Any, ok: str) -> Response:
    try:
        fn()
        session.commit()
    except Invalid as exc:
        session.rollback()
        return redirect(f"/support/{ticket_id}", notice=f"Not done: {exc.message}")
    return redirect(f"/support/{ticket_id}", notice=ok)


@pages.post("/support/{ticket_id}/message", response_class=HTMLResponse)
def support_message_post(
    request: Request,
    ticket_id: IdPath,
    session: SessionDep,
    rt: RuntimeDep,
    principal: WebPrincipal,
    form: Annotated[FormData, Depends(csrf_form("support-message"))],
) -> Response:
    """Post a response (participant staff) or a comment (practice)."""
    text = str(form.get("body") or "").strip()[:4000]
    if not text:
        return redirect(f"/support/{ticket_id}", notice="Write a message first.")
    return _act(
        request,
        session,
        ticket_id,
        lambda: service.add_message(session, rt, principal=principal, ticket_id=ticket_id, body=text),
        "Message sent.",
    )


@pages.post("/support/{ticket_id}/resolve", response_class=HTMLResponse)
def support_resolve_post(
    request: Request,
    ticket_id: IdPath,
    session: SessionDep,
    rt: RuntimeDep,
    principal: WebPrincipal,
    form: Annotated[FormData, Depends(csrf_form("support-resolve"))],
) -> Response:
    """Mark the ticket resolved."""
    note = str(form.get("note") or "").strip()[:4000] or None
    return _act(
        request,
        session,
        ticket_id,
        lambda: service.resolve(session, rt, principal=principal, ticket_id=ticket_id, note=note),
        "Ticket resolved.",
    )


@pages.post("/support/{ticket_id}/reopen", response_class=HTMLResponse)
def support_reopen_post(
    request: Request,
    ticket_id: IdPath,
    session: SessionDep,
    rt: RuntimeDep,
    principal: ProviderPage,
    form: Annotated[FormData, Depends(csrf_form("support-reopen"))],
) -> Response:
    """Reopen: a new response deadline starts now."""
    reason = str(form.get("reason") or "").strip()[:4000]
    if not reason:
        return redirect(f"/support/{ticket_id}", notice="Say why the ticket is reopened.")
    return _act(
        request,
        session,
        ticket_id,
        lambda: service.reopen(session, rt, principal=principal, ticket_id=ticket_id, reason=reason),
        "Ticket reopened; a new response deadline has started.",
    )
