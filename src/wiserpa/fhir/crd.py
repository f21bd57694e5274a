"""CRD (CDS Hooks): does this ordered service need WISeR prior authorization here, and what must be
documented?

Each hook answers with one ``systemAction`` per ordered service that adds the CRD ``coverage-information``
extension and changes nothing else (CRD resp-25/resp-37). The answer comes from the same catalog, exemption
and gold-card rules the engine applies on submission, so CRD and PAS cannot disagree:

* not a WISeR code / out of scope here → ``pa-needed = no-auth`` with the catalog's reason as instructions;
* gold-carded provider → ``no-auth`` with reason ``gold-card`` (CRD temp codes);
* time-sensitive exemption (R1) without a required attestation → ``no-auth`` with reason ``time-sensitive``;
  with the attestation required, ``auth-needed`` (the request is affirmed on receipt) with the same reason;
* otherwise ``auth-needed``, ``doc-needed = clinical``, the governing NCD/LCD as ``policy-link`` details and
  the DTR Questionnaire generated from its criteria.

Data the hook did not prefetch is read from the EHR's FHIR server named in the hook (``fhirServer`` with
``fhirAuthorization``), never from anywhere else, with short timeouts; a failed read degrades the answer
(state from the caller's organization) instead of failing the hook.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import time
import uuid
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy.orm import Session

from wiserpa.auth.models import Organization
from wiserpa.auth.service import Principal
from wiserpa.fhir.dtr import questionnaire_url
from wiserpa.fhir.outcome import FhirError
from wiserpa.fhir.pas import NPI_SYSTEM, POS_CS, PROCEDURE_SYSTEMS, WISERPA_FHIR_BASE
from wiserpa.goldcard.service import active_gold_card
from wiserpa.policy.decide import matching_exemption
from wiserpa.runtime import Runtime

__all__ = ["EXT_COVERAGE_INFO", "HOOKS", "discovery", "handle"]

EXT_COVERAGE_INFO = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"
CRD_TEMP = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp"
CRD_CODES = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/coverage-information-codes"
CS_CRD_REASON = f"{WISERPA_FHIR_BASE}/CodeSystem/crd-reason"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
# Hook → context keys holding the orders (order-dispatch: 2.2.1 names first, the older Inferno names after).
HOOKS: dict[str, tuple[str, ...]] = {
    "order-sign": ("draftOrders",),
    "order-select": ("draftOrders",),
    "order-dispatch": ("dispatchedOrders", "order"),
    "appointment-book": ("appointments",),
    "encounter-start": (),
}
SUPPORTING_HOOKS = frozenset({"order-select", "encounter-start"})
ORDER_TYPES = frozenset(
    {
        "ServiceRequest",
        "DeviceRequest",
        "MedicationRequest",
        "NutritionOrder",
        "VisionPrescription",
        "CommunicationRequest",
        "Appointment",
        "Encounter",
    }
)
FETCH_TIMEOUT_SECONDS = 1.5
FETCH_BUDGET_SECONDS = 3.0  # well inside CRD found-2's 5 s
_PREFETCH = {
    "patient": "Patient/{{context.patientId}}",
    "coverage": "Coverage?patient={{context.patientId}}&status=active",
}


def discovery() -> dict[str, Any]:
    """The CDS Hooks discovery document (one service per supported hook, id = hook name)."""
    titles = {
        "order-sign": "WISeR prior authorization requirements (order signed)",
        "order-select": "WISeR prior authorization requirements (order selected)",
        "order-dispatch": "WISeR prior authorization requirements (order dispatched)",
        "appointment-book": "WISeR prior authorization requirements (appointment booked)",
        "encounter-start": "WISeR prior authorization requirements (encounter started)",
    }
    services = []
    for hook in HOOKS:
        prefetch = {"patient": _PREFETCH["patient"], "coverage": _PREFETCH["coverage"]}
        services.append(
            {
                "hook": hook,
                "id": hook,
                "title": titles[hook],
                "description": "Medicare WISeR model: whether the ordered service needs prior "
                "authorization in "
                "the patient's state, exemptions and gold cards, the governing NCD/LCD and its DTR "
                "questionnaire, as a coverage-information systemAction.",
                "prefetch": prefetch,
                "extension": {
                    "davinci-crd.version": "2.2.1",
                    "davinci-crd.configuration-options": [
                        {
                            "code": "coverage",
                            "type": "boolean",
                            "name": "Coverage information",
                            "description": "Return coverage-information systemActions",
                            "default": True,
                        }
                    ],
                },
            }
        )
    return {"services": services}


# ---------------------------------------------------------------------------------------------- data access


class _Fetcher:
    """Reads from the hook's own FHIR server only, with a timeout per call and a budget per hook."""

    def __init__(
        self, body: dict[str, Any], *, transport: httpx.BaseTransport | None, allow_private: bool
    ) -> None:
        self.base = str(body.get("fhirServer") or "").rstrip("/")
        auth = body.get("fhirAuthorization") if isinstance(body.get("fhirAuthorization"), dict) else {}
        self.token = str(auth.get("access_token") or "") if auth else ""
        self.transport = transport
        self.allow_private = allow_private
        self.deadline = time.monotonic() + FETCH_BUDGET_SECONDS  # pacing only, never a recorded time
        self.failed = False
        self._client: httpx.Client | None = None

    def _usable(self) -> bool:
        parts = urlsplit(self.base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        if self.allow_private:
            return True
        if parts.scheme != "https" or parts.hostname == "localhost":
            return False
        try:
            addr = ipaddress.ip_address(parts.hostname)
        except ValueError:
            return True  # a name: no DNS lookup on the hook's hot path
        return not (addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_reserved)

    def get(self, path: str) -> dict[str, Any] | None:
        """GET ``[fhirServer]/path`` as JSON, or None (not found, failed, timed out or not allowed)."""
        if not self.base or not self._usable() or "://" in path or path.startswith("/"):
            return None
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self.failed = True
            return None
        if self._client is None:
            headers = {"Accept": "application/fhir+json"}
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            self._client = httpx.Client(transport=self.transport, headers=headers, follow_redirects=False)
        try:
            resp = self._client.get(f"{self.base}/{path}", timeout=min(FETCH_TIMEOUT_SECONDS, remaining))
        except httpx.HTTPError:
            self.failed = True
            return None
        if resp.status_code != 200:
            if resp.status_code >= 500:
                self.failed = True
            return None
        try:
            data = resp.json()
        except ValueError:
            self.failed = True
            return None
        return data if isinstance(data, dict) else None

    def close(self) -> None:
        """Release the connection pool."""
        if self._client is not None:
            self._client.close()


def _resources(value: Any) -> list[dict[str, Any]]:
    """Resources in a prefetch/context value: a Bundle's entries, a single resource, or nothing."""
    if not isinstance(value, dict):
        return []
    if value.get("resourceType") == "Bundle":
        return [
            e["resource"]
            for e in value.get("entry") or []
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)
        ]
    return [value] if isinstance(value.get("resourceType"), str) else []


class _Context:
    """Everything a hook call knows: context, prefetch and (lazily) what the EHR's server returns."""

    def __init__(self, body: dict[str, Any], fetcher: _Fetcher) -> None:
        context, prefetch = body.get("context"), body.get("prefetch")
        self.context: dict[str, Any] = context if isinstance(context, dict) else {}
        self.prefetch: dict[str, Any] = prefetch if isinstance(prefetch, dict) else {}
        self.fetcher = fetcher
        self.known: dict[str, dict[str, Any]] = {}
        for value in [*self.prefetch.values(), *self.context.values()]:
            for res in _resources(value):
                if res.get("id"):
                    self.known.setdefault(f"{res['resourceType']}/{res['id']}", res)

    def resolve(self, reference: Any) -> dict[str, Any] | None:
        ref = reference.get("reference") if isinstance(reference, dict) else reference
        if not isinstance(ref, str) or "/" not in ref or ref.startswith("#"):
            return None
        key = "/".join(ref.rstrip("/").split("/")[-2:])
        if key in self.known:
            return self.known[key]
        fetched = self.fetcher.get(key)
        if fetched is not None and fetched.get("resourceType") == key.split("/")[0]:
            self.known[key] = fetched
        return fetched

    def patient(self) -> dict[str, Any] | None:
        found = _resources(self.prefetch.get("patient"))
        if found:
            return found[0]
        pid = self.context.get("patientId")
        return self.resolve(f"Patient/{pid}") if isinstance(pid, str) and pid else None

    def coverage(self) -> dict[str, Any] | None:
        if "coverage" in self.prefetch:
            found = [
                r for r in _resources(self.prefetch.get("coverage")) if r.get("resourceType") == "Coverage"
            ]
            return found[0] if found else None
        pid = self.context.get("patientId")
        if isinstance(pid, str) and pid:
            bundle = self.fetcher.get(f"Coverage?patient={pid}&status=active")
            found = [r for r in _resources(bundle) if r.get("resourceType") == "Coverage"]
            return found[0] if found else None
        return None

    def orders(self, hook: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for key in HOOKS[hook]:
            value = self.context.get(key)
            refs = value if isinstance(value, list) else [value] if isinstance(value, str) else []
            out += [r for r in _resources(value) if r.get("resourceType") in ORDER_TYPES]
            for ref in refs:
                res = self.resolve(ref)
                if res is not None and res.get("resourceType") in ORDER_TYPES:
                    out.append(res)
        if hook == "order-select":
            selected = {s for s in self.context.get("selections") or [] if isinstance(s, str)}
            if selected:
                out = [o for o in out if f"{o.get('resourceType')}/{o.get('id')}" in selected]
        if hook == "encounter-start":
            # Services already ordered for the encounter, if the EHR prefetched them.
            for value in self.prefetch.values():
                out += [r for r in _resources(value) if r.get("resourceType") in ORDER_TYPES - {"Encounter"}]
        return out


# ---------------------------------------------------------------------------------------------- answer


def _codes(order: dict[str, Any]) -> list[str]:
    concepts: list[Any] = [order.get("code"), order.get("codeCodeableConcept")]
    concepts += list(order.get("serviceType") or [])
    procedure: list[str] = []
    other: list[str] = []
    for concept in concepts:
        if not isinstance(concept, dict):
            continue
        for coding in concept.get("coding") or []:
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                code = coding["code"].strip().upper()
                (procedure if coding.get("system") in PROCEDURE_SYSTEMS else other).append(code)
    return procedure + other


def _diagnoses(order: dict[str, Any], ctx: _Context) -> list[str]:
    out: list[str] = []
    for concept in order.get("reasonCode") or []:
        for coding in (concept or {}).get("coding") or []:
            if coding.get("system") == ICD10CM and coding.get("code"):
                out.append(str(coding["code"]))
    for ref in order.get("reasonReference") or []:
        cond = ctx.resolve(ref)
        for coding in ((cond or {}).get("code") or {}).get("coding") or []:
            if coding.get("system") == ICD10CM and coding.get("code"):
                out.append(str(coding["code"]))
    return out


def _service_date(order: dict[str, Any], today: dt.date) -> dt.date:
    for value in (
        order.get("occurrenceDateTime"),
        (order.get("occurrencePeriod") or {}).get("start"),
        order.get("start"),
        (order.get("dispenseRequest") or {}).get("validityPeriod", {}).get("start"),
    ):
        if isinstance(value, str) and len(value) >= 10:
            try:
                return dt.date.fromisoformat(value[:10])
            except ValueError:
                continue
    return today


def _place_of_service(order: dict[str, Any]) -> str:
    for concept in order.get("locationCode") or []:
        for coding in (concept or {}).get("coding") or []:
            if coding.get("system") == POS_CS and coding.get("code"):
                return str(coding["code"])
    return "11"  # office: where an ordering clinician's WISeR services are most often done


def _npi(order: dict[str, Any], ctx: _Context) -> str | None:
    who = ctx.resolve(order.get("requester"))
    if who is not None and who.get("resourceType") == "PractitionerRole":
        who = ctx.resolve(who.get("practitioner")) or who
    for ident in (who or {}).get("identifier") or []:
        if ident.get("system") == NPI_SYSTEM and ident.get("value"):
            return str(ident["value"])
    return None


def _state(ctx: _Context, session: Session, principal: Principal) -> str | None:
    patient = ctx.patient()
    addresses = sorted((patient or {}).get("address") or [], key=lambda a: 0 if a.get("use") == "home" else 1)
    for addr in addresses:
        if isinstance(addr.get("state"), str) and len(addr["state"].strip()) == 2:
            return addr["state"].strip().upper()
    org = session.get(Organization, principal.organization_id) if principal.organization_id else None
    return org.state if org is not None and org.state else principal.state


def _ext(url: str, **value: Any) -> dict[str, Any]:
    return {"url": url, **value}


def _detail(code: str, category: str, **value: Any) -> dict[str, Any]:
    return _ext(
        "detail",
        extension=[
            _ext("category", valueCodeableConcept={"coding": [{"system": CRD_TEMP, "code": category}]}),
            _ext("code", valueCodeableConcept={"coding": [{"system": CRD_TEMP, "code": code}]}),
            _ext("value", **value),
        ],
    )


def _coverage_information(
    session: Session,
    rt: Runtime,
    *,
    order: dict[str, Any],
    ctx: _Context,
    coverage: dict[str, Any] | None,
    state: str | None,
    principal: Principal,
    assertion_id: str,
) -> dict[str, Any]:
    now = rt.clock.now()
    st = rt.catalog.state(state) if state else None
    today = now.astimezone(ZoneInfo(st.timezone if st else "UTC")).date()
    coverage_ref = (
        {"reference": f"Coverage/{coverage['id']}"}
        if coverage and coverage.get("id")
        else {"display": "Original Medicare (no Coverage resource supplied)"}
    )
    subs: list[dict[str, Any]] = [_ext("coverage", valueReference=coverage_ref)]
    codes = _codes(order)
    code = next(
        (c for c in codes if rt.catalog.code_info(c) or rt.catalog.is_associated(c)),
        codes[0] if codes else None,
    )
    if ctx.fetcher.failed and state is None:
        subs += [
            _ext("covered", valueCode="indeterminate"),
            _ext("pa-needed", valueCode="indeterminate"),
            _ext("reason", valueCodeableConcept={"coding": [{"system": CRD_TEMP, "code": "technical"}]}),
        ]
    elif code is None:
        subs += [
            _ext("covered", valueCode="covered"),
            _ext("pa-needed", valueCode="no-auth"),
            _detail("instructions", "cat-other", valueString="No procedure code: nothing on the WISeR list"),
        ]
    elif state is None:
        subs += [
            _ext("covered", valueCode="conditional"),
            _ext("pa-needed", valueCode="conditional"),
            _ext("info-needed", valueCode="location"),
            _ext("billingCode", valueCoding={"system": "http://www.ama-assn.org/go/cpt", "code": code}),
        ]
    else:
        diagnoses = _diagnoses(order, ctx)
        answer = rt.catalog.requires_pa(
            code=code,
            state=state,
            date_of_service=_service_date(order, today),
            place_of_service=_place_of_service(order),
            request_date=today,
            diagnosis_codes=tuple(diagnoses),
            other_codes=tuple(c for c in codes if c != code),
        )
        subs += [
            _ext("covered", valueCode="covered"),
        ]
        billing = _ext("billingCode", valueCoding={"system": "http://www.ama-assn.org/go/cpt", "code": code})
        if not answer.required:
            subs += [
                _ext("pa-needed", valueCode="no-auth"),
                billing,
                _detail("instructions", "cat-other", valueString=answer.reason),
            ]
        else:
            profile = rt.profile
            exemption = matching_exemption(profile, diagnoses) if profile.exemptions.enabled else None
            npi = _npi(order, ctx)
            gold = (
                profile.gold_card.enabled
                and npi is not None
                and answer.category is not None
                and active_gold_card(session, npi=npi, category=answer.category, at=now) is not None
            )
            policy = rt.criteria.for_policy(answer.policy) if answer.policy else None
            if gold:
                subs += [
                    _ext("pa-needed", valueCode="no-auth"),
                    _ext(
                        "reason", valueCodeableConcept={"coding": [{"system": CRD_TEMP, "code": "gold-card"}]}
                    ),
                    billing,
                    _detail(
                        "instructions",
                        "cat-other",
                        valueString=f"Provider {npi} holds a WISeR gold card for {answer.category}",
                    ),
                ]
            elif exemption is not None and not profile.exemptions.require_attestation:
                subs += [
                    _ext("pa-needed", valueCode="no-auth"),
                    _ext(
                        "reason",
                        valueCodeableConcept={
                            "coding": [
                                {
                                    "system": CS_CRD_REASON,
                                    "code": "time-sensitive",
                                    "display": f"Time-sensitive care exemption ({exemption})",
                                }
                            ]
                        },
                    ),
                    billing,
                ]
            else:
                subs += [_ext("pa-needed", valueCode="auth-needed")]
                if exemption is not None:
                    subs.append(
                        _ext(
                            "reason",
                            valueCodeableConcept={
                                "coding": [
                                    {
                                        "system": CS_CRD_REASON,
                                        "code": "time-sensitive",
                                        "display": f"Time-sensitive care exemption ({exemption}): "
                                        "submit with "
                                        "the clinician's attestation and it is affirmed on receipt",
                                    }
                                ]
                            },
                        )
                    )
                if policy is not None:
                    subs.append(_ext("doc-needed", valueCode="clinical"))
                subs.append(billing)
                if policy is not None and policy.url:
                    subs.append(_detail("policy-link", "cat-decisional", valueUrl=policy.url))
                subs.append(_detail("instructions", "cat-other", valueString=answer.reason))
                if policy is not None:
                    subs.append(_ext("questionnaire", valueCanonical=questionnaire_url(policy.policy_id)))
    subs += [
        _ext("date", valueDate=today.isoformat()),
        _ext("coverage-assertion-id", valueString=assertion_id),
    ]
    return {"url": EXT_COVERAGE_INFO, "extension": subs}


def handle(
    session: Session,
    rt: Runtime,
    *,
    principal: Principal,
    service_id: str,
    body: Any,
    transport: httpx.BaseTransport | None = None,
) -> dict[str, Any]:
    """Answer one CDS Hooks call with coverage-information systemActions (no cards)."""
    if service_id not in HOOKS:
        raise FhirError.single("not-found", f"No CDS service {service_id!r}", "service", http_status=404)
    if not isinstance(body, dict) or not isinstance(body.get("context"), dict):
        raise FhirError.single(
            "structure", "A CDS Hooks request needs a JSON object with a context", "context"
        )
    if body.get("hook") != service_id:
        raise FhirError.single("value", f"hook {body.get('hook')!r} sent to the {service_id} service", "hook")
    if not isinstance(body.get("hookInstance"), str) or not body["hookInstance"]:
        raise FhirError.single("required", "hookInstance is required", "hookInstance")
    fetcher = _Fetcher(body, transport=transport, allow_private=rt.settings.webhook_allow_private)
    try:
        ctx = _Context(body, fetcher)
        orders = ctx.orders(service_id)
        if not orders:
            if service_id in ("order-dispatch",) and not fetcher.base:
                # CRD found-32: the orders were neither sent nor fetchable.
                raise FhirError.single(
                    "required",
                    "The dispatched orders were not prefetched and no fhirServer was given",
                    "context.dispatchedOrders",
                    http_status=412,
                )
            return {"cards": [], "systemActions": []}
        coverage = ctx.coverage()
        state = _state(ctx, session, principal)
        actions = []
        for order in orders:
            assertion_id = str(
                uuid.uuid5(
                    uuid.NAMESPACE_URL,
                    f"{WISERPA_FHIR_BASE}/crd/{body['hookInstance']}/{order.get('resourceType')}/{order.get('id')}",
                )
            )
            info = _coverage_information(
                session,
                rt,
                order=order,
                ctx=ctx,
                coverage=coverage,
                state=state,
                principal=principal,
                assertion_id=assertion_id,
            )
            if service_id in SUPPORTING_HOOKS:
                # hook-19: documentation is gathered later in the workflow, so supporting hooks do not ask.
                info["extension"] = [
                    e for e in info["extension"] if e["url"] not in ("doc-needed", "questionnaire")
                ]
            previous = [
                e
                for e in order.get("extension") or []
                if isinstance(e, dict) and e.get("url") == EXT_COVERAGE_INFO
            ]
            if previous == [info]:
                continue  # resp-35: nothing new for this order
            # resp-37: the update changes nothing but the coverage-information extension.
            updated = dict(order)
            updated["extension"] = [
                e
                for e in order.get("extension") or []
                if not (isinstance(e, dict) and e.get("url") == EXT_COVERAGE_INFO)
            ] + [info]
            actions.append(
                {
                    "type": "update",
                    "description": "Add WISeR coverage information to "
                    f"{order.get('resourceType')}/{order.get('id') or '(new)'}",
                    "resource": updated,
                }
            )
        return {"cards": [], "systemActions": actions}
    finally:
        fetcher.close()
