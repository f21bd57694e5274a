"""Reviewer pages: the worklist by due time and the decision form (affirm, non-affirm, information, P2P)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from wiserpa.auth.models import Role
from wiserpa.auth.service import Principal
from wiserpa.errors import ApiError, Invalid
from wiserpa.http import IdPath, RuntimeDep, SessionDep
from wiserpa.ids import parse_id
from wiserpa.requests import service as requests
from wiserpa.requests.models import PaRequest
from wiserpa.requests.status import OPEN
from wiserpa.reviews import service as reviews
from wiserpa.reviews import workflow
from wiserpa.runtime import Runtime
from wiserpa.web.auth import csrf_form, page_roles
from wiserpa.web.views import page_router, redirect, register_nav, render

router = page_router()

register_nav(
    "Worklist",
    "/review",
    "Pended requests in your state, soonest due first, with the unmet or undocumented criteria.",
    roles=(Role.REVIEWER,),
    order=10,
)

ReviewerPrincipal = Annotated[Principal, Depends(page_roles(Role.REVIEWER))]


def gaps(view: dict[str, Any]) -> list[dict[str, Any]]:
    """The criteria a clinician must look at: unmet or undocumented."""
    return [c for c in view["criteria_results"] if c.get("result") != "met"]


@router.get("/review", response_class=HTMLResponse)
def worklist_page(
    request: Request,
    session: SessionDep,
    rt: RuntimeDep,
    principal: ReviewerPrincipal,
    category: Annotated[str | None, Query(max_length=40)] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> HTMLResponse:
    """Pended requests in the reviewer's state, soonest due first, each with its gaps."""
    page = reviews.worklist(
        session, rt, principal=principal, limit=50, offset=offset, category=category or None
    )
    session.commit()
    now = rt.clock.now()
    items = []
    for r in page.items:
        view = requests.request_view(rt, r, now=now)
        view["gaps"] = gaps(view)
        items.append(view)
    categories = [c for c in rt.catalog.categories.values() if c.active]
    return render(
        request,
        "review/worklist.html",
        items=items,
        total=page.total,
        offset=offset,
        limit=50,
        category=category or "",
        categories=categories,
    )


def _page(
    request: Request,
    session: Any,
    rt: Runtime,
    principal: Principal,
    request_id: int,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    req = requests.get(session, rt, principal=principal, request_id=request_id)
    view = requests.request_view(rt, req, now=rt.clock.now())
    wf = workflow.workflow_view(session, req)
    supplemented = workflow.supplemented_results(
        rt, req, workflow.for_request(session, req.id).information_requests
    )
    session.commit()
    return render(
        request,
        "review/decide.html",
        status_code=status_code,
        r=view,
        gaps=gaps(view),
        workflow=wf,
        supplemented=supplemented,
        is_open=view["status"] in {s.value for s in OPEN},
        errors=errors or {},
        values=values or {},
        zone=_zone(rt, req),
        open_p2p=next((p for p in wf["peer_to_peer"] if p["status"] != "completed"), None),
    )


def _zone(rt: Runtime, req: PaRequest) -> str:
    state = rt.catalog.state(req.state)
    return state.timezone if state else "UTC"


@router.get("/review/{request_id}", response_class=HTMLResponse)
def decide_page(
    request: Request, request_id: IdPath, session: SessionDep, rt: RuntimeDep, principal: ReviewerPrincipal
) -> HTMLResponse:
    """One request for review: summary, criteria with citations, workflow and the decision form."""
    return _page(request, session, rt, principal, request_id)


@router.post("/review/{request_id}/decision", response_class=HTMLResponse)
def decide_post(
    request: Request,
    request_id: IdPath,
    session: SessionDep,
    rt: RuntimeDep,
    principal: ReviewerPrincipal,
    form: Annotated[FormData, Depends(csrf_form("review-decision"))],
) -> Response:
    """Affirm, or non-affirm citing unmet criteria (the note may add, never replace)."""
    decision = str(form.get("decision") or "")
    reasons = [str(x) for x in form.getlist("reasons")][:50]
    note = str(form.get("note") or "").strip()[:4000] or None
    version = str(form.get("version") or "")
    values = {"decision": decision, "reasons": reasons, "note": note or ""}
    expected_version = parse_id(version)
    if version and expected_version is None:
        return _page(
            request,
            session,
            rt,
            principal,
            request_id,
            {"form": "version: not a request version; reload the page and decide again"},
            values,
            422,
        )
    if decision not in ("affirm", "non_affirm"):
        return _page(
            request,
            session,
            rt,
            principal,
            request_id,
            {"decision": "choose affirm or non-affirm"},
            values,
            422,
        )
    try:
        result = reviews.decide(
            session,
            rt,
            principal=principal,
            request_id=request_id,
            outcome=decision,
            reasons=reasons if decision == "non_affirm" else [],
            note=note,
            expected_version=expected_version,
        )
        session.commit()
    except Invalid as exc:
        session.rollback()
        return _page(
            request,
            session,
            rt,
            principal,
            request_id,
            {f.field: f.message for f in exc.fields} or {"form": exc.message},
            values,
            422,
        )
    except ApiError as exc:
        session.rollback()
        if exc.status_code == 404:
            raise
        return _page(
            request, session, rt, principal, request_id, {"form": exc.message}, values, exc.status_code
        )
    notice = (
        result.message
        if not result.applied
        else ("Affirmed." if decision == "affirm" else "Non-affirmed; the provider sees the cited criteria.")
    )
    return redirect("/review", notice=f"Request {request_id}: {notice}")


@router.post("/review/{request_id}/information", response_class=HTMLResponse)
def information_post(
    request: Request,
    request_id: IdPath,
    session: SessionDep,
    rt: RuntimeDep,
    principal: ReviewerPrincipal,
    form: Annotated[FormData, Depends(csrf_form("review-information"))],
) -> Response:
    """Ask the practice for what is missing; the clock keeps running."""
    ids = [str(x) for x in form.getlist("criterion_ids")][:50]
    message = str(form.get("message") or "").strip()[:4000] or None
    try:
        workflow.request_information(
            session, rt, principal=principal, request_id=request_id, criterion_ids=ids, message=message
        )
        session.commit()
    except Invalid as exc:
        session.rollback()
        errs = {"info_" + f.field: f.message for f in exc.fields}
        return _page(request, session, rt, principal, request_id, errs, {"info_message": message or ""}, 422)
    except ApiError as exc:
        session.rollback()
        if exc.status_code == 404:
            raise
        return _page(
            request, session, rt, principal, request_id, {"form": exc.message}, None, exc.status_code
        )
    return redirect(f"/review/{request_id}", notice="Information requested; the due time is unchanged.")


def _int(value: object) -> int:
    number = parse_id(value)
    return 0 if number is None else number  # 0 never matches a row: a 404 page


def _local_time(rt: Runtime, request_id: int, session: Any, raw: str) -> dt.datetime:
    """A datetime-local value read in the request's state time zone."""
    req = session.get(PaRequest, request_id)
    zone = ZoneInfo(_zone(rt, req)) if req is not None else dt.UTC
    try:
        return dt.datetime.fromisoformat(raw).replace(tzinfo=zone)
    except ValueError as exc:
        raise Invalid("enter a date and time", []) from exc


@router.post("/review/{request_id}/peer-to-peer", response_class=HTMLResponse)
def p2p_post(
    request: Request,
    request_id: IdPath,
    session: SessionDep,
    rt: RuntimeDep,
    principal: ReviewerPrincipal,
    form: Annotated[FormData, Depends(csrf_form("review-p2p"))],
) -> Response:
    """Request, schedule, or record the outcome of a peer-to-peer (by the form's `step`)."""
    step = str(form.get("step") or "")
    note = str(form.get("note") or "").strip()[:4000] or None
    when_raw = str(form.get("scheduled_for") or "").strip()
    try:
        when = _local_time(rt, request_id, session, when_raw) if when_raw else None
        if step == "request":
            workflow.request_peer_to_peer(
                session, rt, principal=principal, request_id=request_id, note=note, scheduled_for=when
            )
        elif step == "schedule":
            if when is None:
                raise Invalid("enter a date and time", [])
            workflow.schedule_peer_to_peer(
                session,
                rt,
                principal=principal,
                request_id=request_id,
                p2p_id=_int(form.get("p2p_id")),
                scheduled_for=when,
            )
        elif step == "outcome":
            workflow.record_peer_to_peer_outcome(
                session,
                rt,
                principal=principal,
                request_id=request_id,
                p2p_id=_int(form.get("p2p_id")),
                outcome=str(form.get("outcome") or ""),
                note=note,
            )
        else:
            raise Invalid("unknown step", [])
        session.commit()
    except ApiError as exc:
        session.rollback()
        if exc.status_code == 404:
            raise
        msg = "; ".join(f.message for f in exc.fields) or exc.message
        return _page(request, session, rt, principal, request_id, {"p2p": msg}, None, exc.status_code)
    return redirect(f"/review/{request_id}", notice="Peer-to-peer updated.")
