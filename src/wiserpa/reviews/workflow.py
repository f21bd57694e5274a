"""Review workflow beside the decision: requests for more information and peer-to-peer conversations.

Neither pauses the clock: a request for information leaves the due time where it was, and a request past its
due time under deemed approval is affirmed whatever is still being discussed.

Every change locks the request's row first (FOR UPDATE on PostgreSQL; SQLite's writer lock already serializes
writers), so two parties acting on the same request at once take turns: the second sees what the first did (an
open peer-to-peer, an answer, an outcome) and gets a 409 instead of writing a second one over it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from wiserpa.audit import service as audit
from wiserpa.auth.models import Role
from wiserpa.auth.service import Principal
from wiserpa.errors import Conflict, FieldError, Forbidden, Invalid, NotFound
from wiserpa.policy.criteria import coerce_facts, evaluate, validate_facts
from wiserpa.requests import service as requests
from wiserpa.requests.models import PaRequest
from wiserpa.requests.status import OPEN, Status, effective_status
from wiserpa.reviews import service as reviews
from wiserpa.reviews.models import InformationRequest, PeerToPeer
from wiserpa.runtime import Runtime

P2P_OUTCOMES = ("affirmed_on_discussion", "upheld", "no_show")


def _gaps(request: PaRequest) -> set[str]:
    return {r["criterion_id"] for r in request.criteria_results if r.get("result") != "met"}


def _audit(
    session: Session,
    principal: Principal,
    action: str,
    request: PaRequest,
    outcome: str,
    now: dt.datetime,
    details: dict[str, Any],
) -> None:
    audit.record(
        session,
        actor=principal.actor,
        action=action,
        object_type="request",
        object_id=request.id,
        outcome=outcome,
        at=now,
        details=details,
    )


# ---------------------------------------------------------------------------------------------- information


def request_information(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    request_id: int,
    criterion_ids: Sequence[str],
    message: str | None = None,
) -> InformationRequest:
    """A reviewer asks the provider for what is missing, naming unmet/undocumented criteria."""
    if principal.role is not Role.REVIEWER:
        raise Forbidden("only a participant's reviewer may request more information")
    request = requests.load_visible(
        session, rt, principal, request_id, action="request.information_request", for_update=True
    )
    now = rt.clock.now()
    if effective_status(request, now) not in OPEN:
        raise Conflict(f"request {request.id} is already {effective_status(request, now)}")
    if not criterion_ids:
        raise Invalid(
            "name at least one criterion that is missing",
            [FieldError("criterion_ids", "name at least one unmet or undocumented criterion id")],
        )
    gaps = _gaps(request)
    unknown = [c for c in criterion_ids if c not in gaps]
    if unknown:
        # Asking beyond the policy's unmet criteria would be a requirement beyond the NCD/LCD (R6).
        raise Invalid(
            "only unmet or undocumented criteria of this request can be asked about",
            [
                FieldError(
                    "criterion_ids",
                    f"{', '.join(unknown)} not among the unmet or undocumented criteria "
                    f"({', '.join(sorted(gaps)) or 'none'})",
                )
            ],
        )
    row = InformationRequest(
        request_id=request.id,
        requested_by_user_id=principal.user_id,
        requested_at=now,
        criterion_ids=list(dict.fromkeys(criterion_ids)),
        message=message,
    )
    session.add(row)
    session.flush()
    _audit(
        session,
        principal,
        "request.information_requested",
        request,
        "requested",
        now,
        {"information_request_id": row.id, "criterion_ids": row.criterion_ids},
    )
    return row


def respond_information(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    request_id: int,
    information_request_id: int,
    note: str | None,
    clinical_facts: dict[str, Any] | None = None,
) -> InformationRequest:
    """The submitting practice answers with a note and/or facts checked against the governing policy."""
    if principal.role is not Role.PROVIDER:
        raise Forbidden("only the submitting organization may answer a request for information")
    request = requests.load_visible(
        session, rt, principal, request_id, action="request.information_response", for_update=True
    )
    row = session.get(InformationRequest, information_request_id)
    if row is None or row.request_id != request.id:
        raise NotFound(f"information request {information_request_id} not found")
    if row.responded_at is not None:
        raise Conflict("this request for information was already answered")
    facts = dict(clinical_facts or {})
    if not facts and not (note and note.strip()):
        raise Invalid("give a note or facts", [FieldError("note", "say what you are sending, or add facts")])
    policy = rt.criteria.for_policy(request.policy_id) if request.policy_id else None
    if facts:
        if policy is None:
            raise Invalid(
                "no coverage policy governs this service here, so no clinical facts are asked",
                [FieldError("clinical_facts", "this service has no NCD/LCD criteria")],
            )
        problems = validate_facts(policy, facts)
        if problems:
            fields = [FieldError(path, msg) for path, msg in problems]
            raise Invalid("; ".join(f"{f.field}: {f.message}" for f in fields), fields)
        facts = {k: v for k, v in facts.items() if v is not None}
    now = rt.clock.now()
    row.responded_at = now
    row.responded_by_user_id = principal.user_id
    row.response_note = note
    row.response_facts = facts or None
    _audit(
        session,
        principal,
        "request.information_answered",
        request,
        "answered",
        now,
        {"information_request_id": row.id, "facts": sorted(facts)},
    )
    return row


def supplemented_results(
    rt: Runtime, request: PaRequest, rows: Sequence[InformationRequest]
) -> list[dict[str, Any]]:
    """The criteria re-evaluated with the facts supplied in answers (shown to the reviewer; no decision)."""
    added: dict[str, Any] = {}
    for r in rows:
        added.update(r.response_facts or {})
    policy = rt.criteria.for_policy(request.policy_id) if request.policy_id else None
    if not added or policy is None:
        return []
    facts = coerce_facts(policy, {**request.clinical_facts, **added})
    return [
        r.to_dict()
        for r in evaluate(policy, facts, date_of_service=request.date_of_service, category=request.category)
        if r.kind == "criterion"
    ]


# ---------------------------------------------------------------------------------------------- peer-to-peer


def request_peer_to_peer(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    request_id: int,
    note: str | None = None,
    scheduled_for: dt.datetime | None = None,
) -> PeerToPeer:
    """The provider or the reviewer asks for a peer-to-peer conversation, optionally with a time."""
    if principal.role not in (Role.PROVIDER, Role.REVIEWER):
        raise Forbidden("only the provider or the participant's reviewer may request a peer-to-peer")
    request = requests.load_visible(
        session, rt, principal, request_id, action="request.p2p_request", for_update=True
    )
    now = rt.clock.now()
    _check_time(scheduled_for, now)
    _check_discussable(request, now)
    open_p2p = session.scalars(
        select(PeerToPeer).where(PeerToPeer.request_id == request.id, PeerToPeer.status != "completed")
    ).first()
    if open_p2p is not None:
        raise Conflict(f"peer-to-peer {open_p2p.id} is already open for this request")
    row = PeerToPeer(
        request_id=request.id,
        status="scheduled" if scheduled_for else "requested",
        requested_by_user_id=principal.user_id,
        requested_by_role=principal.role.value,
        requested_at=now,
        request_note=note,
        scheduled_for=scheduled_for,
        scheduled_by_user_id=principal.user_id if scheduled_for else None,
    )
    session.add(row)
    session.flush()
    _audit(
        session,
        principal,
        "request.p2p_requested",
        request,
        row.status,
        now,
        {"p2p_id": row.id, "scheduled_for": scheduled_for},
    )
    return row


def _check_discussable(request: PaRequest, now: dt.datetime) -> None:
    """A peer-to-peer is asked for or (re)scheduled only while the request is pended or non-affirmed: once it
    is withdrawn or affirmed (deemed included) there is nothing left to discuss, so no call is booked."""
    status = effective_status(request, now)
    if status not in (*OPEN, Status.NON_AFFIRMED):
        raise Conflict(
            f"request {request.id} is {status}; a peer-to-peer is for pended or non-affirmed requests"
        )


def _check_time(value: dt.datetime | None, now: dt.datetime) -> None:
    if value is None:
        return
    if value.tzinfo is None:
        raise Invalid(
            "give a time zone", [FieldError("scheduled_for", "give a time zone (e.g. ...T15:00:00Z)")]
        )
    if value <= now:
        raise Invalid("must be in the future", [FieldError("scheduled_for", "must be in the future")])


def _load_p2p(session: Session, request: PaRequest, p2p_id: int) -> PeerToPeer:
    row = session.get(PeerToPeer, p2p_id)
    if row is None or row.request_id != request.id:
        raise NotFound(f"peer-to-peer {p2p_id} not found")
    return row


def schedule_peer_to_peer(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    request_id: int,
    p2p_id: int,
    scheduled_for: dt.datetime,
) -> PeerToPeer:
    """Set (or move) the time of an open peer-to-peer (either party)."""
    if principal.role not in (Role.PROVIDER, Role.REVIEWER):
        raise Forbidden("only the provider or the participant's reviewer may schedule a peer-to-peer")
    request = requests.load_visible(
        session, rt, principal, request_id, action="request.p2p_schedule", for_update=True
    )
    row = _load_p2p(session, request, p2p_id)
    if row.status == "completed":
        raise Conflict("this peer-to-peer is already completed")
    now = rt.clock.now()
    _check_time(scheduled_for, now)
    _check_discussable(request, now)
    row.scheduled_for = scheduled_for
    row.scheduled_by_user_id = principal.user_id
    row.status = "scheduled"
    _audit(
        session,
        principal,
        "request.p2p_scheduled",
        request,
        "scheduled",
        now,
        {"p2p_id": row.id, "scheduled_for": scheduled_for},
    )
    return row


def record_peer_to_peer_outcome(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    request_id: int,
    p2p_id: int,
    outcome: str,
    note: str | None = None,
) -> PeerToPeer:
    """The reviewing clinician records the outcome; 'affirmed on discussion' affirms a pended request."""
    if principal.role is not Role.REVIEWER:
        raise Forbidden("only the participant's reviewer records a peer-to-peer outcome")
    if outcome not in P2P_OUTCOMES:
        raise Invalid("unknown outcome", [FieldError("outcome", f"use one of {', '.join(P2P_OUTCOMES)}")])
    request = requests.load_visible(
        session, rt, principal, request_id, action="request.p2p_outcome", for_update=True
    )
    row = _load_p2p(session, request, p2p_id)
    if row.status == "completed":
        raise Conflict("this peer-to-peer already has an outcome")
    now = rt.clock.now()
    if outcome == "affirmed_on_discussion":
        status = effective_status(request, now)
        if status not in OPEN:
            raise Conflict(
                f"request {request.id} is {status}; an affirmation after a non-affirmation is a resubmission "
                "with the facts discussed"
            )
        # One engine: the affirmation goes through the same clinician decision as the decision form.
        reviews.decide(
            session,
            rt,
            principal=principal,
            request_id=request.id,
            outcome="affirm",
            note=f"affirmed on peer-to-peer discussion{': ' + note if note else ''}",
        )
    row.outcome = outcome
    row.outcome_at = now
    row.outcome_by_user_id = principal.user_id
    row.outcome_note = note
    row.status = "completed"
    _audit(session, principal, "request.p2p_outcome", request, outcome, now, {"p2p_id": row.id})
    return row


# ---------------------------------------------------------------------------------------------- reads


@dataclass(frozen=True)
class Workflow:
    """Everything of the review workflow attached to one request."""

    information_requests: Sequence[InformationRequest]
    peer_to_peer: Sequence[PeerToPeer]


def for_request(session: Session, request_id: int) -> Workflow:
    """The workflow rows of a request the caller was already allowed to load."""
    infos = session.scalars(
        select(InformationRequest)
        .where(InformationRequest.request_id == request_id)
        .order_by(InformationRequest.id)
    ).all()
    p2ps = session.scalars(
        select(PeerToPeer).where(PeerToPeer.request_id == request_id).order_by(PeerToPeer.id)
    ).all()
    return Workflow(infos, p2ps)


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None


def information_view(row: InformationRequest, request: PaRequest | None = None) -> dict[str, Any]:
    """JSON for one request for information, with each named criterion's citation when known."""
    by_id = {r["criterion_id"]: r for r in (request.criteria_results if request else [])}
    return {
        "id": row.id,
        "request_id": row.request_id,
        "requested_at": _iso(row.requested_at),
        "criteria": [
            {
                "criterion_id": c,
                "statement": by_id.get(c, {}).get("statement"),
                "citation": by_id.get(c, {}).get("citation"),
                "satisfies_hint": by_id.get(c, {}).get("satisfies_hint"),
            }
            for c in row.criterion_ids
        ],
        "message": row.message,
        "responded_at": _iso(row.responded_at),
        "response_note": row.response_note,
        "response_facts": row.response_facts,
        "clock_paused": False,
    }


def p2p_view(row: PeerToPeer) -> dict[str, Any]:
    """JSON for one peer-to-peer."""
    return {
        "id": row.id,
        "request_id": row.request_id,
        "status": row.status,
        "requested_by_role": row.requested_by_role,
        "requested_at": _iso(row.requested_at),
        "note": row.request_note,
        "scheduled_for": _iso(row.scheduled_for),
        "outcome": row.outcome,
        "outcome_at": _iso(row.outcome_at),
        "outcome_note": row.outcome_note,
    }


def workflow_view(session: Session, request: PaRequest) -> dict[str, Any]:
    """Both lists for one request, as the API and the pages show them."""
    wf = for_request(session, request.id)
    return {
        "request_id": request.id,
        "information_requests": [information_view(r, request) for r in wf.information_requests],
        "peer_to_peer": [p2p_view(p) for p in wf.peer_to_peer],
    }
