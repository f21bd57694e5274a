"""REST routes for gold cards: list with the reasons, sample review (rescission), appeal and its decision."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from wiserpa.goldcard import service
from wiserpa.http import IdempotencyKey, IdPath, PrincipalDep, RawBody, RuntimeDep, SessionDep, once, respond
from wiserpa.ids import MAX_ID
from wiserpa.inbound import Strict
from wiserpa.store.idempotency import Outcome

router = APIRouter(prefix="/api/v1/gold-cards", tags=["gold cards"])


@router.get("")
def list_cards(
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    npi: Annotated[str | None, Query(min_length=10, max_length=10)] = None,
) -> dict[str, Any]:
    """Gold cards and why each was granted (providers: NPIs on your organization's requests)."""
    cards = service.list_cards(session, rt, principal=principal, npi=npi)
    session.commit()
    now = rt.clock.now()
    return {
        "profile": {"id": rt.profile.id, "enabled": rt.profile.gold_card.enabled},
        "items": [service.card_view(c, now=now) for c in cards],
    }


class CaseIn(Strict):
    """One reviewed case."""

    request_id: int = Field(ge=1, le=MAX_ID)
    appropriate: bool


class SampleReviewIn(Strict):
    """A retrospective review of the card's gold-carded requests (5-20 cases by default)."""

    reviewed: list[CaseIn] = Field(max_length=100)


class AppealIn(Strict):
    """The provider's grounds for appealing a rescission."""

    reason: str = Field(min_length=1, max_length=4000)


class AppealDecisionIn(Strict):
    """An oversight reviewer's decision on a pending appeal."""

    outcome: service.AppealOutcome
    note: str = Field(min_length=1, max_length=4000)


def _post(
    session: Any, rt: Any, principal: Any, key: str | None, scope: str, raw: Any, work: Any
) -> JSONResponse:
    return respond(once(session, rt, scope=f"user:{principal.user_id}:{scope}", key=key, raw=raw, work=work))


@router.post("/{card_id}/sample-review")
def sample_review(
    card_id: IdPath,
    body: SampleReviewIn,
    raw: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Record a retrospective sample review; the card is rescinded (with notice) only under the threshold."""

    def work() -> Outcome:
        card = service.record_sample_review(
            session,
            rt,
            card_id=card_id,
            reviewed=[(c.request_id, c.appropriate) for c in body.reviewed],
            reviewer=principal,
        )
        session.flush()
        return Outcome(200, service.card_view(card, now=rt.clock.now()))

    return _post(session, rt, principal, idempotency_key, f"gold-card-review/{card_id}", raw, work)


@router.post("/{card_id}/appeal", status_code=201)
def appeal(
    card_id: IdPath,
    body: AppealIn,
    raw: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Appeal a rescinded gold card (the provider whose NPI it names)."""

    def work() -> Outcome:
        card = service.appeal(session, rt, principal=principal, card_id=card_id, reason=body.reason)
        session.flush()
        return Outcome(201, service.card_view(card, now=rt.clock.now()))

    return _post(session, rt, principal, idempotency_key, f"gold-card-appeal/{card_id}", raw, work)


@router.post("/{card_id}/appeal/decision")
def decide_appeal(
    card_id: IdPath,
    body: AppealDecisionIn,
    raw: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Decide a pending appeal (oversight): upheld, or overturned to put the card back in force."""

    def work() -> Outcome:
        card = service.decide_appeal(
            session, rt, principal=principal, card_id=card_id, outcome=body.outcome, note=body.note
        )
        session.flush()
        return Outcome(200, service.card_view(card, now=rt.clock.now()))

    return _post(session, rt, principal, idempotency_key, f"gold-card-appeal-decision/{card_id}", raw, work)
