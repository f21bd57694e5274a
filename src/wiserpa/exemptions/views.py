"""REST routes for the retrospective audit of exempt requests and the per-provider report."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from wiserpa.exemptions import service
from wiserpa.http import IdempotencyKey, IdPath, PrincipalDep, RawBody, RuntimeDep, SessionDep, once, respond
from wiserpa.store.idempotency import Outcome

router = APIRouter(prefix="/api/v1", tags=["exemptions"])


class ExemptionAuditIn(BaseModel):
    """The audit finding: was the time-sensitive exemption appropriate? A 'no' must say why."""

    model_config = ConfigDict(extra="forbid")
    appropriate: bool
    note: str | None = Field(default=None, max_length=4000)


@router.post("/requests/{request_id}/exemption-audit", status_code=201)
def exemption_audit(
    request_id: IdPath,
    body: ExemptionAuditIn,
    raw: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Record the retrospective audit of an exempt request (reviewer of its state, or oversight)."""

    def work() -> Outcome:
        row = service.record_audit(
            session,
            rt,
            principal=principal,
            request_id=request_id,
            appropriate=body.appropriate,
            note=body.note,
        )
        session.flush()
        return Outcome(201, service.audit_view(row))

    outcome = once(
        session,
        rt,
        scope=f"user:{principal.user_id}:exemption-audit:{request_id}",
        key=idempotency_key,
        raw=raw,
        work=work,
    )
    return respond(outcome)


@router.get("/exemptions/report")
def exemption_report(
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    state: Annotated[str | None, Query(min_length=2, max_length=2)] = None,
    npi: Annotated[str | None, Query(min_length=10, max_length=10)] = None,
    received_from: dt.date | None = None,
    received_to: dt.date | None = None,
) -> dict[str, Any]:
    """Per provider NPI: exempt requests, sampled, audited, found inappropriate (false attestation)."""
    items = service.report(
        session,
        rt,
        principal=principal,
        state=state,
        npi=npi,
        received_from=received_from,
        received_to=received_to,
    )
    return {"profile": {"id": rt.profile.id, "version": rt.profile.version}, "items": items}
