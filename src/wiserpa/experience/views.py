"""REST routes for experience reports (R9): intake (signed-in; public when enabled), patterns, exports."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from markupsafe import Markup
from pydantic import Field, ValidationError
from starlette.datastructures import FormData

from wiserpa.auth.models import Role
from wiserpa.auth.service import Principal
from wiserpa.errors import ApiError, Invalid
from wiserpa.experience import service
from wiserpa.experience.taxonomy import Obstacle, PatientImpact, labels
from wiserpa.http import IdPath, PrincipalDep, RawBody, RuntimeDep, SessionDep, SlidingWindow, once
from wiserpa.ids import MAX_ID
from wiserpa.inbound import Strict
from wiserpa.store.idempotency import Outcome
from wiserpa.web.auth import csrf_form, page_roles
from wiserpa.web.views import page_router, redirect, register_nav, render

router = APIRouter(prefix="/api/v1/experience", tags=["experience"])

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
NARRATIVE_MAX = 4000
StateQ = Annotated[str | None, Query(min_length=2, max_length=2, pattern="^[A-Za-z]{2}$")]


class ReportIn(Strict):
    """An experience report. Give ``state`` (or link a request); ``category`` or ``service_code``."""

    state: str | None = Field(default=None, min_length=2, max_length=2)
    participant: str | None = Field(default=None, max_length=100, description="Checked against the state's")
    category: str | None = Field(default=None, max_length=40)
    service_code: str | None = Field(default=None, max_length=5)
    requested_on: dt.date | None = None
    decided_on: dt.date | None = None
    care_on: dt.date | None = Field(default=None, description="When care was finally delivered")
    delay_days: float | None = Field(
        default=None, ge=0, le=3650, description="Used only when dates are missing"
    )
    obstacles: list[Obstacle] = Field(min_length=1, max_length=len(Obstacle))
    impact: PatientImpact
    narrative: str = Field(
        min_length=1, max_length=NARRATIVE_MAX, description="No patient identifiers: such text is rejected"
    )
    request_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="A request of your organization"
    )

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``service.submit_report``."""
        data = self.model_dump()
        data["obstacles"] = [o.value for o in self.obstacles]
        data["impact"] = self.impact.value
        return data


class RateLimited(ApiError):
    """Too many anonymous reports from one client."""

    def __init__(self) -> None:
        super().__init__("too many reports from this address; try again later", [], 429, "rate_limited")


class PublicIntakeDisabled(ApiError):
    """Anonymous intake is off in this deployment."""

    def __init__(self) -> None:
        super().__init__("anonymous experience reports are not accepted here; sign in", [], 404, "not_found")


class PublicIntakeLimiter:
    """Sliding-window count of anonymous submissions per client address."""

    def __init__(self, limit: int = 5, window_seconds: float = 3600.0) -> None:
        self.limit = limit
        self.hits = SlidingWindow(window_seconds)

    def allow(self, client: str) -> bool:
        """Count one submission; False when the client is over the limit."""
        if self.hits.count(client) >= self.limit:
            return False
        self.hits.add(client)
        return True


def public_intake_enabled(request: Request) -> bool:
    """True when the app (``app.state.experience_public_intake``) or the settings enable anonymous intake."""
    flag = getattr(request.app.state, "experience_public_intake", None)
    if flag is None:
        flag = getattr(request.app.state.runtime.settings, "experience_public_intake", False)
    return bool(flag)


def _limiter(request: Request) -> PublicIntakeLimiter:
    limiter = getattr(request.app.state, "experience_public_limiter", None)
    if limiter is None:
        limiter = request.app.state.experience_public_limiter = PublicIntakeLimiter()
    return limiter


def _created(outcome: Outcome) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    if outcome.status_code == 201:
        headers["Location"] = f"/api/v1/experience/reports/{outcome.body['id']}"
    return JSONResponse(outcome.body, status_code=outcome.status_code, headers=headers)


@router.get("/taxonomy")
def taxonomy() -> dict[str, Any]:
    """The fixed vocabularies (obstacles, patient impact) with their labels."""
    return {
        "obstacles": labels(Obstacle),
        "impacts": labels(PatientImpact),
        "narrative_max_chars": NARRATIVE_MAX,
    }


@router.post(
    "/reports", status_code=201, responses={422: {"description": "Invalid; identifiers are refused"}}
)
def submit_report(
    body: ReportIn,
    raw: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """File a report (providers); a narrative with a patient identifier is a 422 on ``narrative``."""

    def work() -> Outcome:
        r = service.submit_report(session, rt, principal=principal, **body.as_kwargs())
        return Outcome(201, service.report_view(r, with_reporter=True))

    return _created(
        once(
            session, rt, scope=f"user:{principal.user_id}:experience", key=idempotency_key, raw=raw, work=work
        )
    )


@router.post("/public-reports", status_code=201)
def submit_public_report(
    body: ReportIn, request: Request, session: SessionDep, rt: RuntimeDep
) -> JSONResponse:
    """Anonymous report (only when enabled; rate-limited; never shown individually to the public)."""
    if not public_intake_enabled(request):
        raise PublicIntakeDisabled()
    client = request.client.host if request.client else "unknown"
    if not _limiter(request).allow(client):
        raise RateLimited()
    r = service.submit_report(session, rt, principal=None, **body.as_kwargs())
    session.commit()
    # The anonymous reporter gets a receipt, not the stored report back.
    return JSONResponse({"id": r.id, "status": "received"}, status_code=201)


@router.get("/reports")
def list_reports(
    session: SessionDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Your organization's reports (providers) or all reports (oversight), newest first."""
    items, total = service.list_reports(session, principal=principal, limit=limit, offset=offset)
    return {
        "items": [service.report_view(r) for r in items],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.get("/reports/{report_id}", responses={404: {"description": "Not found or not yours"}})
def get_report(report_id: IdPath, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    """One report."""
    return service.report_view(service.get_report(session, principal=principal, report_id=report_id))


@router.get("/patterns")
def get_patterns(
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    since: dt.date | None = None,
    state: StateQ = None,
) -> dict[str, Any]:
    """Counts and rates by participant × category × obstacle × week, spikes, over-representation, themes."""
    return service.patterns(session, rt, principal=principal, since=since, state=state)


@router.get("/export.csv", response_class=PlainTextResponse)
def export_csv(
    session: SessionDep, principal: PrincipalDep, since: dt.date | None = None, state: StateQ = None
) -> Response:
    """The reports as CSV (no reporter identity, no request ids)."""
    text = service.export_csv(session, principal=principal, since=since, state=state)
    suffix = (f"-{state.upper()}" if state else "") + (f"-{since.isoformat()}" if since else "")
    name = f"experience-reports{suffix}.csv"
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/brief.md", response_class=PlainTextResponse)
def brief(
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    since: dt.date | None = None,
    state: StateQ = None,
) -> Response:
    """The Markdown evidence brief for a letter to CMS (small counts suppressed, excerpts anonymised)."""
    text = service.brief_markdown(session, rt, principal=principal, since=since, state=state)
    return Response(text, media_type="text/markdown; charset=utf-8")


# ---------------------------------------------------------------------------------------------- web pages
# The report form (providers) and the oversight patterns page; templates in web/templates/experience/.

pages = page_router()
register_nav(
    "Report an obstacle",
    "/experience/new",
    "Tell oversight about a delay or obstacle with a participant (no patient identifiers).",
    roles=(Role.PROVIDER,),
    order=45,
)
register_nav(
    "Experience patterns",
    "/experience/patterns",
    "Where provider-reported problems cluster and spike, with exports for a letter to CMS.",
    roles=(Role.OVERSIGHT, Role.ADMIN),
    order=46,
)

ProviderPage = Annotated[Principal, Depends(page_roles(Role.PROVIDER))]
OversightPage = Annotated[Principal, Depends(page_roles(Role.OVERSIGHT, Role.ADMIN))]
_FORM_FIELDS = (
    "state",
    "service_code",
    "requested_on",
    "decided_on",
    "care_on",
    "delay_days",
    "impact",
    "narrative",
    "request_id",
)


def _report_form(
    request: Request, rt: RuntimeDep, values: dict[str, Any], errors: dict[str, str], status_code: int = 200
) -> HTMLResponse:
    groups = [{"title": c.title, "codes": c.codes} for c in rt.catalog.categories.values() if c.active]
    return render(
        request,
        "experience/new.html",
        status_code=status_code,
        values=values,
        errors=errors,
        states=list(rt.catalog.states.values()),
        groups=groups,
        obstacles=labels(Obstacle),
        impacts=labels(PatientImpact),
        narrative_max=NARRATIVE_MAX,
    )


@pages.get("/experience/new", response_class=HTMLResponse)
def report_form_page(request: Request, rt: RuntimeDep, principal: ProviderPage) -> HTMLResponse:
    """The experience-report form."""
    return _report_form(request, rt, {"obstacles": []}, {})


@pages.post("/experience/new", response_class=HTMLResponse)
def report_form_post(
    request: Request,
    session: SessionDep,
    rt: RuntimeDep,
    principal: ProviderPage,
    form: Annotated[FormData, Depends(csrf_form("experience-new"))],
) -> Response:
    """Validate like the API (same schema, same service); errors re-render the form naming each field."""
    values: dict[str, Any] = {k: str(form.get(k) or "").strip() for k in _FORM_FIELDS}
    values["obstacles"] = [str(v) for v in form.getlist("obstacles")]
    data = {k: v for k, v in values.items() if v not in ("", [])}
    data.setdefault("obstacles", [])
    try:
        body = ReportIn.model_validate(data)
        report = service.submit_report(session, rt, principal=principal, **body.as_kwargs())
        session.commit()
    except ValidationError as exc:
        errors = {
            str(e["loc"][0]) if e["loc"] else "form": str(e["msg"]).removeprefix("Value error, ")
            for e in exc.errors()
        }
        return _report_form(request, rt, values, errors, 422)
    except Invalid as exc:
        session.rollback()
        return _report_form(request, rt, values, {f.field: f.message for f in exc.fields}, 422)
    note = f"Report #{report.id} received. Thank you."
    if report.timeline_disagrees:
        note += " Some dates differ from the linked request's record; both are kept."
    return redirect("/experience/new", notice=note)


@pages.get("/experience/patterns", response_class=HTMLResponse)
def patterns_page(
    request: Request,
    session: SessionDep,
    rt: RuntimeDep,
    principal: OversightPage,
    since: dt.date | None = None,
    state: Annotated[str | None, Query(pattern="^([A-Za-z]{2})?$")] = None,
) -> HTMLResponse:
    """Oversight: counts, spikes, over-represented obstacles, themes, charts and export links."""
    from wiserpa.reporting import charts

    state = state or None
    p = service.patterns(session, rt, principal=principal, since=since, state=state)
    weekly = p["weekly_by_participant"]
    weeks = sorted({w for series in weekly.values() for w in series})
    line = (
        charts.line_chart(
            weeks,
            {name: [series.get(w, 0) for w in weeks] for name, series in weekly.items()},
            title="Reports per week by participant",
            unit="reports",
        )
        if weeks
        else ""
    )
    names = labels(Obstacle)
    by_obstacle = [(names.get(k, k), v) for k, v in p["summary"]["by_obstacle"].items()]
    bars = charts.bar_chart(by_obstacle, title="Reports by obstacle", unit="reports") if by_obstacle else ""
    params = (("since", since.isoformat() if since else ""), ("state", state or ""))
    query = "&".join(f"{k}={v}" for k, v in params if v)
    return render(
        request,
        "experience/patterns.html",
        p=p,
        since=since.isoformat() if since else "",
        state=state or "",
        states=list(rt.catalog.states.values()),
        line_chart=Markup(line),
        bar_chart=Markup(bars),
        query=("?" + query) if query else "",
        obstacle_labels=names,
        impact_labels=labels(PatientImpact),
    )
