"""REST routes for requests: submit, read, list, withdraw, resubmit."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from wiserpa.http import (
    IdempotencyKey,
    IdPath,
    IfMatch,
    PrincipalDep,
    RawBody,
    RuntimeDep,
    SessionDep,
    if_match_version,
    once,
    respond,
)
from wiserpa.inbound import Strict
from wiserpa.requests import service
from wiserpa.requests.schemas import WITHDRAW_REASON_MAX, AttachmentIn, SubmitRequestIn
from wiserpa.requests.status import Status
from wiserpa.store.idempotency import Outcome

router = APIRouter(prefix="/api/v1/requests", tags=["requests"])


def _created(outcome: Outcome) -> JSONResponse:
    return respond(outcome, location=f"/api/v1/requests/{outcome.body.get('id')}")


class RequestOut(BaseModel):
    """A request as every interface shows it (see docs/api.md for each field)."""

    model_config = ConfigDict(extra="allow")

    id: int
    utn: str | None
    status: str
    due_at: str
    version: int


class RequestPage(BaseModel):
    """One page of requests."""

    items: list[RequestOut]
    total: int
    limit: int
    offset: int


@router.post(
    "",
    status_code=201,
    response_model=RequestOut,
    responses={
        409: {"description": "Idempotency-Key reused with another body"},
        422: {"description": "Invalid input; every field at fault is named"},
    },
)
def submit_request(
    body: SubmitRequestIn,
    raw: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Submit a prior-authorization request; the answer carries its UTN, status and due time."""

    def work() -> Outcome:
        req = service.submit(session, rt, principal=principal, data=body, raw=raw)
        return Outcome(201, service.request_view(rt, req, now=rt.clock.now()))

    outcome = once(
        session, rt, scope=f"org:{principal.organization_id}:submit", key=idempotency_key, raw=raw, work=work
    )
    return _created(outcome)


@router.get("", response_model=RequestPage)
def list_requests(
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    status: Annotated[Status | None, Query()] = None,
    state: Annotated[str | None, Query(min_length=2, max_length=2)] = None,
    category: Annotated[str | None, Query(max_length=40)] = None,
    mbi: Annotated[str | None, Query(max_length=13)] = None,
    received_from: dt.date | None = None,
    received_to: dt.date | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Requests in your scope (providers: your organization; reviewers: your state), newest first."""
    page = service.list_requests(
        session,
        rt,
        principal=principal,
        status=status.value if status else None,
        state=state,
        category=category,
        mbi=mbi,
        received_from=received_from,
        received_to=received_to,
        limit=limit,
        offset=offset,
    )
    session.commit()
    now = rt.clock.now()
    return {
        "items": [service.request_view(rt, r, now=now) for r in page.items],
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
    }


@router.get(
    "/{request_id}", response_model=RequestOut, responses={404: {"description": "Not found or not yours"}}
)
def get_request(
    request_id: IdPath, session: SessionDep, rt: RuntimeDep, principal: PrincipalDep, response: Response
) -> dict[str, Any]:
    """One request with its decisions, criteria results and effective (time-aware) status."""
    req = service.get(session, rt, principal=principal, request_id=request_id)
    session.commit()
    response.headers["ETag"] = f'"{req.version}"'
    return service.request_view(rt, req, now=rt.clock.now())


class WithdrawIn(Strict):
    """Why the request is withdrawn."""

    reason: str | None = Field(default=None, max_length=WITHDRAW_REASON_MAX)


@router.post("/{request_id}/withdraw", response_model=RequestOut)
def withdraw_request(
    request_id: IdPath,
    body: WithdrawIn,
    raw: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Withdraw (cancel) a request your organization submitted."""

    def work() -> Outcome:
        req = service.withdraw(
            session,
            rt,
            principal=principal,
            request_id=request_id,
            reason=body.reason,
            expected_version=if_match_version(if_match),
        )
        session.flush()
        return Outcome(200, service.request_view(rt, req, now=rt.clock.now()))

    outcome = once(
        session,
        rt,
        scope=f"user:{principal.user_id}:withdraw:{request_id}",
        key=idempotency_key,
        raw=raw,
        work=work,
    )
    return respond(outcome)


class ResubmitIn(Strict):
    """What changes on a resubmission; everything else is taken from the original."""

    clinical_facts: dict[str, Any] = Field(default_factory=dict)
    diagnosis_codes: list[str] | None = Field(default=None, min_length=1, max_length=12)
    date_of_service: dt.date | None = None
    attachments: list[AttachmentIn] | None = None
    time_sensitive_attestation: bool | None = None
    notes: str | None = Field(default=None, max_length=4000)


@router.post("/{request_id}/resubmit", status_code=201, response_model=RequestOut)
def resubmit_request(
    request_id: IdPath,
    body: ResubmitIn,
    raw: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Resubmit a non-affirmed request with added facts; the new request links to the original."""

    def work() -> Outcome:
        changes = body.model_dump(mode="json", exclude_none=True)
        req = service.resubmit(session, rt, principal=principal, request_id=request_id, changes=changes)
        return Outcome(201, service.request_view(rt, req, now=rt.clock.now()))

    outcome = once(
        session,
        rt,
        scope=f"org:{principal.organization_id}:resubmit:{request_id}",
        key=idempotency_key,
        raw=raw,
        work=work,
    )
    return _created(outcome)
