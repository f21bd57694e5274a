"""Experience reports (R9): intake with the identifier rule, request cross-checks, patterns, export, brief.

Intake rules (docs/support-and-experience.md):

- A narrative in which ``experience.phi.find_identifiers`` finds anything is REJECTED (422 naming
  ``narrative`` and the kinds found); nothing is written and the text is never silently edited.
- ``delay_days`` is computed from the dates when they allow it: requested → decided, else requested → care
  delivered. The reporter's own figure is kept beside it (``reported_delay_days``).
- A report linked to a request the provider's organization owns is cross-checked against the request's
  actual timeline (received, decided, effective status, delay); both are stored, and each difference of more
  than one day (time zones) is listed as a disagreement. The report is kept either way.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from wiserpa.audit import service as audit
from wiserpa.auth.models import Role
from wiserpa.auth.service import Principal
from wiserpa.errors import FieldError, Forbidden, Invalid, NotFound
from wiserpa.experience import patterns as pat
from wiserpa.experience.brief import render_brief_markdown
from wiserpa.experience.models import ExperienceObstacle, ExperienceReport
from wiserpa.experience.phi import find_identifiers
from wiserpa.experience.taxonomy import Obstacle, PatientImpact
from wiserpa.requests.models import PaRequest
from wiserpa.requests.status import OPEN, effective_status
from wiserpa.runtime import Runtime

__all__ = [
    "EXPORT_COLUMNS",
    "brief_markdown",
    "compute_delay",
    "cross_check",
    "export_csv",
    "get_report",
    "list_reports",
    "load_reports",
    "patterns",
    "report_view",
    "submit_report",
]

DISAGREE_TOLERANCE_DAYS = 1
_IMPACT_SEVERITY = {i.value: n for n, i in enumerate(PatientImpact)}


def compute_delay(
    requested_on: dt.date | None, decided_on: dt.date | None, care_on: dt.date | None
) -> float | None:
    """Days from request to decision, else from request to care delivered; None without those dates."""
    if requested_on and decided_on:
        return float((decided_on - requested_on).days)
    if requested_on and care_on:
        return float((care_on - requested_on).days)
    return None


def _local_date(rt: Runtime, state: str, t: dt.datetime | None) -> dt.date | None:
    if t is None:
        return None
    info = rt.catalog.state(state)
    tz = info.timezone if info else "UTC"
    from zoneinfo import ZoneInfo

    return t.astimezone(ZoneInfo(tz)).date()


def cross_check(
    rt: Runtime,
    request: PaRequest,
    *,
    now: dt.datetime,
    requested_on: dt.date | None,
    decided_on: dt.date | None,
    delay_days: float | None,
    state: str,
    category: str,
) -> dict[str, Any]:
    """Compare a report with its request's actual timeline; ``disagreements`` lists each differing field."""
    status = effective_status(request, now)
    decided_at = request.decided_at
    if decided_at is None and status == "deemed_affirmed":
        decided_at = request.due_at  # deemed on read: time decided it at the due instant
    received_on = _local_date(rt, request.state, request.received_at)
    actual_decided_on = _local_date(rt, request.state, decided_at)
    actual_delay = (
        round((decided_at - request.received_at).total_seconds() / 86400, 1) if decided_at else None
    )
    actual: dict[str, Any] = {
        "request_id": request.id,
        "status": status,
        "state": request.state,
        "category": request.category,
        "received_on": received_on.isoformat() if received_on else None,
        "decided_on": actual_decided_on.isoformat() if actual_decided_on else None,
        "delay_days": actual_delay,
        "overdue": status in {s.value for s in OPEN} and now >= request.due_at,
    }
    disagreements: list[dict[str, Any]] = []

    def differ(field: str, reported: Any, real: Any) -> None:
        disagreements.append({"field": field, "reported": reported, "actual": real})

    if state != request.state:
        differ("state", state, request.state)
    if category != request.category:
        differ("category", category, request.category)
    if requested_on and received_on and abs((requested_on - received_on).days) > DISAGREE_TOLERANCE_DAYS:
        differ("requested_on", requested_on.isoformat(), received_on.isoformat())
    if decided_on:
        if actual_decided_on is None:
            differ("decided_on", decided_on.isoformat(), None)
        elif abs((decided_on - actual_decided_on).days) > DISAGREE_TOLERANCE_DAYS:
            differ("decided_on", decided_on.isoformat(), actual_decided_on.isoformat())
    if (
        delay_days is not None
        and actual_delay is not None
        and abs(delay_days - actual_delay) > (DISAGREE_TOLERANCE_DAYS)
    ):
        differ("delay_days", delay_days, actual_delay)
    return {"actual": actual, "disagreements": disagreements}


def submit_report(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal | None,
    obstacles: Sequence[str],
    impact: str,
    narrative: str,
    state: str | None = None,
    participant: str | None = None,
    category: str | None = None,
    service_code: str | None = None,
    requested_on: dt.date | None = None,
    decided_on: dt.date | None = None,
    care_on: dt.date | None = None,
    delay_days: float | None = None,
    request_id: int | None = None,
) -> ExperienceReport:
    """Validate everything first (any problem: 422 naming each field, nothing written), then store."""
    if principal is not None and principal.role is not Role.PROVIDER:
        raise Forbidden("experience reports are filed by providers")
    now = rt.clock.now()
    errors: list[FieldError] = []

    # The identifier rule comes first so the reporter learns of it even when other fields are wrong too.
    findings = find_identifiers(narrative or "")
    if findings:
        kinds = sorted({f.kind for f in findings})
        errors.append(
            FieldError(
                "narrative",
                "remove patient identifiers before submitting (found: " + ", ".join(kinds) + "); "
                "reports may be published, so they must not identify a patient",
            )
        )
    elif not (narrative or "").strip():
        errors.append(FieldError("narrative", "describe what happened (the text is blank)"))
    linked: PaRequest | None = None
    if request_id is not None:
        if principal is None:
            errors.append(FieldError("request_id", "only signed-in providers can link a request"))
        else:
            linked = session.get(PaRequest, request_id)
            if linked is None or linked.organization_id != principal.organization_id:
                errors.append(FieldError("request_id", "no request with this id in your organization"))
                linked = None
    st = (state or (linked.state if linked else "") or "").strip().upper()
    info = rt.catalog.state(st) if st else None
    if info is None:
        errors.append(
            FieldError("state", "must be a WISeR model state (" + ", ".join(rt.catalog.states) + ")")
        )
    elif participant and participant.strip().lower() != info.participant.lower():
        errors.append(FieldError("participant", f"the participant for {info.code} is {info.participant}"))
    code = service_code.strip() if service_code else None
    cat = category or None
    if code:
        code_cat = rt.catalog.category_for_code(code)
        if code_cat is None:
            errors.append(FieldError("service_code", "not a WISeR code"))
        elif cat and cat != code_cat.key:
            errors.append(FieldError("service_code", f"{code} belongs to {code_cat.key}, not {cat}"))
        else:
            cat = code_cat.key
    if cat is None and linked is not None:
        cat = linked.category
    if cat is None:
        if not any(e.field == "service_code" for e in errors):
            errors.append(FieldError("category", "give the service category or a service code"))
    elif cat not in rt.catalog.categories:
        errors.append(FieldError("category", "not a WISeR service category"))
    try:
        obstacle_values = list(dict.fromkeys(Obstacle(o).value for o in obstacles))
    except ValueError:
        obstacle_values = []
        errors.append(FieldError("obstacles", "unknown obstacle; see the taxonomy"))
    if not obstacle_values and not any(e.field == "obstacles" for e in errors):
        errors.append(FieldError("obstacles", "name at least one obstacle"))
    try:
        impact_value = PatientImpact(impact).value
    except ValueError:
        impact_value = ""
        errors.append(FieldError("impact", "unknown patient impact"))
    today = now.date() + dt.timedelta(days=1)  # a day of slack for time zones ahead of UTC
    for name, value in (("requested_on", requested_on), ("decided_on", decided_on), ("care_on", care_on)):
        if value and value > today:
            errors.append(FieldError(name, "cannot be in the future"))
    if requested_on and decided_on and decided_on < requested_on:
        errors.append(FieldError("decided_on", "is before requested_on"))
    if requested_on and care_on and care_on < requested_on:
        errors.append(FieldError("care_on", "is before requested_on"))
    if errors:
        raise Invalid("; ".join(f"{e.field}: {e.message}" for e in errors), errors)
    assert info is not None and cat is not None

    computed = compute_delay(requested_on, decided_on, care_on)
    final_delay = computed if computed is not None else delay_days
    check = None
    if linked is not None:
        check = cross_check(
            rt,
            linked,
            now=now,
            requested_on=requested_on,
            decided_on=decided_on,
            delay_days=final_delay,
            state=info.code,
            category=cat,
        )
    event_on = requested_on or now.date()
    report = ExperienceReport(
        submitted_at=now,
        source="provider" if principal is not None else "public",
        reporter_user_id=principal.user_id if principal else None,
        organization_id=principal.organization_id if principal else None,
        state=info.code,
        participant=info.participant,
        category=cat,
        service_code=code,
        requested_on=requested_on,
        decided_on=decided_on,
        care_on=care_on,
        delay_days=final_delay,
        reported_delay_days=delay_days,
        event_on=event_on,
        week_start=pat.week_of(event_on),
        impact=impact_value,
        narrative=narrative,
        request_id=linked.id if linked else None,
        timeline_check=check,
        timeline_disagrees=bool(check and check["disagreements"]),
        obstacles=[ExperienceObstacle(obstacle=o) for o in obstacle_values],
    )
    session.add(report)
    session.flush()
    audit.record(
        session,
        actor=principal.actor if principal else audit.Actor("public", "public"),
        action="experience.report",
        object_type="experience_report",
        object_id=report.id,
        outcome="disagrees" if report.timeline_disagrees else "stored",
        at=now,
        details={"state": report.state, "source": report.source},
    )
    return report


# ---------------------------------------------------------------------------------------------- reading


def _scope(principal: Principal) -> ColumnElement[bool]:
    if principal.role is Role.PROVIDER:
        return ExperienceReport.organization_id == principal.organization_id
    if principal.role in (Role.OVERSIGHT, Role.ADMIN):
        return ExperienceReport.id.is_not(None)
    # Participants do not read individual reports about themselves (reporters must not fear retaliation).
    raise Forbidden("experience reports are visible to their reporters and to oversight")


def get_report(session: Session, *, principal: Principal, report_id: int) -> ExperienceReport:
    """A report in scope, or NotFound."""
    scope = _scope(principal)
    report = session.scalars(select(ExperienceReport).where(ExperienceReport.id == report_id, scope)).first()
    if report is None:
        raise NotFound(f"experience report {report_id} not found")
    return report


def list_reports(
    session: Session, *, principal: Principal, limit: int = 50, offset: int = 0
) -> tuple[list[ExperienceReport], int]:
    """Reports in scope, newest first."""
    scope = _scope(principal)
    total = session.scalar(select(func.count()).select_from(ExperienceReport).where(scope)) or 0
    items = session.scalars(
        select(ExperienceReport).where(scope).order_by(ExperienceReport.id.desc()).limit(limit).offset(offset)
    ).all()
    return list(items), int(total)


def report_view(report: ExperienceReport, *, with_reporter: bool = False) -> dict[str, Any]:
    """JSON form of a report; the reporter's identity only for the reporter's own organization."""
    view: dict[str, Any] = {
        "id": report.id,
        "submitted_at": report.submitted_at.isoformat().replace("+00:00", "Z"),
        "source": report.source,
        "state": report.state,
        "participant": report.participant,
        "category": report.category,
        "service_code": report.service_code,
        "requested_on": _d(report.requested_on),
        "decided_on": _d(report.decided_on),
        "care_on": _d(report.care_on),
        "delay_days": report.delay_days,
        "reported_delay_days": report.reported_delay_days,
        "week_start": report.week_start.isoformat(),
        "obstacles": report.obstacle_values,
        "impact": report.impact,
        "narrative": report.narrative,
        "request_id": report.request_id,
        "timeline_check": report.timeline_check,
        "timeline_disagrees": report.timeline_disagrees,
    }
    if with_reporter:
        view["organization_id"] = report.organization_id
    return view


def _d(d: dt.date | None) -> str | None:
    return d.isoformat() if d else None


def _require_oversight(principal: Principal) -> None:
    if principal.role not in (Role.OVERSIGHT, Role.ADMIN):
        raise Forbidden("patterns and exports are for oversight")


def load_reports(
    session: Session, *, since: dt.date | None = None, state: str | None = None
) -> list[ExperienceReport]:
    """Reports whose experience happened on or after ``since`` (optionally in one state), oldest first."""
    stmt = select(ExperienceReport)
    if since:
        stmt = stmt.where(ExperienceReport.event_on >= since)
    if state:
        stmt = stmt.where(ExperienceReport.state == state.upper())
    return list(session.scalars(stmt.order_by(ExperienceReport.event_on, ExperienceReport.id)).all())


def _rows(reports: Sequence[ExperienceReport]) -> list[pat.ReportRow]:
    return [
        pat.ReportRow(
            participant=r.participant,
            state=r.state,
            category=r.category,
            obstacles=tuple(r.obstacle_values),
            week_start=r.week_start,
            delay_days=r.delay_days,
            impact=r.impact,
        )
        for r in reports
    ]


SPIKE_LEVELS: tuple[tuple[str, ...], ...] = (
    ("participant", "obstacle"),
    ("participant", "category", "obstacle"),
)


def _counts_sql(session: Session, *, since: dt.date | None, state: str | None) -> list[dict[str, Any]]:
    """Reports per participant × category × obstacle × week, grouped in SQL."""
    r, o = ExperienceReport, ExperienceObstacle
    stmt = (
        select(r.state, r.participant, r.category, o.obstacle, r.week_start, func.count(func.distinct(r.id)))
        .join(o, o.report_id == r.id)
        .group_by(r.state, r.participant, r.category, o.obstacle, r.week_start)
        .order_by(r.week_start, r.participant, r.category, o.obstacle)
    )
    if since:
        stmt = stmt.where(r.event_on >= since)
    if state:
        stmt = stmt.where(r.state == state.upper())
    return [
        {
            "state": s,
            "participant": p,
            "category": c,
            "obstacle": ob,
            "week_start": w.isoformat(),
            "count": int(n),
        }
        for s, p, c, ob, w, n in session.execute(stmt)
    ]


def _rates_sql(session: Session, *, since: dt.date | None, state: str | None) -> list[dict[str, Any]]:
    """Per participant × obstacle: reports with it, all reports, and the share."""
    r, o = ExperienceReport, ExperienceObstacle
    filters: list[ColumnElement[bool]] = []
    if since:
        filters.append(r.event_on >= since)
    if state:
        filters.append(r.state == state.upper())
    totals: dict[str, int] = {
        str(p): int(n)
        for p, n in session.execute(
            select(r.participant, func.count()).where(*filters).group_by(r.participant)
        )
    }
    out = []
    for p, ob, n in session.execute(
        select(r.participant, o.obstacle, func.count())
        .join(o, o.report_id == r.id)
        .where(*filters)
        .group_by(r.participant, o.obstacle)
        .order_by(r.participant, o.obstacle)
    ):
        total = int(totals.get(p, 0))
        out.append(
            {
                "participant": p,
                "obstacle": ob,
                "count": int(n),
                "reports": total,
                "rate": round(int(n) / total, 4) if total else None,
            }
        )
    return out


def _summary(reports: Sequence[ExperienceReport]) -> dict[str, Any]:
    delays = sorted(r.delay_days for r in reports if r.delay_days is not None)
    return {
        "reports": len(reports),
        "linked_to_requests": sum(1 for r in reports if r.request_id is not None),
        "timeline_disagreements": sum(1 for r in reports if r.timeline_disagrees),
        "median_delay_days": delays[len(delays) // 2] if delays else None,
        "by_participant": dict(Counter(r.participant for r in reports).most_common()),
        "by_obstacle": dict(Counter(o for r in reports for o in r.obstacle_values).most_common()),
        "by_impact": dict(Counter(r.impact for r in reports).most_common()),
    }


def patterns(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    since: dt.date | None = None,
    state: str | None = None,
    n_themes: int = 5,
) -> dict[str, Any]:
    """Counts and rates, weekly spikes, over-represented obstacles and narrative themes (oversight only)."""
    _require_oversight(principal)
    reports = load_reports(session, since=since, state=state)
    rows = _rows(reports)
    spikes: list[pat.SeriesSpike] = []
    for by in SPIKE_LEVELS:
        spikes.extend(pat.find_spikes(rows, by))
    spikes.sort(key=lambda s: (s.p_value, s.week_start, s.key))
    obstacles_seen = sorted({o for r in rows for o in r.obstacles})
    overreps = [o for ob in obstacles_seen for o in pat.overrepresentation(rows, ob)]
    overreps.sort(key=lambda o: (not o.significant, o.p_adjusted, o.participant, o.obstacle))
    narratives = [r.narrative for r in reports]
    found_themes = (
        pat.themes(narratives, n_themes=max(1, min(n_themes, len(narratives) // 4))) if reports else []
    )
    weekly_totals = pat.weekly_counts(rows, ("participant",))
    return {
        "since": since.isoformat() if since else None,
        "state": state.upper() if state else None,
        "generated_at": rt.clock.now().isoformat().replace("+00:00", "Z"),
        "summary": _summary(reports),
        "counts": _counts_sql(session, since=since, state=state),
        "rates": _rates_sql(session, since=since, state=state),
        "weekly_by_participant": {
            k[0]: {w.isoformat(): n for w, n in series.items()} for k, series in weekly_totals.items()
        },
        "spikes": [
            {
                "by": list(s.by),
                "key": list(s.key),
                "week_start": s.week_start.isoformat(),
                "observed": s.observed,
                "expected": round(s.expected, 2),
                "p_value": s.p_value,
            }
            for s in spikes
        ],
        "overrepresentation": [
            {
                "participant": o.participant,
                "obstacle": o.obstacle,
                "count": o.count,
                "reports": o.reports,
                "share": round(o.share, 4),
                "others_share": round(o.others_share, 4),
                "p_value": o.p_value,
                "p_adjusted": o.p_adjusted,
                "significant": o.significant,
                "test": o.test,
            }
            for o in overreps
        ],
        "themes": [
            {
                "label": t.label,
                "top_terms": list(t.top_terms),
                "size": t.size,
                "report_ids": [reports[i].id for i in t.member_indexes],
            }
            for t in found_themes
        ],
        "methods": {
            "spikes": "one-sided Poisson test of each week against the trailing 8-week mean, alpha 0.01, "
            "at least 3 reports; series: " + "; ".join(" × ".join(b) for b in SPIKE_LEVELS),
            "overrepresentation": "per obstacle, each participant vs all others pooled; z-test or Fisher "
            "exact "
            "when an expected cell < 5; Benjamini–Hochberg at 0.05",
            "themes": "TF-IDF (1–2 grams, English stop words) + k-means, seed 0",
        },
    }


EXPORT_COLUMNS = (
    "report_id",
    "submitted_on",
    "source",
    "state",
    "participant",
    "category",
    "service_code",
    "requested_on",
    "decided_on",
    "care_on",
    "delay_days",
    "obstacles",
    "impact",
    "linked_to_request",
    "timeline_disagrees",
    "narrative",
)


def _csv_text(text: str) -> str:
    """Free text for a CSV cell, prefixed with ``'`` when a spreadsheet could read it as a formula.

    Spreadsheet tools execute a cell starting with = + - @, and also one where those follow leading tabs,
    carriage returns or spaces (trimmed on import), so the first non-blank character decides; a leading tab or
    carriage return is itself a trigger (OWASP CSV injection).
    """
    if text[:1] in ("\t", "\r") or text.lstrip()[:1] in ("=", "+", "-", "@"):
        return "'" + text
    return text


def export_csv(
    session: Session, *, principal: Principal, since: dt.date | None = None, state: str | None = None
) -> str:
    """CSV of the reports (oversight): no reporter identity, no request id; narratives hold no identifiers."""
    _require_oversight(principal)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(EXPORT_COLUMNS)
    for r in load_reports(session, since=since, state=state):
        w.writerow(
            [
                r.id,
                r.submitted_at.date().isoformat(),
                r.source,
                r.state,
                r.participant,
                r.category,
                r.service_code or "",
                _d(r.requested_on) or "",
                _d(r.decided_on) or "",
                _d(r.care_on) or "",
                "" if r.delay_days is None else f"{r.delay_days:g}",
                ";".join(r.obstacle_values),
                r.impact,
                "yes" if r.request_id else "no",
                "yes" if r.timeline_disagrees else "no",
                _csv_text(r.narrative),
            ]
        )
    return buf.getvalue()


def brief_markdown(
    session: Session,
    rt: Runtime,
    *,
    since: dt.date | None,
    state: str | None,
    principal: Principal | None = None,
    n_excerpts: int = 5,
) -> str:
    """The Markdown evidence brief (small counts suppressed; excerpts anonymised by brief.py)."""
    if principal is not None:  # the CLI runs as the operator
        _require_oversight(principal)
    reports = load_reports(session, since=since, state=state)
    rows = _rows(reports)
    spikes: list[pat.SeriesSpike] = []
    for by in SPIKE_LEVELS[:1]:  # the brief keeps to the most readable level
        spikes.extend(pat.find_spikes(rows, by))
    overreps = [
        o for ob in sorted({o for r in rows for o in r.obstacles}) for o in pat.overrepresentation(rows, ob)
    ]
    narratives = [r.narrative for r in reports]
    found_themes = pat.themes(narratives, n_themes=max(1, min(5, len(narratives) // 4))) if reports else []
    worst = sorted(reports, key=lambda r: (-_IMPACT_SEVERITY.get(r.impact, 0), -(r.delay_days or 0), r.id))[
        :n_excerpts
    ]
    summary = _summary(reports)
    counts = {
        "reports": summary["reports"],
        "by_participant": summary["by_participant"],
        "by_obstacle": summary["by_obstacle"],
        "by_impact": summary["by_impact"],
    }
    return render_brief_markdown(
        title="Evidence brief: WISeR prior-authorization experience reports",
        since=since.isoformat() if since else "the start of the model",
        state=state.upper() if state else None,
        generated_at=rt.clock.now(),
        summary_counts=counts,
        spikes=spikes,
        overreps=overreps,
        themes=found_themes,
        excerpts=[r.narrative for r in worst],
    )
