"""Exempt requests (R1) are affirmed at once and audited afterwards; false attestations show per provider."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from wiserpa.audit import service as audit
from wiserpa.auth.models import Role
from wiserpa.auth.service import Principal
from wiserpa.errors import Conflict, FieldError, Forbidden, Invalid
from wiserpa.exemptions.models import ExemptionAudit
from wiserpa.requests import service as requests
from wiserpa.requests.models import PaRequest
from wiserpa.runtime import Runtime

AUDITOR_ROLES = (Role.REVIEWER, Role.OVERSIGHT)


def record_audit(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    request_id: int,
    appropriate: bool,
    note: str | None = None,
) -> ExemptionAudit:
    """Record the retrospective audit finding on an exempt request (reviewer of its state, or oversight)."""
    if principal.role not in AUDITOR_ROLES:
        raise Forbidden("only a participant's reviewer or oversight may audit an exemption")
    request = requests.load_visible(
        session, rt, principal, request_id, action="exemption.audit", for_update=True
    )
    if request.exemption is None:
        raise Conflict(f"request {request.id} was not exempt; there is no exemption to audit")
    if not appropriate and not (note and note.strip()):
        raise Invalid(
            "a finding of inappropriate exemption must say why",
            [FieldError("note", "explain why the time-sensitive attestation was not supported")],
        )
    if session.get(ExemptionAudit, request.id) is not None:
        raise Conflict(f"the exemption of request {request.id} was already audited")
    now = rt.clock.now()
    row = ExemptionAudit(
        request_id=request.id,
        provider_npi=request.provider_npi,
        state=request.state,
        category=request.category,
        exemption=request.exemption,
        sampled=request.audit_sampled,
        appropriate=appropriate,
        note=note,
        auditor_user_id=principal.user_id,
        auditor_name=principal.name,
        auditor_role=principal.role.value,
        audited_at=now,
    )
    session.add(row)
    audit.record(
        session,
        actor=principal.actor,
        action="exemption.audit",
        object_type="request",
        object_id=request.id,
        outcome="appropriate" if appropriate else "inappropriate",
        at=now,
        details={"exemption": request.exemption, "sampled": request.audit_sampled},
    )
    return row


def audit_view(row: ExemptionAudit) -> dict[str, Any]:
    """JSON for one audit finding."""
    return {
        "request_id": row.request_id,
        "provider_npi": row.provider_npi,
        "state": row.state,
        "category": row.category,
        "exemption": row.exemption,
        "sampled": row.sampled,
        "appropriate": row.appropriate,
        "note": row.note,
        "auditor": {"user_id": row.auditor_user_id, "name": row.auditor_name, "role": row.auditor_role},
        "audited_at": requests._iso(row.audited_at),
    }


def report(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    state: str | None = None,
    npi: str | None = None,
    received_from: dt.date | None = None,
    received_to: dt.date | None = None,
) -> list[dict[str, Any]]:
    """Per provider NPI: exempt requests, sampled for audit, audited, and found inappropriate.

    `received_from` and `received_to` are days in each request's state's zone, both inclusive.
    """
    conditions = [requests.scope_filter(principal), PaRequest.exemption.is_not(None)]
    if state:
        conditions.append(PaRequest.state == state.upper())
    if npi:
        conditions.append(PaRequest.provider_npi == npi)
    if received_from or received_to:
        conditions.append(requests.received_between(rt, received_from, received_to))
    one = 1
    rows = session.execute(
        select(
            PaRequest.provider_npi,
            func.count(PaRequest.id),
            func.sum(case((PaRequest.audit_sampled.is_(True), one), else_=0)),
            func.count(ExemptionAudit.request_id),
            func.sum(case((ExemptionAudit.appropriate.is_(False), one), else_=0)),
        )
        .select_from(PaRequest)
        .outerjoin(ExemptionAudit, ExemptionAudit.request_id == PaRequest.id)
        .where(and_(*conditions))
        .group_by(PaRequest.provider_npi)
        .order_by(PaRequest.provider_npi)
    ).all()
    by_set = session.execute(
        select(PaRequest.provider_npi, PaRequest.exemption, func.count(PaRequest.id))
        .where(and_(*conditions))
        .group_by(PaRequest.provider_npi, PaRequest.exemption)
    ).all()
    sets: dict[str, dict[str, int]] = {}
    for npi_, name, n in by_set:
        sets.setdefault(npi_, {})[name] = int(n)
    out = []
    for npi_, exempt, sampled, audited, inappropriate in rows:
        audited, inappropriate = int(audited or 0), int(inappropriate or 0)
        out.append(
            {
                "provider_npi": npi_,
                "exempt": int(exempt),
                "by_code_set": sets.get(npi_, {}),
                "sampled": int(sampled or 0),
                "audited": audited,
                "found_inappropriate": inappropriate,
                "inappropriate_share": round(inappropriate / audited, 4) if audited else None,
            }
        )
    return out
