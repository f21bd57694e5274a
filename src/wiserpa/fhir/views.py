"""FHIR routes (`/fhir`: PAS, Subscriptions, DTR, metadata) and CDS Hooks (`/cds-services`: CRD).

Thin: read the body, call the service, commit (through ``run_once`` for `$submit`), answer FHIR JSON. Every
client error is one OperationOutcome naming the element (PAS spec-35/39); server faults stay 5xx without one.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar, cast

import httpx
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from wiserpa.auth.models import Organization
from wiserpa.auth.service import Principal
from wiserpa.errors import ApiError
from wiserpa.fhir import crd, dtr, pas, service, subscriptions
from wiserpa.fhir.capability import capability_statement
from wiserpa.fhir.outcome import ERROR_RESPONSES, FhirError, IssueCode
from wiserpa.fhir.validation import body_issues
from wiserpa.http import RuntimeDep, SessionDep, get_principal, get_session
from wiserpa.policy.clock import SystemClock
from wiserpa.runtime import Runtime
from wiserpa.store.idempotency import IdempotencyConflict, Outcome, fingerprint, run_once

__all__ = ["FHIR_JSON", "cds_router", "install", "router"]

FHIR_JSON = "application/fhir+json"
DELIVERY_INTERVAL_SECONDS = 5.0
T = TypeVar("T")


@asynccontextmanager
async def deliverer(app: FastAPI) -> AsyncIterator[None]:
    """Deliver subscription notifications in a background thread while the app serves (real clock only)."""
    rt: Runtime = app.state.runtime
    # A simulated clock does not move by itself, so a timer thread would only race the test driving it.
    interval = (
        DELIVERY_INTERVAL_SECONDS
        if isinstance(rt.clock, SystemClock) and rt.settings.sweep_interval_seconds > 0
        else 0
    )
    worker = subscriptions.DeliveryWorker(rt, interval)
    worker.start()
    app.state.fhir_deliverer = worker
    try:
        yield
    finally:
        worker.stop()


class FhirJSONResponse(JSONResponse):
    """JSON with the FHIR media type; as the router's default class it is what /openapi.json declares."""

    media_type = FHIR_JSON


def _json_acceptable(media_type: str) -> bool:
    kind, params = _media_params(media_type)
    if kind in ("json", "*/*", "application/*") or (kind.startswith("application/") and "json" in kind):
        version = params.get("fhirversion")
        return version is None or version == "4.0" or version.startswith("4.0.")
    return kind == "text/json"


def negotiate(request: Request) -> None:
    """Refuse, before any work, a caller that asks for a format other than FHIR R4 JSON (406)."""
    fmt = request.query_params.get("_format")
    if fmt is not None and not _json_acceptable(fmt):
        raise FhirError.single(
            "not-supported",
            f"_format={fmt} is not served: this server answers FHIR R4 JSON only (_format=json)",
            "_format",
            http_status=406,
        )
    accept = request.headers.get("accept")
    if fmt is None and accept and not any(_json_acceptable(m) for m in accept.split(",")):
        raise FhirError.single(
            "not-supported",
            f"Accept: {accept} is not served: this server answers application/fhir+json (FHIR R4) only",
            "Accept",
            http_status=406,
        )


router = APIRouter(
    prefix="/fhir",
    tags=["fhir"],
    lifespan=deliverer,
    default_response_class=FhirJSONResponse,
    dependencies=[Depends(negotiate)],
    responses=ERROR_RESPONSES,
)
cds_router = APIRouter(prefix="/cds-services", tags=["crd"])


def fhir_response(
    body: dict[str, Any], status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """FHIR JSON with the FHIR media type."""
    return JSONResponse(body, status_code=status_code, media_type=FHIR_JSON, headers=headers)


def fhir_principal(
    request: Request,
    session: Annotated[Session, Depends(get_session)],
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    """The Bearer-key principal, with authentication failures as OperationOutcomes."""
    try:
        return get_principal(request, session, authorization)
    except ApiError as exc:
        code = cast(IssueCode, "login" if exc.status_code == 401 else "throttled")
        raise FhirError.single(code, exc.message, http_status=exc.status_code) from None


FhirPrincipal = Annotated[Principal, Depends(fhir_principal)]


async def raw_body(request: Request) -> bytes:
    """The body bytes (parsed by the route, so a bad body is an OperationOutcome, not a 422)."""
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]
ContentType = Annotated[str | None, Header(alias="Content-Type")]


def _media_params(media_type: str) -> tuple[str, dict[str, str]]:
    """``type/subtype`` (lower case) and its parameters (``fhirVersion=4.0`` ...)."""
    kind, *params = media_type.split(";")
    out = {}
    for param in params:
        name, _, value = param.partition("=")
        out[name.strip().lower()] = value.strip().strip('"')
    return kind.strip().lower(), out


def _check_fhir_version(params: dict[str, str], *, http_status: int, where: str) -> None:
    version = params.get("fhirversion")
    # R4 is 4.0 (4.0.1); an R5 or STU3 payload differs in shape, so it is refused rather than misread.
    if version is not None and version != "4.0" and not version.startswith("4.0."):
        raise FhirError.single(
            "not-supported",
            f"This server speaks FHIR R4 (fhirVersion=4.0); {where} asks for fhirVersion={version}",
            where,
            http_status=http_status,
        )


def load_json(body: bytes, *, root: str = "Bundle", resource_types: bool = True) -> Any:
    """JSON from bytes, refused as a 400 OperationOutcome when malformed, absurdly deep or holding NUL."""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FhirError.single("structure", f"The body is not valid JSON: {exc}", root) from None
    except RecursionError:
        raise FhirError.single("structure", "The body's JSON is nested too deeply", root) from None
    if isinstance(raw, dict) and isinstance(raw.get("resourceType"), str) and raw["resourceType"].isalpha():
        root = raw["resourceType"]
    issues = body_issues(raw, root=root, resource_types=resource_types)
    if issues:
        raise FhirError(issues)
    return raw


def parse_json(body: bytes, content_type: str | None) -> Any:
    """JSON from the body; XML and non-JSON bodies are refused (PAS spec-11: the Bundle SHALL be JSON)."""
    kind, params = _media_params(content_type or "")
    if "xml" in kind:
        raise FhirError.single(
            "not-supported", "Only JSON is accepted (PAS spec-11)", "Content-Type", http_status=415
        )
    _check_fhir_version(params, http_status=415, where="Content-Type")
    return load_json(body)


def _guard(fn: Callable[[], T]) -> T:
    """Engine errors that escaped the service as OperationOutcomes."""
    try:
        return fn()
    except ApiError as exc:
        raise service.api_error_to_fhir(exc) from None


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


# ---------------------------------------------------------------------------------------------- metadata


@router.get("/metadata")
def metadata(request: Request, rt: RuntimeDep) -> Response:
    """The CapabilityStatement (no authentication needed)."""
    return fhir_response(
        capability_statement(base_url=_base_url(request), date=rt.clock.now().date().isoformat())
    )


# ---------------------------------------------------------------------------------------------- PAS


def _idempotency_key(bundle_identifier: str) -> str:
    # Bundle.identifier is the submitter's transaction id: the same id replays (spec-17 makes it unique).
    if len(bundle_identifier) <= 200:
        return bundle_identifier
    return "sha256:" + hashlib.sha256(bundle_identifier.encode()).hexdigest()


@router.post("/Claim/$submit")
def claim_submit(
    body: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: FhirPrincipal,
    content_type: ContentType = None,
) -> Response:
    """PAS `$submit`: a request Bundle (bare or in Parameters.resource) → the PAS response Bundle."""
    service.require_provider(principal)  # the role decides first, whatever the body
    raw = parse_json(body, content_type)
    parsed = pas.parse_pas_bundle(raw)

    def work() -> Outcome:
        return Outcome(200, service.submit(session, rt, principal=principal, parsed=parsed))

    try:
        outcome = _guard(
            lambda: run_once(
                session,
                scope=f"org:{principal.organization_id}:fhir-submit",
                key=_idempotency_key(parsed.bundle_identifier),
                fingerprint_=fingerprint("POST", "/fhir/Claim/$submit", parsed.bundle),
                now=rt.clock.now(),
                work=work,
            )
        )
    except IdempotencyConflict:
        raise FhirError.single(
            "duplicate",
            f"Bundle.identifier {parsed.bundle_identifier!r} was already used for a different Bundle "
            "(spec-17)",
            "Bundle.identifier",
            http_status=409,
        ) from None
    if not outcome.replayed:
        return fhir_response(outcome.body, outcome.status_code)
    current = service.replay_response(session, rt, principal=principal, parsed=parsed)
    session.rollback()  # a replay reads only
    return fhir_response(
        current if current is not None else outcome.body,
        outcome.status_code,
        {"Idempotent-Replayed": "true"},
    )


@router.post("/Claim/$inquire")
def claim_inquire(
    body: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: FhirPrincipal,
    content_type: ContentType = None,
) -> Response:
    """PAS `$inquire`: Parameters with one `return` Bundle per matching request in your scope."""
    raw = parse_json(body, content_type)
    result = _guard(lambda: service.inquire(session, rt, principal=principal, raw=raw))
    session.commit()
    return fhir_response(result)


# ---------------------------------------------------------------------------------------------- Subscription


@router.post("/Subscription")
def subscription_create(
    body: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: FhirPrincipal,
    content_type: ContentType = None,
) -> Response:
    """Create a rest-hook subscription to the PAS topic for your organization (active at once)."""
    subscriptions.require_provider(principal)
    raw = parse_json(body, content_type)
    created = subscriptions.create(session, rt, principal=principal, raw=raw)
    session.commit()
    return fhir_response(created, 201, {"Location": f"/fhir/Subscription/{created['id']}"})


@router.get("/Subscription")
def subscription_search(session: SessionDep, principal: FhirPrincipal) -> Response:
    """Your organization's live subscriptions."""
    return fhir_response(subscriptions.search(session, principal=principal))


@router.get("/Subscription/{sub_id}")
def subscription_read(sub_id: str, session: SessionDep, principal: FhirPrincipal) -> Response:
    """One of your subscriptions."""
    return fhir_response(subscriptions.get(session, principal=principal, sub_id=sub_id))


@router.get("/Subscription/{sub_id}/$status")
def subscription_status(sub_id: str, session: SessionDep, principal: FhirPrincipal) -> Response:
    """Backport `$status`: a searchset Bundle holding the SubscriptionStatus Parameters."""
    subscriptions.get(session, principal=principal, sub_id=sub_id)  # scope check
    sub = session.get(subscriptions.FhirSubscription, int(sub_id))
    assert sub is not None
    status = subscriptions.status_parameters(sub, kind="query-status")
    return fhir_response(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": 1,
            "entry": [
                {
                    "fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'wiserpa/Subscription/{sub_id}')}",
                    "resource": status,
                    "search": {"mode": "match"},
                }
            ],
        }
    )


@router.delete("/Subscription/{sub_id}")
def subscription_delete(
    sub_id: str, session: SessionDep, rt: RuntimeDep, principal: FhirPrincipal
) -> Response:
    """Turn one of your subscriptions off."""
    subscriptions.delete(session, rt, principal=principal, sub_id=sub_id)
    session.commit()
    return Response(status_code=204)


# ---------------------------------------------------------------------------------------------- DTR


def _org_state(session: Session, principal: Principal) -> str | None:
    org = session.get(Organization, principal.organization_id) if principal.organization_id else None
    return org.state if org is not None and org.state else principal.state


@router.post("/Questionnaire/$questionnaire-package")
def questionnaire_package(
    body: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: FhirPrincipal,
    content_type: ContentType = None,
) -> Response:
    """DTR `$questionnaire-package`: the Questionnaire of each governing NCD/LCD, with a draft response."""
    raw = parse_json(body, content_type)
    return fhir_response(dtr.questionnaire_package(rt, raw, state_hint=_org_state(session, principal)))


@router.get("/Questionnaire/{qid}")
def questionnaire_read(qid: str, rt: RuntimeDep, principal: FhirPrincipal) -> Response:
    """One generated Questionnaire by id (``wiserpa-L36920``)."""
    policy = dtr.policy_for_questionnaire_id(rt, qid)
    if policy is None:
        raise FhirError.single(
            "not-found", f"Questionnaire/{qid} not found", "Questionnaire.id", http_status=404
        )
    return fhir_response(dtr.questionnaire(rt, policy))


# ---------------------------------------------------------------------------------------------- CRD


@cds_router.get("")
def cds_discovery() -> dict[str, Any]:
    """CDS Hooks discovery: the CRD services offered."""
    return crd.discovery()


@cds_router.post("/{service_id}")
def cds_service(
    service_id: str,
    request: Request,
    body: RawBody,
    session: SessionDep,
    rt: RuntimeDep,
    principal: FhirPrincipal,
) -> JSONResponse:
    """Answer a CDS Hooks call with coverage-information systemActions."""
    raw = load_json(body, root="body", resource_types=False)
    transport: httpx.BaseTransport | None = getattr(request.app.state, "fhir_http_transport", None)
    result = _guard(
        lambda: crd.handle(
            session, rt, principal=principal, service_id=service_id, body=raw, transport=transport
        )
    )
    session.rollback()  # read-only: nothing to keep
    return JSONResponse(result)


# ---------------------------------------------------------------------------------------------- wiring


def install(app: FastAPI) -> None:
    """Mount `/fhir` and `/cds-services` and render FhirError as an OperationOutcome."""

    async def _fhir_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FhirError)
        return JSONResponse(exc.operation_outcome(), status_code=exc.http_status, media_type=FHIR_JSON)

    async def _http_error(request: Request, exc: Exception) -> Response:
        # A FHIR client that calls an interaction this server does not offer (`GET /fhir/Patient/1`, `GET` on
        # an operation) gets an OperationOutcome like every other FHIR refusal; other paths keep FastAPI's.
        assert isinstance(exc, StarletteHTTPException)
        path = request.url.path
        if not 400 <= exc.status_code < 500 or not (path == "/fhir" or path.startswith("/fhir/")):
            return await http_exception_handler(request, exc)
        rest = path.removeprefix("/fhir").strip("/")
        code = cast(IssueCode, "not-found" if exc.status_code == 404 else "not-supported")
        message = {
            404: f"{request.method} /fhir/{rest} is not served here; see /fhir/metadata",
            405: f"{request.method} is not allowed on /fhir/{rest}; see /fhir/metadata",
        }.get(exc.status_code, str(exc.detail))
        err = FhirError.single(code, message, rest or "fhir", http_status=exc.status_code)
        return JSONResponse(
            err.operation_outcome(),
            status_code=exc.status_code,
            media_type=FHIR_JSON,
            headers=getattr(exc, "headers", None),
        )

    app.add_exception_handler(FhirError, _fhir_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.include_router(router)
    app.include_router(cds_router)
