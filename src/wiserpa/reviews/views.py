"""REST routes for the clinician worklist and decisions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from wiserpa.http import (
    IdempotencyKey,
    IdPath,
    PrincipalDep,
    RawBody,
    RuntimeDep,
    SessionDep,
    if_match_version,
    once,
    respond,
)
from wiserpa.inbound import Strict
from wiserpa.requests import service as requests
from wiserpa.requests.views import RequestPage
from wiserpa.reviews import service
from wiserpa.store.idempotency import Outcome

router = APIRouter(prefix="/api/v1", tags=["reviews"])


@router.get("/reviews/worklist", response_model=RequestPage)
def worklist(
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    category: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Pended requests in your participant's state, soonest due first, with their criteria results."""
    page = service.worklist(session, rt, principal=principal, limit=limit, offset=offset, category=category)
    session.commit()
    now = rt.clock.now()
    return {
        "items": [requests.request_view(rt, r, now=now) for r in page.items],
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
    }


class DecisionIn(Strict):
    """A clinician's decision. A non-affirmation cites unmet criteria ids; the note may add, never replace."""

    decision: Literal["affirm", "non_affirm"]
    reasons: list[Annotated[str, Field(max_length=80)]] = Field(default_factory=list, max_length=50)
    note: str | None = Field(default=None, max_length=4000)


@router.post(
    "/requests/{request_id}/decision", responses={403: {"description": "Not a reviewer / clinician"}}
)
def decide(
    request_id: IdPath,
    body: DecisionIn,
    raw: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
) -> JSONResponse:
    """Affirm or non-affirm a pended request (reviewers only; non-affirmation only by a clinician)."""

    def work() -> Outcome:
        result = service.decide(
            session,
            rt,
            principal=principal,
            request_id=request_id,
            outcome=body.decision,
            reasons=body.reasons,
            note=body.note,
            expected_version=if_match_version(if_match),
        )
        session.flush()
        view = requests.request_view(rt, result.request, now=rt.clock.now())
        view["decision_applied"] = result.applied
        view["message"] = result.message
        return Outcome(200, view)

    outcome = once(
        session,
        rt,
        scope=f"user:{principal.user_id}:decide:{request_id}",
        key=idempotency_key,
        raw=raw,
        work=work,
    )
    return respond(outcome)
