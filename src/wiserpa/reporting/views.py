"""Public transparency pages and API (no login), and the oversight report pages (oversight/admin).

Everything public is rendered from ``service.public_report`` — published values only — so a page, a chart,
an API response and a download cannot disagree or leak a suppressed figure.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from wiserpa.auth.models import Role
from wiserpa.auth.service import Principal
from wiserpa.errors import FieldError, Invalid, NotFound
from wiserpa.http import RuntimeDep, SessionDep
from wiserpa.reporting import charts, exports
from wiserpa.reporting import service as reports
from wiserpa.reporting.metrics import OUTCOMES
from wiserpa.reporting.service import ALL, PublicReport
from wiserpa.runtime import Runtime
from wiserpa.web.auth import MaybePrincipal, page_roles
from wiserpa.web.views import page_router, register_nav, render

api = APIRouter(prefix="/api/v1/public", tags=["public reports"])
pages = page_router()

register_nav(
    "Public figures",
    "/public/",
    "How each participant performs, month by month; open to everyone.",
    roles=None,
    order=50,
)
register_nav(
    "Oversight reports",
    "/oversight/reports",
    "Unsuppressed figures, finer cuts and the penalty ledger.",
    roles=(Role.OVERSIGHT, Role.ADMIN),
    order=60,
)

OversightPrincipal = Annotated[Principal, Depends(page_roles(Role.OVERSIGHT, Role.ADMIN))]
# Public data changes at most once a minute (the cache key); clients may keep it that long.
_PUBLIC_HEADERS = {"Cache-Control": "public, max-age=60"}


def _grain(grain: str | None) -> str | None:
    if grain in (None, "", "all"):
        return None
    if grain not in ("month", "year"):
        raise Invalid("unknown grain", [FieldError("grain", "use month, year or all")])
    return grain


def _headers(report: PublicReport) -> dict[str, str]:
    return {**_PUBLIC_HEADERS, "X-Report-As-Of": report.as_of.isoformat().replace("+00:00", "Z")}


def _year(report: PublicReport, year: str | None) -> str | None:
    if year is None:
        return report.years[-1] if report.years else None
    if not (len(year) == 4 and year.isascii() and year.isdigit()):
        raise Invalid("year must be a four-digit year", [FieldError("year", "use a year such as 2026")])
    if year not in report.years:
        raise NotFound(f"no figures for year {year}")
    return year


def _meta(report: PublicReport) -> dict[str, Any]:
    return {
        "as_of": report.as_of.isoformat().replace("+00:00", "Z"),
        "profile": {"id": report.profile_id, "version": report.profile_version},
        "schema_version": reports.SCHEMA_VERSION,
    }


# ---------------------------------------------------------------------------------------------- JSON API


@api.get("/metrics")
def api_metrics(
    rt: RuntimeDep, grain: str | None = Query(None, description="month, year or all")
) -> JSONResponse:
    """Every published figure per participant and period (suppressed values are null)."""
    report = reports.public_report(rt)
    return JSONResponse(exports.to_json(report, _grain(grain)), headers=_headers(report))


@api.get("/schema")
def api_schema() -> dict[str, Any]:
    """The columns of the metrics API and downloads."""
    return exports.schema()


@api.get("/cms0057")
def api_cms0057(rt: RuntimeDep, year: str | None = None) -> JSONResponse:
    """The CMS-0057-F metric set per participant (and all participants) for one year."""
    report = reports.public_report(rt)
    y = _year(report, year)
    body = {
        **_meta(report),
        "year": y,
        "participants": [
            {"participant": p, "metrics": report.cms0057[(p, y)]} for p in [*report.participants, ALL]
        ]
        if y
        else [],
    }
    return JSONResponse(body, headers=_headers(report))


@api.get("/compensation")
def api_compensation(rt: RuntimeDep, year: str | None = None) -> JSONResponse:
    """Participant pay under the current and the reform formula, side by side."""
    report = reports.public_report(rt)
    y = _year(report, year)
    params, _notes = reports.compensation_params(rt)
    body = {
        **_meta(report),
        "year": y,
        "parameters": params.__dict__,
        "notes": report.notes,
        "participants": [report.compensation[(p, y)] for p in report.participants] if y else [],
    }
    return JSONResponse(body, headers=_headers(report))


# ---------------------------------------------------------------------------------------------- charts


def _fmt(v: float | int | None, unit: str = "") -> str:
    if v is None:
        return "S"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.1f}{unit}"
    return f"{int(v):,}{unit}"


def _fmt_unsuppressed(v: float | int | None, unit: str = "") -> str:
    """As ``_fmt`` for the oversight pages, where nothing is suppressed: a missing figure is "—"."""
    return "—" if v is None else _fmt(v, unit)


def _dashboard_charts(report: PublicReport, year: str) -> dict[str, str]:
    ps = report.participants
    months = [x for x in report.months if x[:4] == year]
    out = {
        "volume": charts.line_chart(
            months,
            {p: [report.values.get(("requests", p, x)) for x in months] for p in ps},
            title=f"Requests received per month, {year}",
            unit="requests",
            chart_id="chart-volume",
        ),
        "timely": charts.bar_chart(
            [(p, report.stats.get(("pct_decided_within_timeline", p, year))) for p in ps],
            title=f"Decided within the timeline, {year}",
            unit="%",
            chart_id="chart-timely",
        ),
        "hours": charts.grouped_bar_chart(
            ps,
            {
                "standard": [report.stats.get(("median_hours_standard", p, year)) for p in ps],
                "expedited": [report.stats.get(("median_hours_expedited", p, year)) for p in ps],
            },
            title=f"Median hours to decision, {year}",
            unit="hours",
            chart_id="chart-hours",
        ),
        "non_affirmed": charts.bar_chart(
            [(p, report.stats.get(("pct_non_affirmed", p, year))) for p in ps],
            title=f"Non-affirmed share of requests, {year}",
            unit="%",
            chart_id="chart-non-affirmed",
        ),
    }
    return out


def _participant_charts(report: PublicReport, p: str, year: str) -> dict[str, str]:
    months = [x for x in report.months if x[:4] == year]
    return {
        "volume": charts.bar_chart(
            [(x, report.values.get(("requests", p, x))) for x in months],
            title=f"{p}: requests per month, {year}",
            unit="requests",
            chart_id="chart-p-volume",
        ),
        "timely": charts.line_chart(
            months,
            {"% within timeline": [report.stats.get(("pct_decided_within_timeline", p, x)) for x in months]},
            title=f"{p}: decided within the timeline",
            unit="%",
            chart_id="chart-p-timely",
        ),
        "outcomes": charts.bar_chart(
            [(o.replace("_", " "), report.values.get((f"outcome.{o}", p, year))) for o in OUTCOMES],
            title=f"{p}: outcomes, {year}",
            unit="requests",
            chart_id="chart-p-outcomes",
        ),
    }


# ---------------------------------------------------------------------------------------------- pages


def _common(report: PublicReport, year: str | None) -> dict[str, Any]:
    return {"report": report, "year": year, "ALL": ALL, "fmt": _fmt, "states": report.states}


@pages.get("/public/", response_class=HTMLResponse)
@pages.get("/public", response_class=HTMLResponse, include_in_schema=False)
def public_index(
    request: Request, rt: RuntimeDep, principal: MaybePrincipal, year: str | None = None
) -> HTMLResponse:
    """The public dashboard: participant comparison, trends, downloads."""
    report = reports.public_report(rt)
    y = _year(report, year)
    return render(
        request,
        "public/index.html",
        principal=principal,
        title="Public figures",
        charts=_dashboard_charts(report, y) if y else {},
        **_common(report, y),
    )


@pages.get("/public/participants/{state}", response_class=HTMLResponse)
def public_participant(
    request: Request, rt: RuntimeDep, principal: MaybePrincipal, state: str, year: str | None = None
) -> HTMLResponse:
    """One participant: monthly figures and charts."""
    report = reports.public_report(rt)
    by_state = {v: k for k, v in report.states.items()}
    p = by_state.get(state.upper())
    if p is None:
        raise NotFound(f"no participant for state {state!r}")
    y = _year(report, year)
    return render(
        request,
        "public/participant.html",
        principal=principal,
        title=p,
        participant=p,
        charts=_participant_charts(report, p, y) if y else {},
        **_common(report, y),
    )


@pages.get("/public/cms0057", response_class=HTMLResponse)
def public_cms(
    request: Request, rt: RuntimeDep, principal: MaybePrincipal, year: str | None = None
) -> HTMLResponse:
    """The CMS-0057-F table."""
    report = reports.public_report(rt)
    y = _year(report, year)
    return render(
        request, "public/cms0057.html", principal=principal, title="CMS-0057-F metrics", **_common(report, y)
    )


@pages.get("/public/compensation", response_class=HTMLResponse)
def public_compensation(
    request: Request, rt: RuntimeDep, principal: MaybePrincipal, year: str | None = None
) -> HTMLResponse:
    """Both pay formulas side by side per participant."""
    report = reports.public_report(rt)
    y = _year(report, year)
    params, _notes = reports.compensation_params(rt)
    pay = [report.compensation[(p, y)] for p in report.participants] if y else []
    chart = charts.grouped_bar_chart(
        [x["participant"] for x in pay],
        {
            "current formula": [x["current"]["total_usd"] if x["current"] else None for x in pay],
            "reform formula": [x["reform"]["total_usd"] if x["reform"] else None for x in pay],
        },
        title=f"Participant pay under both formulas, {y}",
        unit="USD",
        chart_id="chart-pay",
    )
    return render(
        request,
        "public/compensation.html",
        principal=principal,
        title="Participant pay",
        pay=pay,
        params=params,
        chart=chart,
        **_common(report, y),
    )


@pages.get("/public/methodology", response_class=HTMLResponse)
def public_methodology(request: Request, rt: RuntimeDep, principal: MaybePrincipal) -> HTMLResponse:
    """Definitions, suppression rules and the download schema."""
    report = reports.public_report(rt)
    return render(
        request,
        "public/methodology.html",
        principal=principal,
        title="Methodology",
        schema=exports.schema(),
        **_common(report, None),
    )


@pages.get("/public/data/metrics.csv")
def public_csv(rt: RuntimeDep, grain: str | None = None) -> Response:
    """Download: every published figure as CSV."""
    report = reports.public_report(rt)
    return Response(
        exports.to_csv(report, _grain(grain)),
        media_type="text/csv; charset=utf-8",
        headers={**_headers(report), "Content-Disposition": 'attachment; filename="wiserpa-metrics.csv"'},
    )


@pages.get("/public/data/metrics.json")
def public_json(rt: RuntimeDep, grain: str | None = None) -> JSONResponse:
    """Download: every published figure as JSON."""
    report = reports.public_report(rt)
    return JSONResponse(
        exports.to_json(report, _grain(grain)),
        headers={**_headers(report), "Content-Disposition": 'attachment; filename="wiserpa-metrics.json"'},
    )


# ---------------------------------------------------------------------------------------------- oversight


@pages.get("/oversight/reports", response_class=HTMLResponse)
def oversight_reports(
    request: Request,
    rt: RuntimeDep,
    session: SessionDep,
    principal: OversightPrincipal,
    period: str = "month",
    year: str | None = None,
) -> HTMLResponse:
    """Unsuppressed figures: participant × month, state × category × month or week, the penalty ledger."""
    if period not in ("month", "week"):
        raise Invalid("unknown period", [FieldError("period", "use month or week")])
    report = reports.oversight_report(rt)
    y = _year(report, year)
    cuts = reports.oversight_cuts(rt, period=period)
    ledger = _ledger(session, rt, principal)
    return render(
        request,
        "oversight/reports.html",
        principal=principal,
        title="Oversight reports",
        cuts=cuts,
        period=period,
        ledger=ledger,
        **{**_common(report, y), "fmt": _fmt_unsuppressed},
    )


def _ledger(session: Any, rt: Runtime, principal: Principal) -> list[dict[str, Any]] | None:
    """The penalty ledger from the deadlines domain (None when it is not installed)."""
    try:
        from wiserpa.deadlines import service as deadlines
    except ImportError:  # pragma: no cover - the deadlines domain ships with the app
        return None
    result: list[dict[str, Any]] = deadlines.penalty_ledger(session, rt, principal=principal)
    return result
