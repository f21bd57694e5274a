"""REST routes for claims, pre-payment reviews, appeals and participant figures; FHIR `POST /fhir/Claim`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from wiserpa.claims import service
from wiserpa.claims.fhir import claim_response, fhir_path, to_claim_in
from wiserpa.claims.schemas import (
    AppealIn,
    AppealOutcomeIn,
    DocumentsIn,
    ReviewDecisionIn,
    SubmitClaimIn,
)
from wiserpa.errors import ApiError
from wiserpa.fhir.outcome import ERROR_RESPONSES, FhirError, Issue, operation_outcome
from wiserpa.http import IdempotencyKey, IdPath, PrincipalDep, RawBody, RuntimeDep, SessionDep, once, respond
from wiserpa.store.idempotency import IdempotencyConflict, Outcome

router = APIRouter(tags=["claims"])
LineSeq = Annotated[int, Path(ge=0, le=999, description="Line number on the claim, from 0")]
API = "/api/v1/claims"


def _claim_body(session: Any, rt: Any, claim: Any) -> dict[str, Any]:
    session.flush()
    now = rt.clock.now()
    return service.claim_view(
        claim,
        service.reviews_for(session, claim),
        now=now,
        authorized=service.authorized_lines(session, rt, claim.lines, now),
    )


# ---------------------------------------------------------------------------------------------- claims


@router.post(
    API,
    status_code=201,
    responses={
        409: {"description": "Idempotency-Key reused with another body"},
        422: {"description": "Invalid input; every field at fault is named; nothing is written"},
    },
)
def submit_claim(
    body: SubmitClaimIn,
    raw: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Submit a claim; each line comes back payable, denied (with reasons), suspended or not subject."""

    def work() -> Outcome:
        claim = service.submit_claim(session, rt, principal=principal, data=body, raw=raw)
        return Outcome(201, _claim_body(session, rt, claim))

    outcome = once(
        session, rt, scope=f"org:{principal.organization_id}:claim", key=idempotency_key, raw=raw, work=work
    )
    return respond(outcome, location=f"{API}/{outcome.body.get('id')}")


@router.get(f"{API}/stats")
def claim_stats(
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    participant: Annotated[str | None, Query(max_length=100)] = None,
) -> dict[str, Any]:
    """Per participant: denials, appealed, overturned, CMS-0057-F approved-after-appeal, and dollars."""
    rows = service.participant_stats(session, rt, principal=principal, participant=participant)
    return {"participant": participant, "profile": rt.profile.id, "items": rows}


@router.get(f"{API}/reviews")
def list_reviews(
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    status: Annotated[str | None, Query(max_length=24)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """Pre-payment reviews in your scope, soonest decision due first."""
    items = service.list_reviews(session, rt, principal=principal, status=status, limit=limit)
    now = rt.clock.now()
    return {"items": [service.review_view(r, now=now) for r in items]}


@router.get(f"{API}/reviews/{{review_id}}")
def get_review(
    review_id: IdPath, session: SessionDep, rt: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    """One pre-payment review with its documentation request, clock and decision."""
    review = service.get_review(session, rt, principal=principal, review_id=review_id)
    return service.review_view(review, now=rt.clock.now())


@router.post(f"{API}/reviews/{{review_id}}/documents")
def submit_documents(
    review_id: IdPath,
    body: DocumentsIn,
    raw: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Send the requested documentation (structured facts); the decision clock starts now."""

    def work() -> Outcome:
        review = service.submit_documents(session, rt, principal=principal, review_id=review_id, data=body)
        session.flush()
        return Outcome(200, service.review_view(review, now=rt.clock.now()))

    outcome = once(
        session,
        rt,
        scope=f"org:{principal.organization_id}:ppr-docs:{review_id}",
        key=idempotency_key,
        raw=raw,
        work=work,
    )
    return respond(outcome)


@router.post(f"{API}/reviews/{{review_id}}/decision")
def decide_review(
    review_id: IdPath,
    body: ReviewDecisionIn,
    raw: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """A reviewer affirms; only a clinician non-affirms, citing unmet criteria."""

    def work() -> Outcome:
        review, applied = service.decide_review(
            session,
            rt,
            principal=principal,
            review_id=review_id,
            decision=body.decision,
            reasons=body.reasons,
            note=body.note,
        )
        session.flush()
        return Outcome(200, {**service.review_view(review, now=rt.clock.now()), "applied": applied})

    outcome = once(
        session,
        rt,
        scope=f"user:{principal.user_id}:ppr-decision:{review_id}",
        key=idempotency_key,
        raw=raw,
        work=work,
    )
    return respond(outcome)


@router.get(f"{API}/{{claim_id}}")
def get_claim(
    claim_id: IdPath, session: SessionDep, rt: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    """One claim with each line's current outcome (time-aware)."""
    claim = service.load_claim(session, rt, principal, claim_id, action="claim.read")
    return _claim_body(session, rt, claim)


@router.post(f"{API}/{{claim_id}}/lines/{{seq}}/appeal")
def appeal_line(
    claim_id: IdPath,
    seq: LineSeq,
    body: AppealIn,
    raw: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Ask for a redetermination of a denied line."""

    def work() -> Outcome:
        claim = service.appeal(
            session, rt, principal=principal, claim_id=claim_id, seq=seq, reason=body.reason
        )
        return Outcome(200, _claim_body(session, rt, claim))

    outcome = once(
        session,
        rt,
        scope=f"org:{principal.organization_id}:appeal:{claim_id}:{seq}",
        key=idempotency_key,
        raw=raw,
        work=work,
    )
    return respond(outcome)


@router.post(f"{API}/{{claim_id}}/lines/{{seq}}/appeal/outcome")
def appeal_outcome(
    claim_id: IdPath,
    seq: LineSeq,
    body: AppealOutcomeIn,
    raw: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Record the redetermination: upheld or overturned, and the date (oversight or admin)."""

    def work() -> Outcome:
        claim = service.record_appeal_outcome(
            session,
            rt,
            principal=principal,
            claim_id=claim_id,
            seq=seq,
            outcome=body.outcome,
            decided_on=body.decided_on,
            note=body.note,
        )
        return Outcome(200, _claim_body(session, rt, claim))

    outcome = once(
        session,
        rt,
        scope=f"user:{principal.user_id}:appeal-outcome:{claim_id}:{seq}",
        key=idempotency_key,
        raw=raw,
        work=work,
    )
    return respond(outcome)


# ---------------------------------------------------------------------------------------------- FHIR


def _outcome(status: int, issues: list[Issue]) -> JSONResponse:
    return JSONResponse(operation_outcome(issues), status_code=status, media_type="application/fhir+json")


@router.post("/fhir/Claim", tags=["fhir"], status_code=201, responses=ERROR_RESPONSES)
def fhir_claim(
    principal: PrincipalDep,  # first: an anonymous caller gets 401 whatever the body (dependencies run in order)
    raw: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Submit a FHIR R4 Claim (use = claim); the answer is a ClaimResponse, errors an OperationOutcome."""
    try:
        data = to_claim_in(raw)
    except FhirError as exc:
        return _outcome(exc.http_status, exc.issues)

    def work() -> Outcome:
        claim = service.submit_claim(session, rt, principal=principal, data=data, raw=raw, channel="fhir")
        view = _claim_body(session, rt, claim)
        return Outcome(201, claim_response(view, raw, now=rt.clock.now()))

    try:
        outcome = once(
            session,
            rt,
            scope=f"org:{principal.organization_id}:fhir-claim",
            key=idempotency_key,
            raw=raw,
            work=work,
        )
    except ApiError as exc:
        session.rollback()
        issues = [
            Issue(
                "error",
                "invalid" if exc.status_code == 422 else "business-rule",
                f"{f.field}: {f.message}",
                [fhir_path(f.field)],
            )
            for f in exc.fields
        ] or [Issue("error", "processing", exc.message)]
        return _outcome(exc.status_code, issues)
    except IdempotencyConflict as exc:
        return _outcome(409, [Issue("error", "duplicate", str(exc))])
    except ValidationError as exc:  # pragma: no cover - mapping bugs surface as 422, not 500
        return _outcome(422, [Issue("error", "invalid", str(exc))])
    resp = JSONResponse(outcome.body, status_code=outcome.status_code, media_type="application/fhir+json")
    if outcome.replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp
