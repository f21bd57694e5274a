"""REST routes for the review workflow: requests for information and peer-to-peer conversations."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import Field

from wiserpa.http import IdempotencyKey, IdPath, PrincipalDep, RawBody, RuntimeDep, SessionDep, once, respond
from wiserpa.inbound import Strict
from wiserpa.requests import service as requests
from wiserpa.requests.models import PaRequest
from wiserpa.reviews import workflow
from wiserpa.store.idempotency import Outcome

router = APIRouter(prefix="/api/v1/requests", tags=["review workflow"])


class InformationRequestIn(Strict):
    """What is missing: the unmet/undocumented criteria ids, and an optional message."""

    criterion_ids: list[Annotated[str, Field(max_length=80)]] = Field(min_length=1, max_length=50)
    message: str | None = Field(default=None, max_length=4000)


class InformationResponseIn(Strict):
    """The practice's answer: a note, and/or facts named by the governing policy."""

    note: str | None = Field(default=None, max_length=4000)
    clinical_facts: dict[str, Any] = Field(default_factory=dict, max_length=200)


class PeerToPeerIn(Strict):
    """Ask for a peer-to-peer; a time may be proposed at once."""

    note: str | None = Field(default=None, max_length=4000)
    scheduled_for: dt.datetime | None = None


class ScheduleIn(Strict):
    """When the peer-to-peer takes place."""

    scheduled_for: dt.datetime


class P2POutcomeIn(Strict):
    """How the conversation ended."""

    outcome: Literal["affirmed_on_discussion", "upheld", "no_show"]
    note: str | None = Field(default=None, max_length=4000)


@router.get("/{request_id}/workflow")
def get_workflow(
    request_id: IdPath, session: SessionDep, rt: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Requests for information and peer-to-peer conversations on one request."""
    request = requests.get(session, rt, principal=principal, request_id=request_id)
    view = workflow.workflow_view(session, request)
    session.commit()
    return view


@router.post("/{request_id}/information-requests", status_code=201)
def create_information_request(
    request_id: IdPath,
    body: InformationRequestIn,
    raw: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """A reviewer asks for what is missing (named criteria); the due-time clock keeps running."""

    def work() -> Outcome:
        row = workflow.request_information(
            session,
            rt,
            principal=principal,
            request_id=request_id,
            criterion_ids=body.criterion_ids,
            message=body.message,
        )
        return Outcome(201, workflow.information_view(row, session.get(PaRequest, request_id)))

    return respond(
        once(
            session,
            rt,
            scope=f"user:{principal.user_id}:info:{request_id}",
            key=idempotency_key,
            raw=raw,
            work=work,
        )
    )


@router.post("/{request_id}/information-requests/{information_request_id}/response")
def answer_information_request(
    request_id: IdPath,
    information_request_id: IdPath,
    body: InformationResponseIn,
    raw: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """The practice answers with a note and/or facts (checked against the governing policy)."""

    def work() -> Outcome:
        row = workflow.respond_information(
            session,
            rt,
            principal=principal,
            request_id=request_id,
            information_request_id=information_request_id,
            note=body.note,
            clinical_facts=body.clinical_facts,
        )
        return Outcome(200, workflow.information_view(row))

    return respond(
        once(
            session,
            rt,
            scope=f"user:{principal.user_id}:info-answer:{information_request_id}",
            key=idempotency_key,
            raw=raw,
            work=work,
        )
    )


@router.post("/{request_id}/peer-to-peer", status_code=201)
def create_peer_to_peer(
    request_id: IdPath,
    body: PeerToPeerIn,
    raw: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """The provider or the reviewer asks for a peer-to-peer conversation."""

    def work() -> Outcome:
        row = workflow.request_peer_to_peer(
            session,
            rt,
            principal=principal,
            request_id=request_id,
            note=body.note,
            scheduled_for=body.scheduled_for,
        )
        return Outcome(201, workflow.p2p_view(row))

    return respond(
        once(
            session,
            rt,
            scope=f"user:{principal.user_id}:p2p:{request_id}",
            key=idempotency_key,
            raw=raw,
            work=work,
        )
    )


@router.post("/{request_id}/peer-to-peer/{p2p_id}/schedule")
def schedule_peer_to_peer(
    request_id: IdPath,
    p2p_id: IdPath,
    body: ScheduleIn,
    raw: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Set or move the time of a peer-to-peer."""

    def work() -> Outcome:
        row = workflow.schedule_peer_to_peer(
            session,
            rt,
            principal=principal,
            request_id=request_id,
            p2p_id=p2p_id,
            scheduled_for=body.scheduled_for,
        )
        return Outcome(200, workflow.p2p_view(row))

    return respond(
        once(
            session,
            rt,
            scope=f"user:{principal.user_id}:p2p-schedule:{p2p_id}",
            key=idempotency_key,
            raw=raw,
            work=work,
        )
    )


@router.post("/{request_id}/peer-to-peer/{p2p_id}/outcome")
def peer_to_peer_outcome(
    request_id: IdPath,
    p2p_id: IdPath,
    body: P2POutcomeIn,
    raw: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """The reviewer records the outcome: affirmed on discussion (affirms if pended), upheld, no-show."""

    def work() -> Outcome:
        row = workflow.record_peer_to_peer_outcome(
            session,
            rt,
            principal=principal,
            request_id=request_id,
            p2p_id=p2p_id,
            outcome=body.outcome,
            note=body.note,
        )
        return Outcome(200, workflow.p2p_view(row))

    return respond(
        once(
            session,
            rt,
            scope=f"user:{principal.user_id}:p2p-outcome:{p2p_id}",
            key=idempotency_key,
            raw=raw,
            work=work,
        )
    )
