"""PAS notifications: R4 Subscriptions backport (rest-hook, full-resource), a durable outbox, a deliverer.

A decision on a request that came through FHIR writes one outbox row per matching subscription *in the same
transaction* (``enqueue_for_request``), so a committed decision always has its notification waiting and a
rolled-back one never does. The deliverer leases due rows, posts them outside any transaction, and records
the result; a crash between the two only means the lease expires and the row is sent again (at-least-once,
receivers deduplicate on the event number). Nothing lives in memory: a restart resumes from the table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from wiserpa.audit import service as audit
from wiserpa.auth.models import Organization, Role
from wiserpa.auth.service import Principal
from wiserpa.fhir.models import FhirOutbox, FhirSubscription
from wiserpa.fhir.outcome import FhirError
from wiserpa.fhir.pas import WISERPA_FHIR_BASE
from wiserpa.fhir.validation import structural_issues
from wiserpa.ids import parse_id
from wiserpa.requests.models import PaRequest
from wiserpa.requests.schemas import Channel
from wiserpa.runtime import Runtime

__all__ = [
    "PAS_TOPIC",
    "DeliveryResult",
    "DeliveryWorker",
    "create",
    "delete",
    "deliver_due",
    "endpoint_problem",
    "enqueue_for_request",
    "get",
    "search",
    "sign",
    "status_parameters",
]

log = logging.getLogger(__name__)

PAS_TOPIC = "http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic"
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
EXT_FILTER = BACKPORT + "backport-filter-criteria"
EXT_PAYLOAD = BACKPORT + "backport-payload-content"
EXT_SIGNING_SECRET = f"{WISERPA_FHIR_BASE}/StructureDefinition/extension-subscriptionSigningSecret"
ORG_ID_SYSTEM = f"{WISERPA_FHIR_BASE}/sid/organization-id"
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
# The IG's topic and example say orgIdentifier, its narrative and Inferno org-identifier (INTEROP.md §1.5).
FILTER_NAMES = ("org-identifier", "orgIdentifier")
SIGNATURE_HEADER = "X-Wiserpa-Signature"
TIMESTAMP_HEADER = "X-Wiserpa-Timestamp"

MAX_ATTEMPTS = 8
BACKOFF_BASE_SECONDS = 10.0
BACKOFF_CAP_SECONDS = 3600.0
LEASE_SECONDS = 60.0
DELIVERY_TIMEOUT_SECONDS = 5.0


# ---------------------------------------------------------------------------------------------- safety


def endpoint_problem(url: str, *, allow_private: bool) -> str | None:
    """Why a notification may not go to ``url`` (scheme, private/loopback address), or None when it may."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not a URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "the endpoint must be an absolute https URL"
    if allow_private:
        return None
    if parts.scheme != "https":
        return "the endpoint must use https"
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except OSError:
        return f"the host {parts.hostname} does not resolve"
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if (
            addr.is_private
            or addr.is_loopback
            or addr.is_link_local
            or addr.is_reserved
            or addr.is_multicast
            or addr.is_unspecified
        ):
            # Refused so a subscriber cannot make the server call into its own network (SSRF).
            return f"the host {parts.hostname} resolves to a private or loopback address ({addr})"
    return None


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over ``timestamp + "." + body``: the value of the signature header (``sha256=<hex>``)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


# ---------------------------------------------------------------------------------------------- CRUD


def _org_identifiers(session: Session, principal: Principal) -> set[str]:
    org = session.get(Organization, principal.organization_id) if principal.organization_id else None
    out = {str(principal.organization_id), f"{ORG_ID_SYSTEM}|{principal.organization_id}"}
    if org is not None and org.npi:
        out |= {org.npi, f"{NPI_SYSTEM}|{org.npi}"}
    return out


def _parse_filter(value: str) -> list[str]:
    name, sep, rest = value.partition("=")
    if not sep or name.strip() not in FILTER_NAMES or not rest.strip():
        raise FhirError.single(
            "value",
            f"Unsupported filter {value!r}: the PAS topic filters by org-identifier=<id>[,<id>] "
            "(orgIdentifier is accepted too)",
            "Subscription.criteria.extension",
        )
    return [v.strip() for v in rest.split(",") if v.strip()]


def _validate(raw: Any, *, allow_private: bool) -> tuple[str, list[str], list[str]]:
    """Check a backport Subscription; (endpoint, org filter values, channel headers) or a FhirError."""
    if not isinstance(raw, dict) or raw.get("resourceType") != "Subscription":
        raise FhirError.single("structure", "The body must be a FHIR R4 Subscription", "Subscription")
    issues = structural_issues(raw, root="Subscription")
    if issues:
        raise FhirError(issues)
    if raw.get("criteria") != PAS_TOPIC:
        raise FhirError.single(
            "not-supported",
            f"Only the PAS topic {PAS_TOPIC} is offered (criteria holds the topic canonical)",
            "Subscription.criteria",
        )
    channel = raw.get("channel") or {}
    if channel.get("type") != "rest-hook":
        raise FhirError.single(
            "not-supported",
            "Only the rest-hook channel is supported (PAS spec-56)",
            "Subscription.channel.type",
        )
    content = [
        e.get("valueCode")
        for e in ((channel.get("_payload") or {}).get("extension") or [])
        if isinstance(e, dict) and e.get("url") == EXT_PAYLOAD
    ]
    if content != ["full-resource"]:
        raise FhirError.single(
            "value",
            "PAS notifications carry the full response Bundle: payload content must be full-resource "
            "(spec-62)",
            "Subscription.channel.payload.extension",
        )
    payload = channel.get("payload")
    if payload not in ("application/fhir+json", "application/json"):
        raise FhirError.single(
            "not-supported", "channel.payload must be application/fhir+json", "Subscription.channel.payload"
        )
    endpoint = str(channel.get("endpoint") or "")
    problem = endpoint_problem(endpoint, allow_private=allow_private)
    if problem:
        raise FhirError.single(
            "value", f"channel.endpoint refused: {problem}", "Subscription.channel.endpoint"
        )
    filters: list[str] = []
    for ext in (raw.get("_criteria") or {}).get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == EXT_FILTER:
            filters += _parse_filter(str(ext.get("valueString") or ""))
    headers = [str(h) for h in channel.get("header") or []]
    for h in headers:
        name, sep, _ = h.partition(":")
        if not sep or not name.strip() or "\n" in h or "\r" in h:
            raise FhirError.single(
                "value", f"channel.header {h!r} is not 'Name: value'", "Subscription.channel.header"
            )
    return endpoint, filters, headers


def _resource(sub: FhirSubscription, *, with_secret: bool = False) -> dict[str, Any]:
    res = dict(sub.resource)
    res["id"] = str(sub.id)
    res["status"] = {"active": "active", "off": "off", "error": "error"}.get(sub.status, "error")
    res.pop("meta", None)
    res["meta"] = {
        "profile": [
            "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription",
            "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-subscription",
        ]
    }
    if with_secret:
        # Shown once, on creation: the receiver verifies the signature header with it.
        res["extension"] = [e for e in res.get("extension") or [] if e.get("url") != EXT_SIGNING_SECRET] + [
            {"url": EXT_SIGNING_SECRET, "valueString": sub.secret}
        ]
    return res


def require_provider(principal: Principal) -> None:
    if principal.role is not Role.PROVIDER or principal.organization_id is None:
        # spec-59: only the submitting system manages its subscriptions.
        raise FhirError.single(
            "business-rule",
            "Only a provider organization's key may manage PAS subscriptions",
            http_status=403,
        )


def create(session: Session, rt: Runtime, *, principal: Principal, raw: Any) -> dict[str, Any]:
    """Register a subscription for the caller's organization (caller commits); the stored resource."""
    require_provider(principal)
    endpoint, filters, headers = _validate(raw, allow_private=rt.settings.webhook_allow_private)
    own = _org_identifiers(session, principal)
    org = session.get(Organization, principal.organization_id)
    if filters and org is not None and org.npi and not set(filters) <= own:
        raise FhirError.single(
            "business-rule",
            "A subscription may only filter on your own organization's identifiers (spec-59)",
            "Subscription.criteria.extension",
            http_status=403,
        )
    now = rt.clock.now()
    stored = {k: v for k, v in raw.items() if k not in ("id", "meta", "text")}
    sub = FhirSubscription(
        organization_id=principal.organization_id,
        created_by_user_id=principal.user_id,
        status="active",
        topic=PAS_TOPIC,
        endpoint=endpoint,
        org_filter=filters or [str(principal.organization_id)],
        headers=headers,
        secret=secrets.token_urlsafe(32),
        events_count=0,
        resource=stored,
        created_at=now,
        updated_at=now,
    )
    session.add(sub)
    session.flush()
    audit.record(
        session,
        actor=principal.actor,
        action="fhir.subscription.create",
        object_type="subscription",
        object_id=sub.id,
        outcome="active",
        at=now,
        details={"endpoint": endpoint},
    )
    return _resource(sub, with_secret=True)


def _load(session: Session, principal: Principal, sub_id: str) -> FhirSubscription:
    found = parse_id(sub_id)  # anything but ASCII digits within 64 bits names nothing
    sub = session.get(FhirSubscription, found) if found else None
    if sub is None or sub.organization_id != principal.organization_id or sub.status == "off":
        raise FhirError.single(
            "not-found", f"Subscription/{sub_id} not found", "Subscription.id", http_status=404
        )
    return sub


def get(session: Session, *, principal: Principal, sub_id: str) -> dict[str, Any]:
    """One of the caller's subscriptions."""
    require_provider(principal)
    return _resource(_load(session, principal, sub_id))


def search(session: Session, *, principal: Principal) -> dict[str, Any]:
    """The caller's live subscriptions as a searchset Bundle."""
    require_provider(principal)
    subs = session.scalars(
        select(FhirSubscription)
        .where(
            FhirSubscription.organization_id == principal.organization_id, FhirSubscription.status != "off"
        )
        .order_by(FhirSubscription.id)
    ).all()
    out: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(subs)}
    if subs:
        out["entry"] = [
            {"fullUrl": f"Subscription/{s.id}", "resource": _resource(s), "search": {"mode": "match"}}
            for s in subs
        ]
    return out


def delete(session: Session, rt: Runtime, *, principal: Principal, sub_id: str) -> None:
    """Turn a subscription off (kept, with its outbox history; pending notifications are dropped)."""
    require_provider(principal)
    sub = _load(session, principal, sub_id)
    now = rt.clock.now()
    sub.status = "off"
    sub.updated_at = now
    session.execute(
        update(FhirOutbox)
        .where(FhirOutbox.subscription_id == sub.id, FhirOutbox.status == "pending")
        .values(status="failed", last_error="subscription deleted")
    )
    audit.record(
        session,
        actor=principal.actor,
        action="fhir.subscription.delete",
        object_type="subscription",
        object_id=sub.id,
        outcome="off",
        at=now,
    )


def status_parameters(
    sub: FhirSubscription,
    *,
    kind: str,
    event_number: int | None = None,
    focus: str | None = None,
    at: str | None = None,
) -> dict[str, Any]:
    """A backport SubscriptionStatus (Parameters) for a notification or `$status`."""
    params: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": f"Subscription/{sub.id}"}},
        {"name": "topic", "valueCanonical": PAS_TOPIC},
        {"name": "status", "valueCode": "active" if sub.status == "active" else sub.status},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(sub.events_count)},
    ]
    if event_number is not None:
        part: list[dict[str, Any]] = [{"name": "event-number", "valueString": str(event_number)}]
        if at:
            part.append({"name": "timestamp", "valueInstant": at})
        if focus:
            part.append({"name": "focus", "valueReference": {"reference": focus}})
        params.append({"name": "notification-event", "part": part})
    return {"resourceType": "Parameters", "parameter": params}


# ---------------------------------------------------------------------------------------------- outbox


# Built once: every decision asks it.
_LIVE_SUBSCRIPTIONS = select(FhirSubscription).where(
    FhirSubscription.organization_id == bindparam("org"), FhirSubscription.status == "active"
)


def enqueue_for_request(session: Session, request: PaRequest, rt: Runtime) -> int:
    """Queue a notification of the request's new state for each live subscription of its organization.

    Called by the decision paths in the decision's own transaction. Free for requests that did not come
    through FHIR (there is no PAS Bundle to answer), cheap when nobody subscribed (one indexed query).
    """
    if request.channel != Channel.FHIR.value:
        # Only `fhir.service.submit` stores a PAS Bundle, and only for the requests it creates, which always
        # have the fhir channel: any other request has nothing to notify, so skip the subscription read
        # (about 55 us of a decision's 0.9 ms on SQLite, and every clinician decision in the simulator).
        return 0
    subs = session.scalars(_LIVE_SUBSCRIPTIONS, {"org": request.organization_id}).all()
    if not subs:
        return 0
    from wiserpa.fhir.service import pas_outcome, stored_bundle  # late: service imports the request layer

    bundle = stored_bundle(session, request.id)
    if bundle is None:
        return 0
    from wiserpa.fhir import pas

    now = rt.clock.now()
    response = pas.pas_response_bundle(
        request_bundle=bundle, outcome=pas_outcome(rt, request, now=now), now=now
    )
    at = now.isoformat(timespec="seconds")
    response_url = f"urn:uuid:{response['id']}"
    for sub in subs:
        sub.events_count = (sub.events_count or 0) + 1
        sub.updated_at = now
        notification = {
            "resourceType": "Bundle",
            "meta": {
                "profile": [
                    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-notification-r4"
                ]
            },
            "type": "history",
            "timestamp": at,
            "entry": [
                {
                    "fullUrl": f"urn:uuid:{_uuid_for(sub.id, sub.events_count)}",
                    "resource": status_parameters(
                        sub,
                        kind="event-notification",
                        event_number=sub.events_count,
                        focus=response_url,
                        at=at,
                    ),
                    "request": {"method": "GET", "url": f"Subscription/{sub.id}/$status"},
                    "response": {"status": "200"},
                },
                {
                    "fullUrl": response_url,
                    "resource": response,
                    "request": {"method": "POST", "url": "Claim/$submit"},
                    "response": {"status": "200"},
                },
            ],
        }
        session.add(
            FhirOutbox(
                subscription_id=sub.id,
                request_id=request.id,
                event_number=sub.events_count,
                payload=notification,
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
    return len(subs)


def _uuid_for(sub_id: int, event: int) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{WISERPA_FHIR_BASE}/Subscription/{sub_id}/event/{event}"))


# ---------------------------------------------------------------------------------------------- delivery


@dataclass(frozen=True)
class DeliveryResult:
    """What one delivery pass did."""

    delivered: int
    retried: int
    failed: int


def _backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1)))


def _lease(rt: Runtime, limit: int) -> list[int]:
    """Take due rows for this worker: push their next attempt past the lease and commit, then send."""
    now = rt.clock.now()
    with rt.sessions() as session:
        rows = session.scalars(
            select(FhirOutbox)
            .where(FhirOutbox.status == "pending", FhirOutbox.next_attempt_at <= now)
            .order_by(FhirOutbox.next_attempt_at, FhirOutbox.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        for row in rows:
            row.attempts += 1
            row.next_attempt_at = now + dt.timedelta(seconds=LEASE_SECONDS)
        ids = [r.id for r in rows]
        session.commit()
    return ids


def _post(
    client: httpx.Client, sub: FhirSubscription, row: FhirOutbox, *, allow_private: bool, now: dt.datetime
) -> str | None:
    """Send one notification; None on a 2xx, else the error text."""
    problem = endpoint_problem(sub.endpoint, allow_private=allow_private)
    if problem:
        return f"refused: {problem}"
    body = json.dumps(row.payload, separators=(",", ":")).encode()
    stamp = now.isoformat(timespec="seconds")
    headers = {
        "Content-Type": "application/fhir+json",
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: sign(sub.secret, stamp, body),
        "X-Wiserpa-Event": f"{sub.id}/{row.event_number}",
    }
    for h in sub.headers:
        name, _, value = h.partition(":")
        headers[name.strip()] = value.strip()
    try:
        resp = client.post(sub.endpoint, content=body, headers=headers, follow_redirects=False)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= resp.status_code < 300:
        return None
    return f"HTTP {resp.status_code}"


def deliver_due(rt: Runtime, *, client: httpx.Client | None = None, limit: int = 100) -> DeliveryResult:
    """Send every due notification once: delivered, rescheduled with exponential backoff, or failed."""
    ids = _lease(rt, limit)
    if not ids:
        return DeliveryResult(0, 0, 0)
    own = client is None
    http = client or httpx.Client(timeout=DELIVERY_TIMEOUT_SECONDS)
    delivered = retried = failed = 0
    try:
        for row_id in ids:
            with rt.sessions() as session:
                row = session.get(FhirOutbox, row_id)
                if row is None or row.status != "pending":
                    continue
                sub = session.get(FhirSubscription, row.subscription_id)
                now = rt.clock.now()
                if sub is None or sub.status != "active":
                    row.status, row.last_error = "failed", "subscription is off"
                    failed += 1
                    session.commit()
                    continue
                error = _post(http, sub, row, allow_private=rt.settings.webhook_allow_private, now=now)
                if error is None:
                    row.status, row.delivered_at, row.last_error = "delivered", now, None
                    delivered += 1
                elif row.attempts >= MAX_ATTEMPTS or error.startswith("refused"):
                    row.status, row.last_error = "failed", error
                    sub.status = "error"  # the Subscription reports the broken channel until re-created
                    failed += 1
                else:
                    row.last_error = error
                    row.next_attempt_at = now + _backoff(row.attempts)
                    retried += 1
                session.commit()
    finally:
        if own:
            http.close()
    return DeliveryResult(delivered, retried, failed)


class DeliveryWorker:
    """Runs ``deliver_due`` every ``interval`` seconds in a daemon thread until stopped."""

    def __init__(self, rt: Runtime, interval: float = 5.0) -> None:
        self.rt = rt
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                result = deliver_due(self.rt)
                if result.delivered or result.failed:
                    log.info("fhir notifications: %d delivered, %d failed", result.delivered, result.failed)
            except Exception:  # a failed pass must not kill the worker: the rows stay in the outbox
                log.exception("fhir notification delivery failed")

    def start(self) -> None:
        """Start the thread (no-op when the interval is 0 or it already runs)."""
        if self.interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="wiserpa-fhir-deliver", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to finish and wait for the pass in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def run_cli_delivery(
    settings: Any, *, once: bool, interval: float, echo: Callable[[str], Any]
) -> DeliveryResult:
    """`wiserpa fhir deliver`: one pass (``once``) or passes every ``interval`` seconds until interrupted."""
    rt = Runtime.build(settings)
    stop = threading.Event()
    total = DeliveryResult(0, 0, 0)
    try:
        while True:
            result = deliver_due(rt)
            total = DeliveryResult(
                total.delivered + result.delivered,
                total.retried + result.retried,
                total.failed + result.failed,
            )
            echo(f"delivered {result.delivered}, retrying {result.retried}, failed {result.failed}")
            if once or stop.wait(interval):
                return total
    except KeyboardInterrupt:
        return total
    finally:
        rt.engine.dispose()
