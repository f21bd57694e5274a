"""The clinician worklist and clinician decisions. Only a clinician may non-affirm, citing unmet criteria."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, lazyload

from wiserpa.audit import service as audit
from wiserpa.auth.models import Role
from wiserpa.auth.service import Principal
from wiserpa.errors import Conflict, FieldError, Forbidden, Invalid
from wiserpa.requests import events
from wiserpa.requests import service as requests
from wiserpa.requests.models import Decision, PaRequest
from wiserpa.requests.status import OPEN, Status, check_transition
from wiserpa.runtime import Runtime

REVIEW_ROLES = (Role.REVIEWER,)


def _require_reviewer(principal: Principal) -> None:
    if principal.role not in REVIEW_ROLES:
        raise Forbidden("only a participant's reviewer may do this")


@dataclass(frozen=True)
class WorklistPage:
    """Pended requests, soonest due first."""

    items: Sequence[PaRequest]
    total: int
    limit: int
    offset: int


def worklist(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    limit: int = 50,
    offset: int = 0,
    category: str | None = None,
    details: bool = True,
) -> WorklistPage:
    """Open requests in the reviewer's state that time has not already decided, ordered by due time.

    `details=False` leaves each item's lines and decisions to load on access, for callers that only pick
    items by id (the simulator's reviewer pool); the pages and the API render them and keep the default.
    """
    if principal.role not in (Role.REVIEWER, Role.OVERSIGHT, Role.ADMIN):
        raise Forbidden("the worklist is for reviewers")
    now = rt.clock.now()
    conditions = [
        requests.scope_filter(principal),
        PaRequest.status.in_([s.value for s in OPEN]),
        # Past due under a deemed-approval profile means already affirmed: not work any more.
        or_(PaRequest.deems_on_due.is_(False), PaRequest.due_at > now),
    ]
    if category:
        conditions.append(PaRequest.category == category)
    where = and_(*conditions)
    total = session.scalar(select(func.count()).select_from(PaRequest).where(where)) or 0
    stmt = select(PaRequest).where(where).order_by(PaRequest.due_at, PaRequest.id).limit(limit).offset(offset)
    if not details:
        stmt = stmt.options(lazyload(PaRequest.lines), lazyload(PaRequest.decisions))
    items = session.scalars(stmt).all()
    audit.record(
        session,
        actor=principal.actor,
        action="worklist.read",
        object_type="request",
        object_id=None,
        outcome="ok",
        at=now,
        details={"ids": [r.id for r in items]},
    )
    return WorklistPage(items, total, limit, offset)


@dataclass(frozen=True)
class DecisionResult:
    """What a clinician decision did: changed the outcome, or was recorded as late and ignored."""

    request: PaRequest
    applied: bool
    message: str


def decide(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    request_id: int,
    outcome: str,
    reasons: Sequence[str] = (),
    note: str | None = None,
    expected_version: int | None = None,
) -> DecisionResult:
    """A reviewer affirms or non-affirms a pended request (caller commits)."""
    if outcome not in ("affirm", "non_affirm"):
        raise Invalid(
            "decision must be affirm or non_affirm", [FieldError("decision", "use affirm or non_affirm")]
        )
    if principal.role is not Role.REVIEWER:
        # Checked before the lookup: the role decides, whatever the request.
        raise Forbidden("only a participant's reviewer may decide requests")
    request = requests.load_visible(
        session, rt, principal, request_id, action="request.decide", for_update=True
    )
    requests.check_version(request, expected_version)
    now = rt.clock.now()
    if outcome == "non_affirm":
        _check_non_affirmation(principal, request, reasons, note)
    reason_rows = _reason_rows(request, reasons)
    if requests.materialize_deemed(session, rt, request, now=now) or request.status == Status.DEEMED_AFFIRMED:
        # Deemed just now or by an earlier sweep: either way time decided first.
        # Time decided first: record the clinician's decision as late, never as the outcome (R3).
        request.decisions.append(
            _decision_row(
                rt,
                principal,
                request,
                kind=f"late_{outcome}",
                status=request.status,
                effective=False,
                now=now,
                reasons=reason_rows,
                note=note,
            )
        )
        audit.record(
            session,
            actor=principal.actor,
            action="request.decide",
            object_type="request",
            object_id=request.id,
            outcome="late_ignored",
            at=now,
        )
        return DecisionResult(
            request,
            False,
            "the request was deemed affirmed at its due time; "
            "this decision was recorded as late and does not change the outcome",
        )
    if request.status not in OPEN:
        raise Conflict(f"request {request.id} is already {request.status}")
    new_status = Status.AFFIRMED.value if outcome == "affirm" else Status.NON_AFFIRMED.value
    check_transition(request.status, new_status)
    request.status = new_status
    request.decision_kind = "clinician"
    request.decided_at = now
    request.updated_at = now
    if new_status == Status.AFFIRMED.value:
        request.valid_until = requests.validity_end(rt, request, now)
    request.decisions.append(
        _decision_row(
            rt,
            principal,
            request,
            kind=f"clinician_{outcome}",
            status=new_status,
            effective=True,
            now=now,
            reasons=reason_rows,
            note=note,
        )
    )
    audit.record(
        session,
        actor=principal.actor,
        action="request.decide",
        object_type="request",
        object_id=request.id,
        outcome=new_status,
        at=now,
        details={"reasons": list(reasons), "late": now > request.due_at},
    )
    events.outcome_changed(session, rt, request, now=now, via="clinician_decision")
    return DecisionResult(request, True, f"request {request.id} is {new_status}")


def _check_non_affirmation(
    principal: Principal, request: PaRequest, reasons: Sequence[str], note: str | None
) -> None:
    if not principal.is_clinician or not principal.npi:
        raise Forbidden("only a licensed clinician (with an NPI on file) may non-affirm")
    if not reasons:
        raise Invalid(
            "a non-affirmation must cite at least one unmet criterion",
            [FieldError("reasons", "name at least one criterion id that is not met")],
        )
    gaps = {r["criterion_id"] for r in request.criteria_results if r.get("result") != "met"}
    unknown = [r for r in reasons if r not in gaps]
    if unknown:
        raise Invalid(
            "reasons must be criteria this request does not meet",
            [
                FieldError(
                    "reasons",
                    f"{', '.join(unknown)} not among the unmet or undocumented criteria "
                    f"({', '.join(sorted(gaps)) or 'none'})",
                )
            ],
        )


def _reason_rows(request: PaRequest, reasons: Sequence[str]) -> list[dict[str, Any]]:
    by_id = {r["criterion_id"]: r for r in request.criteria_results}
    rows = []
    for rid in reasons:
        r = by_id.get(rid)
        if r is None:
            continue
        rows.append(
            {
                "criterion_id": rid,
                "citation": r.get("citation"),
                "statement": r.get("statement"),
                "result": r.get("result"),
                "satisfies_hint": r.get("satisfies_hint"),
            }
        )
    return rows


def _decision_row(
    rt: Runtime,
    principal: Principal,
    request: PaRequest,
    *,
    kind: str,
    status: str,
    effective: bool,
    now: dt.datetime,
    reasons: list[dict[str, Any]],
    note: str | None,
) -> Decision:
    return Decision(
        kind=kind,
        resulting_status=status,
        effective=effective,
        decided_at=now,
        actor_user_id=principal.user_id,
        reviewer_name=principal.name,
        reviewer_npi=principal.npi,
        reviewer_specialty=principal.specialty,
        reviewer_credentials=principal.credentials,
        reasons=reasons,
        note=note,
        profile_id=request.profile_id,
        profile_version=request.profile_version,
        criteria_results=request.criteria_results,
        facts_used=dict(request.clinical_facts),
    )
