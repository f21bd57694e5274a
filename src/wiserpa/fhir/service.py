"""PAS operations on the engine: `$submit` (new, update, cancel) and `$inquire`, one engine with REST.

The FHIR Bundle is mapped by the pure layer (`fhir/pas.py`) to the same ``SubmitRequestIn`` the REST API takes
and handed to ``requests.service``; nothing here decides anything. Every refusal is a ``FhirError`` naming the
element (FHIRPath), raised before the first write, so the caller's transaction rolls everything back.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, or_, select
from sqlalchemy.orm import Session

from wiserpa.audit import service as audit
from wiserpa.auth.models import Role
from wiserpa.auth.service import Principal
from wiserpa.errors import ApiError, Conflict, Forbidden, NotFound
from wiserpa.fhir import pas
from wiserpa.fhir.models import FhirBundle
from wiserpa.fhir.outcome import FhirError, Issue, IssueCode
from wiserpa.fhir.pas import PasOutcome, PasSubmission, UpdateOrCancel
from wiserpa.fhir.validation import fhirpath
from wiserpa.ids import parse_id
from wiserpa.requests import service as requests
from wiserpa.requests.models import PaRequest, RequestLine
from wiserpa.requests.schemas import SubmitRequestIn
from wiserpa.requests.status import AFFIRMED_STATES, OPEN, Status, effective_status
from wiserpa.runtime import Runtime
from wiserpa.store.base import table_of

__all__ = [
    "api_error_to_fhir",
    "inquire",
    "pas_outcome",
    "replay_response",
    "require_provider",
    "response_for_request",
    "stored_bundle",
    "submit",
]

_CLAIM = "Bundle.entry[0].resource"
_MAX_INQUIRY_RESULTS = 50


# ---------------------------------------------------------------------------------------------- outcome


def _citation_text(citation: Any) -> str:
    if isinstance(citation, dict):
        return ", ".join(str(citation[k]) for k in ("policy", "section") if citation.get(k))
    return str(citation or "")


def _local_date(rt: Runtime, request: PaRequest, at: dt.datetime) -> dt.date:
    """The date of an instant in the request's state (its business calendar's time zone)."""
    state = rt.catalog.state(request.state)
    return at.astimezone(ZoneInfo(state.timezone if state else "UTC")).date()


def pas_outcome(rt: Runtime, request: PaRequest, *, now: dt.datetime) -> PasOutcome:
    """The engine's current (time-aware) state of a request in the terms of a PAS response."""
    status = effective_status(request, now)
    if status == Status.WITHDRAWN.value:
        return PasOutcome("cancelled", request.id, status_text="Withdrawn (cancelled) by the requester")
    if status in {s.value for s in AFFIRMED_STATES}:
        deemed_now = status == Status.DEEMED_AFFIRMED.value and request.status in OPEN
        decided_at = request.due_at if deemed_now else (request.decided_at or request.received_at)
        valid_until = (
            requests.validity_end(rt, request, request.due_at) if deemed_now else request.valid_until
        ) or requests.validity_end(rt, request, decided_at)
        issued_on = _local_date(rt, request, decided_at)
        # In force from the day of receipt, as the claims engine pays it (claims.service.auth_state): a service the
        # provider could not postpone while waiting for the decision is covered, so the period says so too.
        valid_from = _local_date(rt, request, request.received_at)
        kind = "deemed" if deemed_now else (request.decision_kind or "criteria")
        text = {
            "criteria": "Provisionally affirmed: every NCD/LCD criterion is documented as met",
            "clinician": "Provisionally affirmed by a clinician reviewer",
            "deemed": "Deemed provisionally affirmed: no decision by the due time",
            "exempt": "Provisionally affirmed under the time-sensitive care exemption",
            "gold_card": "Provisionally affirmed: the provider holds a gold card for this service",
        }.get(kind, "Provisionally affirmed")
        return PasOutcome(
            "affirmed",
            request.id,
            kind,  # type: ignore[arg-type]  # decision_kind values are the AffirmationKind literals
            request.utn,
            valid_from,
            valid_until,
            status_text=f"{text}; UTN {request.utn}",
            issued_on=issued_on,
        )
    if status == Status.NON_AFFIRMED.value:
        reasons: list[tuple[str, str, str]] = []
        for decision in reversed(request.decisions):
            if decision.effective and decision.reasons:
                reasons = [
                    (
                        str(r.get("criterion_id")),
                        _citation_text(r.get("citation")),
                        str(r.get("statement") or r.get("criterion_id")),
                    )
                    for r in decision.reasons
                ]
                break
        if not reasons:
            # Defensive: a non-affirmation always cites criteria (reviews.service enforces it).
            reasons = [("unspecified", "", "See the reviewer's decision")]
        return PasOutcome(
            "non_affirmed",
            request.id,
            None,
            request.utn,
            reasons=reasons,
            status_text=f"Non-affirmed by a clinician reviewer; UTN {request.utn}",
            issued_on=_local_date(rt, request, request.decided_at or now),
        )
    return PasOutcome(
        "pended",
        request.id,
        status_text=f"Pended for clinician review; decision due by {request.due_at.isoformat()}",
    )


def stored_bundle(session: Session, request_id: int) -> dict[str, Any] | None:
    """The latest PAS request Bundle that created or updated this request, if it came through FHIR."""
    row = session.scalars(
        select(FhirBundle)
        .where(FhirBundle.request_id == request_id, FhirBundle.kind.in_(("new", "update")))
        .order_by(FhirBundle.id.desc())
        .limit(1)
    ).first()
    return row.bundle if row is not None else None


def response_for_request(
    session: Session, rt: Runtime, request: PaRequest, *, now: dt.datetime
) -> dict[str, Any] | None:
    """The PAS response Bundle for a request's current state, or None when it did not come through FHIR."""
    bundle = stored_bundle(session, request.id)
    if bundle is None:
        return None
    return pas.pas_response_bundle(request_bundle=bundle, outcome=pas_outcome(rt, request, now=now), now=now)


# ---------------------------------------------------------------------------------------------- errors

_SIMPLE_FIELDS = {
    "state": f"{_CLAIM}.item[0].location",
    "date_of_service": f"{_CLAIM}.item[0].serviced",
    "place_of_service": f"{_CLAIM}.item[0].location",
    "diagnosis_codes": f"{_CLAIM}.diagnosis",
    "provider": f"{_CLAIM}.provider",
    "beneficiary": f"{_CLAIM}.patient",
    "coverage": f"{_CLAIM}.insurance",
    "emergency": f"{_CLAIM}.item",
    "revenue_code": f"{_CLAIM}.item[0].revenue",
    "lines": f"{_CLAIM}.item",
    "clinical_facts": f"{_CLAIM}.supportingInfo",
}
_LINE_FIELD = re.compile(r"^lines\[(\d+)\](?:\.(\w+))?")
_FACT_FIELD = re.compile(r"^clinical_facts\.([a-z][a-z0-9_]*)")


def _qr_item_path(bundle: dict[str, Any], link_id: str) -> str | None:
    """FHIRPath of the QuestionnaireResponse item that answered ``link_id``."""

    def walk(items: Any, path: str) -> str | None:
        for n, item in enumerate(items or []):
            if not isinstance(item, dict):
                continue
            here = fhirpath(path, "item", n)
            if item.get("linkId") == link_id:
                return here
            found = walk(item.get("item"), here)
            if found:
                return found
        return None

    for i, entry in enumerate(bundle.get("entry") or []):
        res = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(res, dict) and res.get("resourceType") == "QuestionnaireResponse":
            found = walk(res.get("item"), fhirpath("Bundle", "entry", i, "resource"))
            if found:
                return found
    return None


def _element_for(field: str, parsed: PasSubmission | None) -> str:
    """Best FHIRPath for an engine field name (``lines[0].code``, ``clinical_facts.x``, ``state``)."""
    if parsed is not None:
        m = _FACT_FIELD.match(field)
        if m:
            return _qr_item_path(parsed.bundle, m.group(1)) or _SIMPLE_FIELDS["clinical_facts"]
        m = _LINE_FIELD.match(field)
        if m:
            active = [i for i, it in enumerate(parsed.claim.get("item") or []) if not pas._item_cancelled(it)]
            n = int(m.group(1))
            idx = active[n] if n < len(active) else n
            leaf = {"modifiers": "modifier", "units": "quantity"}.get(m.group(2) or "", "productOrService")
            return f"{_CLAIM}.item[{idx}].{leaf}"
    head = field.split(".", 1)[0].split("[", 1)[0]
    return _SIMPLE_FIELDS.get(head, _CLAIM)


def api_error_to_fhir(exc: ApiError, parsed: PasSubmission | None = None) -> FhirError:
    """An engine error as a FHIR error with the same status, each field named as a FHIRPath."""
    code: IssueCode = "not-found" if exc.status_code == 404 else "business-rule"
    status = exc.status_code if 400 <= exc.status_code < 500 else 400
    if exc.fields:
        issues = [
            Issue("error", code, f"{f.field}: {f.message}", [_element_for(f.field, parsed)])
            for f in exc.fields
        ]
    else:
        issues = [Issue("error", code, exc.message, [])]
    return FhirError(issues, status)


# ---------------------------------------------------------------------------------------------- $submit


def require_provider(principal: Principal) -> None:
    if principal.role is not Role.PROVIDER or principal.organization_id is None:
        raise FhirError.single(
            "business-rule", "Only a provider organization's key may submit PAS requests", http_status=403
        )


def _find_original(session: Session, rt: Runtime, principal: Principal, link: UpdateOrCancel) -> PaRequest:
    """The request an update/cancel names, in the caller's organization, followed to its newest version."""
    request: PaRequest | None = None
    if link.original_identifier:
        row = session.scalars(
            select(FhirBundle)
            .where(
                FhirBundle.organization_id == principal.organization_id,
                FhirBundle.claim_identifier == link.original_identifier,
                FhirBundle.request_id.is_not(None),
            )
            .order_by(FhirBundle.id.desc())
            .limit(1)
        ).first()
        if row is not None and row.request_id is not None:
            request = session.get(PaRequest, row.request_id)
    if request is None and link.original_reference:
        request = _find_by_claim_reference(session, principal, link.original_reference)
    if request is None and link.authorization_number:
        request = session.scalars(
            select(PaRequest).where(
                PaRequest.utn == link.authorization_number.strip().upper(),
                PaRequest.organization_id == principal.organization_id,
            )
        ).first()
    if request is None:
        raise FhirError.single(
            "not-found",
            "The request this update or cancel refers to was not found for your organization "
            f"(Claim.related identifier {link.original_identifier or link.original_reference!r}, "
            f"authorization number {link.authorization_number!r})",
            f"{_CLAIM}.related",
            http_status=404,
        )
    return _current_version(session, request)


_REFERENCE_SCAN_LIMIT = 500


def _find_by_claim_reference(session: Session, principal: Principal, reference: str) -> PaRequest | None:
    """The request whose submitted Claim a reference names (``Claim/<id>`` or its fullUrl).

    The IG's own update example points at the prior Claim by reference and leaves it out of the Bundle
    (spec-66), naming neither its identifier nor the authorization number: the stored Bundles are the only
    place the Claim's id is known. Recent Bundles of the caller's organization only, newest first.
    """
    claim_id = reference.rstrip("/").rsplit("/", 1)[-1] if reference.split("/")[-2:-1] == ["Claim"] else None
    rows = session.execute(
        select(FhirBundle.request_id, FhirBundle.bundle)
        .where(
            FhirBundle.organization_id == principal.organization_id,
            FhirBundle.kind.in_(("new", "update")),
            FhirBundle.request_id.is_not(None),
        )
        .order_by(FhirBundle.id.desc())
        .limit(_REFERENCE_SCAN_LIMIT)
    ).all()
    for request_id, bundle in rows:
        first = ((bundle or {}).get("entry") or [{}])[0]
        resource = first.get("resource") or {}
        if first.get("fullUrl") == reference or (claim_id is not None and resource.get("id") == claim_id):
            return session.get(PaRequest, request_id)
    return None


def _current_version(session: Session, request: PaRequest) -> PaRequest:
    """Follow resubmissions forward: a replaced request answers with its successor (PAS spec-47)."""
    seen = {request.id}
    while True:
        nxt = session.scalars(
            select(PaRequest)
            .where(PaRequest.predecessor_id == request.id)
            .order_by(PaRequest.id.desc())
            .limit(1)
        ).first()
        if nxt is None or nxt.id in seen:
            return request
        seen.add(nxt.id)
        request = nxt


def _engine_submit(
    session: Session,
    rt: Runtime,
    principal: Principal,
    parsed: PasSubmission,
    data: SubmitRequestIn,
    predecessor: PaRequest | None,
) -> PaRequest:
    try:
        return requests.submit(
            session,
            rt,
            principal=principal,
            data=data,
            raw=data.model_dump(mode="json"),
            predecessor=predecessor,
        )
    except ApiError as exc:
        raise api_error_to_fhir(exc, parsed) from None


def _withdraw(
    session: Session, rt: Runtime, principal: Principal, request: PaRequest, reason: str
) -> PaRequest:
    try:
        return requests.withdraw(session, rt, principal=principal, request_id=request.id, reason=reason)
    except Conflict as exc:
        raise FhirError.business_rule(
            f"Request {request.utn} cannot be cancelled: {exc.message}", f"{_CLAIM}.related"
        ) from None
    except (NotFound, Forbidden) as exc:
        raise api_error_to_fhir(exc) from None


def submit(session: Session, rt: Runtime, *, principal: Principal, parsed: PasSubmission) -> dict[str, Any]:
    """Run a parsed `$submit` Bundle through the engine (caller commits); the PAS response Bundle."""
    require_provider(principal)
    assert principal.organization_id is not None
    now = rt.clock.now()
    if parsed.kind == "new":
        request = _engine_submit(session, rt, principal, parsed, parsed.require_submit(), None)
    else:
        link = pas.parse_update_or_cancel(parsed.bundle)
        if parsed.kind == "update":
            # Map first: a bad update is refused before anything is looked up or changed.
            data = parsed.require_submit()
        original = _find_original(session, rt, principal, link)
        if parsed.kind == "cancel":
            request = _withdraw(
                session, rt, principal, original, "cancelled by a PAS Claim update (X12 1322 '3')"
            )
        else:
            status = effective_status(original, now)
            if status in {s.value for s in OPEN}:
                # The update replaces the open request: withdraw it, review the new version (facts changed).
                _withdraw(session, rt, principal, original, "replaced by a PAS Claim update")
            elif status not in (Status.NON_AFFIRMED.value, Status.WITHDRAWN.value):
                raise FhirError.business_rule(
                    f"Request {original.utn} is already {status}; an affirmed authorization is not updated "
                    "here: cancel it and submit a new request (PAS spec-64)",
                    f"{_CLAIM}.related",
                )
            # A non-affirmed or withdrawn request is resubmitted (WISeR allows unlimited resubmissions).
            request = _engine_submit(session, rt, principal, parsed, data, original)
    claim_ident = (parsed.claim.get("identifier") or [{}])[0]
    # A Core insert: the received Bundle is write-once, so the unit of work would only add a flush.
    session.execute(
        insert(table_of(FhirBundle)),
        {
            "request_id": request.id,
            "organization_id": principal.organization_id,
            "kind": parsed.kind,
            "bundle_identifier": parsed.bundle_identifier[:300],
            "claim_identifier": pas._identifier_str(claim_ident)[:300],
            "bundle": parsed.bundle,
            "received_at": now,
        },
    )
    audit.record(
        session,
        actor=principal.actor,
        action="fhir.submit",
        object_type="request",
        object_id=request.id,
        outcome=request.status,
        at=now,
        details={"kind": parsed.kind, "bundle_identifier": parsed.bundle_identifier[:300]},
    )
    return pas.pas_response_bundle(
        request_bundle=parsed.bundle, outcome=pas_outcome(rt, request, now=now), now=now
    )


def replay_response(
    session: Session, rt: Runtime, *, principal: Principal, parsed: PasSubmission
) -> dict[str, Any] | None:
    """The answer to a replayed `$submit`: the same request's *current* state, not the stored snapshot.

    A retry must not create a second request, but neither may it answer "pended" about a request that has
    since been decided, or deemed affirmed by its due time (which holds on every read). None when the Bundle's
    request cannot be found (the stored answer is used then).
    """
    row = session.scalars(
        select(FhirBundle)
        .where(
            FhirBundle.organization_id == principal.organization_id,
            FhirBundle.bundle_identifier == parsed.bundle_identifier[:300],
            FhirBundle.request_id.is_not(None),
        )
        .order_by(FhirBundle.id.desc())
        .limit(1)
    ).first()
    request = session.get(PaRequest, row.request_id) if row is not None and row.request_id else None
    if request is None or not requests.can_see(principal, request):
        return None
    if row is not None and row.kind != "cancel":
        # An update that replaced this request answers for its successor (spec-47), as $inquire does.
        request = _current_version(session, request)
    now = rt.clock.now()
    return pas.pas_response_bundle(
        request_bundle=parsed.bundle, outcome=pas_outcome(rt, request, now=now), now=now
    )


# ---------------------------------------------------------------------------------------------- $inquire


def _normalize_member(value: str) -> str:
    return value.replace("-", "").strip().upper()


def _with_request_items(inquiry_bundle: dict[str, Any], request: PaRequest) -> dict[str, Any]:
    """The inquiry Bundle to answer from for a request that did not come through FHIR (REST, web form).

    The decision travels in ClaimResponse.item, one per Claim.item: an inquiry that names no service (by
    patient only) would otherwise be answered without any decision, so it gets the request's own lines.
    """
    claim = (inquiry_bundle.get("entry") or [{}])[0].get("resource") or {}
    if claim.get("item"):
        return inquiry_bundle
    items = [
        {
            "sequence": n,
            "productOrService": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": line.code}]},
        }
        for n, line in enumerate(sorted(request.lines, key=lambda x: x.seq), start=1)
        if line.requested
    ] or [{"sequence": 1, "productOrService": {"coding": [{"code": request.primary_code}]}}]
    entries = [{**inquiry_bundle["entry"][0], "resource": {**claim, "item": items}}]
    return {**inquiry_bundle, "entry": entries + list(inquiry_bundle["entry"][1:])}


def inquire(session: Session, rt: Runtime, *, principal: Principal, raw: Any) -> dict[str, Any]:
    """Answer a `$inquire` Bundle: the current state of each matching request in the caller's scope."""
    key = pas.parse_inquiry_bundle(raw)
    inquiry_bundle = pas.unwrap_parameters(raw)
    now = rt.clock.now()
    members = sorted({_normalize_member(m) for m in key.member_ids})
    conditions = [requests.scope_filter(principal), PaRequest.beneficiary_mbi.in_(members)]
    if key.codes:
        codes = [c.strip().upper() for c in key.codes]
        line_match = select(RequestLine.request_id).where(RequestLine.code.in_(codes))
        conditions.append(or_(PaRequest.primary_code.in_(codes), PaRequest.id.in_(line_match)))
    if key.service_date_from and key.service_date_to:
        conditions.append(PaRequest.date_of_service.between(key.service_date_from, key.service_date_to))
    numbers = [n.strip().upper() for n in key.authorization_numbers]
    refs = [ref for n in key.administration_reference_numbers if (ref := parse_id(n)) is not None]
    if numbers or refs:
        # spec-47/48: a replaced number still finds the authorization that replaced it (followed below).
        conditions.append(or_(PaRequest.utn.in_(numbers), PaRequest.id.in_(refs)))
    found = session.scalars(
        select(PaRequest)
        .where(*conditions)
        .order_by(PaRequest.received_at.desc())
        .limit(_MAX_INQUIRY_RESULTS)
    ).all()
    current: dict[int, PaRequest] = {}
    for request in found:
        latest = _current_version(session, request)
        if requests.can_see(principal, latest):
            current.setdefault(latest.id, latest)
    bundles = []
    for request in current.values():
        stored = stored_bundle(session, request.id)
        bundles.append(
            pas.inquiry_response_bundle(
                inquiry_bundle=inquiry_bundle,
                request_bundle=stored or _with_request_items(inquiry_bundle, request),
                outcome=pas_outcome(rt, request, now=now),
                now=now,
            )
        )
    audit.record(
        session,
        actor=principal.actor,
        action="fhir.inquire",
        object_type="request",
        object_id=None,
        outcome="ok",
        at=now,
        details={"ids": list(current)},
    )
    if not bundles:
        # Parameters.parameter is 0..*; an empty list is not valid JSON FHIR, so leave the element out.
        return {"resourceType": "Parameters"}
    return pas.inquiry_parameters(bundles)
