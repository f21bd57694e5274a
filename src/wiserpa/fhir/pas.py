"""Da Vinci PAS 2.2.1 (`Claim/$submit`, `Claim/$inquire`) translated to and from the engine's shapes.

Pure functions: a request Bundle (dict) in, a ``SubmitRequestIn`` or an ``FhirError`` out; a ``PasOutcome``
in, a PAS response Bundle out. No database, no clock (``now`` is passed in). Every refusal names the offending
element as a FHIRPath expression (PAS ``spec-39``).

Mapping decisions worth knowing:

* One WISeR request = one PAS Claim; every Claim.item becomes a service line and every item gets the same
  decision (WISeR issues one UTN per request).
* The UTN travels in ``reviewAction.number`` (X12 HCR02, as in the IG examples) and in
  ``ClaimResponse.preAuthRef`` (what the HL7 reference implementation reads).
* ``ClaimResponse.outcome`` is bound to complete|error|partial in PAS 2.2.1 (no ``queued``): a pended answer
  is ``complete`` with items at A4, exactly like the IG's pended example.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from wiserpa.fhir.outcome import FhirError, Issue
from wiserpa.fhir.validation import (
    PAS_SD,
    BundleIndex,
    Entry,
    check_invariant,
    contained,
    fhirpath,
    iter_references,
    structural_issues,
)
from wiserpa.policy.validation import is_valid_mbi, is_valid_npi
from wiserpa.requests.schemas import Channel, SubmitRequestIn, Urgency

__all__ = [
    "InquiryKey",
    "PasOutcome",
    "PasSubmission",
    "UpdateOrCancel",
    "inquiry_parameters",
    "inquiry_response_bundle",
    "parse_inquiry_bundle",
    "parse_pas_bundle",
    "parse_update_or_cancel",
    "pas_response_bundle",
    "to_submission",
    "unwrap_parameters",
]

# --- canonical URLs and code systems (exactly as the PAS 2.2.1 package spells them)

PROFILE_REQUEST_BUNDLE = PAS_SD + "profile-pas-request-bundle"
PROFILE_RESPONSE_BUNDLE = PAS_SD + "profile-pas-response-bundle"
PROFILE_INQUIRY_REQUEST_BUNDLE = PAS_SD + "profile-pas-inquiry-request-bundle"
PROFILE_INQUIRY_RESPONSE_BUNDLE = PAS_SD + "profile-pas-inquiry-response-bundle"
PROFILE_CLAIM_RESPONSE = PAS_SD + "profile-claimresponse"
PROFILE_CLAIM_INQUIRY_RESPONSE = PAS_SD + "profile-claiminquiryresponse"

EXT_LEVEL_OF_SERVICE = PAS_SD + "extension-levelOfServiceCode"
EXT_CERTIFICATION_TYPE = PAS_SD + "extension-certificationType"
EXT_REQUEST_TYPE = PAS_SD + "extension-serviceItemRequestType"
EXT_INFO_CANCELLED = PAS_SD + "modifierextension-infoCancelled"
EXT_INFO_CHANGED = PAS_SD + "extension-infoChanged"
EXT_AUTHORIZATION_NUMBER = PAS_SD + "extension-authorizationNumber"
EXT_ADMIN_REFERENCE = PAS_SD + "extension-administrationReferenceNumber"
EXT_ITEM_TRACE_NUMBER = PAS_SD + "extension-itemTraceNumber"
EXT_REVIEW_ACTION = PAS_SD + "extension-reviewAction"
EXT_REVIEW_ACTION_CODE = PAS_SD + "extension-reviewActionCode"
EXT_ITEM_PREAUTH_ISSUE_DATE = PAS_SD + "extension-itemPreAuthIssueDate"
EXT_ITEM_PREAUTH_PERIOD = PAS_SD + "extension-itemPreAuthPeriod"
EXT_CLAIM_RESPONSE_REVIEWER = PAS_SD + "extension-claimResponseReviewer"
# R5 cross-version extension the IG's surgical example uses for Claim.encounter.
EXT_CLAIM_ENCOUNTER = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Claim.encounter"

X12_306 = "https://codesystem.x12.org/005010/306"
X12_1322 = "https://codesystem.x12.org/005010/1322"
X12_1338 = "https://codesystem.x12.org/005010/1338"
ADJUDICATION_CS = "http://terminology.hl7.org/CodeSystem/adjudication"
CLAIM_TYPE_CS = "http://terminology.hl7.org/CodeSystem/claim-type"
PAS_TEMP_CODES = "http://hl7.org/fhir/us/davinci-pas/CodeSystem/PASTempCodes"
POS_CS = "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
MBI_SYSTEM = "http://hl7.org/fhir/sid/us-mbi"
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
# CPT and HCPCS as the IG and the RI spell them (the IG files CPT codes under the HCPCS system, too).
PROCEDURE_SYSTEMS = frozenset(
    {
        "http://www.ama-assn.org/go/cpt",
        "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
        "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
        "urn:oid:2.16.840.1.113883.6.12",
        "urn:oid:2.16.840.1.113883.6.285",
    }
)

# Our own canonical space, for what PAS has no element for. One constant so a deployment can rebase it.
WISERPA_FHIR_BASE = "https://wiserpa.org/fhir"
EXT_AFFIRMATION_BASIS = f"{WISERPA_FHIR_BASE}/StructureDefinition/extension-affirmationBasis"
CS_AFFIRMATION_BASIS = f"{WISERPA_FHIR_BASE}/CodeSystem/affirmation-basis"
CS_CRITERION = f"{WISERPA_FHIR_BASE}/CodeSystem/criterion"
CS_SUPPORTING_INFO = f"{WISERPA_FHIR_BASE}/CodeSystem/supporting-info"
REQUEST_ID_SYSTEM = f"{WISERPA_FHIR_BASE}/sid/request-id"

# The DTR QuestionnaireResponse item that carries the R1 clinician attestation instead of a clinical fact.
ATTESTATION_LINK_ID = "time_sensitive_attestation"

_CPT_HCPCS = re.compile(r"^(\d{4}[0-9A-Z]|[A-Z]\d{4})$")
_FACT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_STATE = re.compile(r"^[A-Za-z]{2}$")
_CLAIM_TYPES = frozenset({"institutional", "professional", "oral"})
_PROVIDER_TYPES = frozenset({"Practitioner", "PractitionerRole", "Organization"})
_MAX_FACTS = 200
_MAX_DIAGNOSES = 12

SubmissionKind = Literal["new", "update", "cancel"]
Decision = Literal["affirmed", "non_affirmed", "pended", "cancelled"]
AffirmationKind = Literal["criteria", "clinician", "deemed", "exempt", "gold_card"]


# --- result types


@dataclass
class PasSubmission:
    """A PAS request Bundle that passed the profile checks, plus its mapping to the engine shape."""

    bundle_identifier: str
    claim: dict[str, Any]
    bundle: dict[str, Any]
    kind: SubmissionKind = "new"
    submit: SubmitRequestIn | None = None
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)

    def require_submit(self) -> SubmitRequestIn:
        """The mapped submission, or the mapping errors raised as a 400 FhirError."""
        if self.submit is None:
            raise FhirError(
                self.errors or [Issue("error", "processing", "Nothing to submit", ["Bundle.entry[0]"])]
            )
        return self.submit


@dataclass(frozen=True)
class PasOutcome:
    """What the engine decided, in the terms the PAS response needs."""

    decision: Decision
    request_id: int
    affirmation_kind: AffirmationKind | None = None
    utn: str | None = None
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    # (criterion id, NCD/LCD citation text, plain-language statement of the unmet criterion)
    reasons: list[tuple[str, str, str]] = field(default_factory=list)
    status_text: str | None = None
    # The date, in the state's time zone, the decision was made: each item's preauthorization issue date. None
    # (a response built without the engine) falls back to the response's own date.
    issued_on: dt.date | None = None


@dataclass(frozen=True)
class InquiryKey:
    """What a `$inquire` Bundle asks for (X12 278 inquiry: patient, requester, optional numbers/codes)."""

    bundle_identifier: str
    claim_identifier: str
    member_ids: list[str]
    mbi: str | None
    provider_npi: str | None
    authorization_numbers: list[str]
    administration_reference_numbers: list[str]
    codes: list[str]
    service_date_from: dt.date | None
    service_date_to: dt.date | None
    claim: dict[str, Any]


@dataclass(frozen=True)
class UpdateOrCancel:
    """How a `$submit` Bundle relates to an earlier request."""

    kind: SubmissionKind
    claim_identifier: str
    original_identifier: str | None
    original_reference: str | None
    authorization_number: str | None
    cancelled_sequences: list[int]
    changed_sequences: list[int]
    added_sequences: list[int]


# --- small JSON helpers


def _ext(node: Any, url: str) -> list[dict[str, Any]]:
    if not isinstance(node, dict):
        return []
    return [e for e in node.get("extension") or [] if isinstance(e, dict) and e.get("url") == url]


def _modext(node: Any, url: str) -> list[dict[str, Any]]:
    if not isinstance(node, dict):
        return []
    return [e for e in node.get("modifierExtension") or [] if isinstance(e, dict) and e.get("url") == url]


def _codings(concept: Any) -> list[dict[str, Any]]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, dict) and isinstance(c.get("code"), str)]


def _code(concept: Any, system: str | None = None) -> str | None:
    for c in _codings(concept):
        if system is None or c.get("system") == system:
            return str(c["code"]).strip()
    return None


def _ext_code(node: Any, url: str) -> str | None:
    for e in _ext(node, url):
        code = _code(e.get("valueCodeableConcept"))
        if code is None and isinstance(e.get("valueCode"), str):
            code = e["valueCode"]
        if code:
            return code
    return None


def _identifier_str(ident: Any) -> str:
    if not isinstance(ident, dict):
        return ""
    system, value = ident.get("system") or "", ident.get("value") or ""
    return f"{system}|{value}" if system else str(value)


def _date(value: Any) -> dt.date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def _ref(node: Any, key: str) -> dict[str, Any] | None:
    value = node.get(key) if isinstance(node, dict) else None
    return value if isinstance(value, dict) else None


def _seq(item: dict[str, Any], default: int) -> int:
    seq = item.get("sequence")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else default


def _item_cancelled(item: dict[str, Any]) -> bool:
    if any(e.get("valueBoolean") is True for e in _modext(item, EXT_INFO_CANCELLED)):
        return True
    return _ext_code(item, EXT_CERTIFICATION_TYPE) == "3"


# --- Parameters wrapper


def unwrap_parameters(raw: Any, names: tuple[str, ...] = ("resource", "return", "responseBundle")) -> Any:
    """The Bundle inside a Parameters wrapper (any of ``names``); anything else comes back unchanged."""
    # $submit/$inquire post the Bundle bare, but generic FHIR allows a Parameters body; the IG's own inquiry
    # example names the output `responseBundle` while the OperationDefinition says `return` (INTEROP.md §1.1).
    if isinstance(raw, dict) and raw.get("resourceType") == "Parameters":
        for param in raw.get("parameter") or []:
            if (
                isinstance(param, dict)
                and param.get("name") in names
                and isinstance(param.get("resource"), dict)
            ):
                return param["resource"]
        raise FhirError.single(
            "required",
            f"Parameters must carry the Bundle in a parameter named {' or '.join(names)}",
            "Parameters.parameter",
        )
    return raw


# --- request Bundle checks


def _check_base_bundle(raw: Any, *, require_identifier: bool = True) -> tuple[dict[str, Any], BundleIndex]:
    """Structural R4 validity plus the request-bundle profile rules shared by $submit and $inquire."""
    if not isinstance(raw, dict):
        raise FhirError.single("structure", "The body must be a JSON FHIR Bundle", "Bundle")
    rtype = raw.get("resourceType")
    if rtype != "Bundle":
        raise FhirError.single(
            "structure",
            f"Expected a Bundle (profile-pas-request-bundle), got {rtype!r}",
            str(rtype or "Bundle"),
        )
    issues = structural_issues(raw, root="Bundle")
    if issues:
        raise FhirError(issues)
    issues = []
    if raw.get("type") != "collection":
        issues.append(Issue("error", "value", "Bundle.type must be 'collection'", ["Bundle.type"]))
    ident = raw.get("identifier")
    if require_identifier and not (isinstance(ident, dict) and ident.get("value")):
        issues.append(
            Issue(
                "error",
                "required",
                "Bundle.identifier (submitter transaction id) is required",
                ["Bundle.identifier"],
            )
        )
    if not raw.get("timestamp"):
        issues.append(Issue("error", "required", "Bundle.timestamp is required", ["Bundle.timestamp"]))
    entries = raw.get("entry") or []
    if not entries:
        issues.append(
            Issue(
                "error",
                "required",
                "The Bundle has no entries; the first must be the Claim",
                ["Bundle.entry"],
            )
        )
        raise FhirError(issues)
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        path = fhirpath("Bundle", "entry", i)
        full_url = entry.get("fullUrl")
        if not full_url:
            issues.append(Issue("error", "required", "entry.fullUrl is required", [f"{path}.fullUrl"]))
        elif full_url in seen:
            issues.append(
                Issue(
                    "error", "duplicate", f"fullUrl {full_url} appears twice (spec-14)", [f"{path}.fullUrl"]
                )
            )
        else:
            seen.add(full_url)
        if not isinstance(entry.get("resource"), dict):
            issues.append(Issue("error", "required", "entry.resource is required", [f"{path}.resource"]))
        for forbidden in ("request", "response", "search"):
            if forbidden in entry:
                issues.append(
                    Issue(
                        "error",
                        "structure",
                        f"entry.{forbidden} is not allowed in a PAS Bundle",
                        [f"{path}.{forbidden}"],
                    )
                )
    # The FHIRPath invariant is the rule; evaluating it costs ~0.3 ms, so the common case (a Claim first,
    # which satisfies it by definition) is recognized directly and the invariant runs only otherwise.
    first_is_claim = (
        isinstance(entries[0], dict) and (entries[0].get("resource") or {}).get("resourceType") == "Claim"
    )
    if not first_is_claim and not check_invariant(raw, "entry.first().resource is Claim"):
        first = (entries[0].get("resource") or {}).get("resourceType")
        issues.append(
            Issue(
                "error",
                "invariant",
                f"ClaimFirst: the first entry must be a Claim, not {first}",
                ["Bundle.entry[0].resource"],
            )
        )
    if issues:
        raise FhirError(issues)
    return raw, BundleIndex(raw)


def _may_be_immediate(item: dict[str, Any]) -> bool:
    """Whether an item could carry certification type 1 (immediate), the premise of ImmediateLevelOfCare."""
    for ext in item.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == EXT_CERTIFICATION_TYPE:
            concept = ext.get("valueCodeableConcept")
            codings = concept.get("coding") if isinstance(concept, dict) else None
            if any(isinstance(c, dict) and str(c.get("code")) == "1" for c in codings or []):
                return True
    return False


def _check_submit_bundle(raw: Any) -> tuple[dict[str, Any], BundleIndex]:
    """Unwrap and check a `$submit` body, refusing inquiry Bundles sent to the wrong operation."""
    raw = unwrap_parameters(raw)
    profiles = ((raw.get("meta") or {}).get("profile") or []) if isinstance(raw, dict) else []
    if any(str(p).startswith(PROFILE_INQUIRY_REQUEST_BUNDLE) for p in profiles):
        raise FhirError.single(
            "not-supported", "This is a PAS inquiry Bundle; send it to Claim/$inquire", "Bundle.meta.profile"
        )
    return _check_base_bundle(raw)


def _check_claim_refs(claim_entry: Entry, index: BundleIndex) -> list[Issue]:
    claim, cp = claim_entry.resource, claim_entry.path
    issues: list[Issue] = []
    expected = {"patient": {"Patient"}, "insurer": {"Organization"}, "provider": _PROVIDER_TYPES}
    for name, types in expected.items():
        ref = _ref(claim, name)
        if ref is None or not ref.get("reference"):
            issues.append(
                Issue(
                    "error",
                    "required",
                    f"Claim.{name} must reference a resource in the Bundle",
                    [f"{cp}.{name}"],
                )
            )
            continue
        target = index.resolve_ref(ref, from_entry=claim_entry)
        if target is None:
            issues.append(
                Issue(
                    "error",
                    "not-found",
                    f"Claim.{name} {ref['reference']} is not in the Bundle",
                    [f"{cp}.{name}"],
                )
            )
        elif target.resource.get("resourceType") not in types:
            issues.append(
                Issue(
                    "error",
                    "value",
                    f"Claim.{name} must be {'/'.join(sorted(types))}, "
                    f"not {target.resource.get('resourceType')}",
                    [f"{cp}.{name}"],
                )
            )
    # spec-13: every resource the Claim references travels in the Bundle. The prior Claim of an update may be
    # left out when it is itself an update (spec-66), so `related` is exempt.
    for steps, reference in iter_references(claim):
        if steps and steps[0] in ("patient", "insurer", "provider", "related"):
            continue
        if reference.startswith("#"):
            found = contained(claim, reference) is not None
        else:
            found = index.resolve(reference, from_full_url=claim_entry.full_url) is not None
        if not found:
            issues.append(
                Issue(
                    "error",
                    "not-found",
                    f"{reference} is referenced but not in the Bundle (spec-13)",
                    [fhirpath(cp, *steps)],
                )
            )
    return issues


def _check_claim(claim_entry: Entry, index: BundleIndex) -> tuple[SubmissionKind, list[Issue], list[Issue]]:
    """Profile-claim / profile-claim-update rules: (kind, errors, warnings)."""
    claim, cp = claim_entry.resource, claim_entry.path
    issues: list[Issue] = []
    warnings: list[Issue] = []
    if claim.get("status") != "active":
        issues.append(
            Issue("error", "value", "Claim.status must be 'active' (also when cancelling)", [f"{cp}.status"])
        )
    if claim.get("use") != "preauthorization":
        issues.append(Issue("error", "value", "Claim.use must be 'preauthorization'", [f"{cp}.use"]))
    idents = claim.get("identifier") or []
    if not 1 <= len(idents) <= 2:
        issues.append(Issue("error", "required", "Claim.identifier is required (1..2)", [f"{cp}.identifier"]))
    claim_type = _code(claim.get("type"), CLAIM_TYPE_CS)
    if claim_type not in _CLAIM_TYPES:
        issues.append(
            Issue(
                "error",
                "code-invalid",
                "Claim.type must be claim-type institutional|professional|oral",
                [f"{cp}.type"],
            )
        )
    related = claim.get("related") or []
    kind: SubmissionKind = "new"
    if related:
        kind = "update"
        if len(related) != 1 or not isinstance(related[0].get("claim"), dict):
            issues.append(
                Issue(
                    "error",
                    "structure",
                    "An update carries exactly one Claim.related.claim",
                    [f"{cp}.related"],
                )
            )
        elif _code(related[0].get("relationship")) != "prior":
            issues.append(
                Issue(
                    "error",
                    "value",
                    "Claim.related.relationship must be 'prior'",
                    [f"{cp}.related[0].relationship"],
                )
            )
    if _ext_code(claim, EXT_CERTIFICATION_TYPE) == "3":
        kind = "cancel"
    items = claim.get("item") or []
    if not items:
        issues.append(Issue("error", "required", "Claim.item is required (1..*)", [f"{cp}.item"]))
    for i, item in enumerate(items):
        ip = fhirpath(cp, "item", i)
        if not _codings(item.get("productOrService")):
            issues.append(
                Issue("error", "required", "item.productOrService needs a coding", [f"{ip}.productOrService"])
            )
        if not _ext(item, EXT_REQUEST_TYPE):
            issues.append(
                Issue(
                    "error",
                    "required",
                    "item extension serviceItemRequestType (X12 1525) is required",
                    [f"{ip}.extension"],
                )
            )
        if not _ext(item, EXT_CERTIFICATION_TYPE):
            issues.append(
                Issue(
                    "error",
                    "required",
                    "item extension certificationType (X12 1322) is required",
                    [f"{ip}.extension"],
                )
            )
        if not item.get("category"):
            # PAS 2.2.1 makes item.category 1..1, but Inferno's "conformant" request fixtures omit it and the
            # engine does not use it: refusing would fail the reference test kit for no gain.
            warnings.append(
                Issue(
                    "warning",
                    "required",
                    "item.category (X12 1365) is required by PAS 2.2.1",
                    [f"{ip}.category"],
                )
            )
        if not any(item.get(k) for k in ("locationCodeableConcept", "locationAddress", "locationReference")):
            issues.append(Issue("error", "required", "item.location[x] is required", [f"{ip}.location"]))
        # An "implies" holds when its premise is false; the premise can only be true for an item carrying the
        # certification-type extension with code 1, so only those items pay for the FHIRPath evaluation.
        if _may_be_immediate(item) and not check_invariant(
            {"resourceType": "Claim", **claim},
            f"item[{i}].extension.where(url='{EXT_CERTIFICATION_TYPE}' and value.coding.code='1').exists() "
            f"implies extension.where(url='{EXT_LEVEL_OF_SERVICE}').exists()",
        ):
            issues.append(
                Issue(
                    "error",
                    "invariant",
                    "ImmediateLevelOfCare: an immediate appeal needs levelOfServiceCode",
                    [ip],
                )
            )
    if items and kind == "update" and all(_item_cancelled(it) for it in items):
        kind = "cancel"
    issues.extend(_check_claim_refs(claim_entry, index))
    claims = index.of_type("Claim")
    if len(claims) > 2:
        issues.append(
            Issue(
                "error",
                "structure",
                "At most two Claims (the request and its prior version)",
                ["Bundle.entry"],
            )
        )
    return kind, issues, warnings


def parse_pas_bundle(raw: Any, *, state_hint: str | None = None) -> PasSubmission:
    """Validate a `$submit` body as a PAS 2.2.1 request Bundle and map it; FhirError (400) if it is not."""
    bundle, index = _check_submit_bundle(raw)
    claim_entry = index.first()
    assert claim_entry is not None  # _check_base_bundle guarantees a first entry
    kind, issues, warnings = _check_claim(claim_entry, index)
    if issues:
        raise FhirError(issues)
    parsed = PasSubmission(
        bundle_identifier=_identifier_str(bundle.get("identifier")),
        claim=claim_entry.resource,
        bundle=bundle,
        kind=kind,
    )
    if kind == "cancel":
        # A cancellation is routed by parse_update_or_cancel; there is nothing to evaluate.
        parsed.warnings = warnings
        return parsed
    try:
        parsed.submit = to_submission(parsed, state_hint=state_hint)
    except FhirError as exc:
        parsed.errors = exc.issues
    parsed.warnings = warnings + parsed.warnings
    return parsed


# --- PAS -> SubmitRequestIn


class _Mapper:
    """Collects mapped fields, their source FHIRPaths and the problems found on the way."""

    def __init__(self, parsed: PasSubmission) -> None:
        self.index = BundleIndex(parsed.bundle)
        first = self.index.first()
        if first is None or (first.resource is not parsed.claim and first.resource != parsed.claim):
            raise FhirError.single("invalid", "The Claim must be the first entry", "Bundle.entry[0].resource")
        self.claim_entry = first
        self.claim = first.resource
        self.cp = first.path
        self.issues: list[Issue] = []
        self.warnings: list[Issue] = []
        # pydantic loc prefix -> FHIRPath of the element the value came from
        self.paths: dict[tuple[str | int, ...], str] = {}

    def error(self, code: Any, msg: str, path: str) -> None:
        self.issues.append(Issue("error", code, msg, [path]))

    def resolve(self, ref: Any, holder: Entry | None = None) -> Entry | None:
        return self.index.resolve_ref(ref, from_entry=holder or self.claim_entry)

    # beneficiary --------------------------------------------------------------------------------------------

    def beneficiary(self) -> dict[str, Any] | None:
        patient = self.resolve(_ref(self.claim, "patient"))
        if patient is None:
            self.error("not-found", "Claim.patient is not in the Bundle", f"{self.cp}.patient")
            return None
        candidates: list[tuple[int, str, str]] = []  # (priority, value, path)
        for i, ident in enumerate(patient.resource.get("identifier") or []):
            value = str(ident.get("value") or "").strip()
            if not value:
                continue
            types = {c.get("code") for c in _codings(ident.get("type")) if c.get("system") in (V2_0203, None)}
            path = fhirpath(patient.path, "identifier", i, "value")
            if ident.get("system") == MBI_SYSTEM:
                candidates.append((0, value, path))
            elif "MC" in types:
                candidates.append((1, value, path))
            elif "MB" in types:
                candidates.append((2, value, path))
            else:
                candidates.append((4, value, path))
        for ins in self.claim.get("insurance") or []:
            cov = self.resolve(_ref(ins, "coverage"))
            if cov is None:
                continue
            if cov.resource.get("subscriberId"):
                candidates.append((3, str(cov.resource["subscriberId"]).strip(), f"{cov.path}.subscriberId"))
            for k, ident in enumerate(cov.resource.get("identifier") or []):
                if ident.get("value"):
                    candidates.append(
                        (3, str(ident["value"]).strip(), fhirpath(cov.path, "identifier", k, "value"))
                    )
        candidates.sort(key=lambda c: c[0])
        for _prio, value, path in candidates:
            norm = value.replace("-", "").upper()
            if is_valid_mbi(norm):
                self.paths[("beneficiary",)] = path
                out: dict[str, Any] = {"mbi": norm}
                birth = _date(patient.resource.get("birthDate"))
                if birth is not None and len(patient.resource.get("birthDate", "")) == 10:
                    out["birth_date"] = birth
                return out
        if candidates and candidates[0][0] <= 2:
            self.error(
                "value",
                f"{candidates[0][1]!r} is not a valid Medicare Beneficiary Identifier",
                candidates[0][2],
            )
        else:
            self.error(
                "required",
                f"No Medicare Beneficiary Identifier: expected Patient.identifier with system {MBI_SYSTEM} "
                "(or type MB/MC) or Coverage.subscriberId holding a valid MBI",
                f"{patient.path}.identifier",
            )
        return None

    # provider -----------------------------------------------------------------------------------------------

    @staticmethod
    def _npi_of(entry: Entry) -> tuple[str, str] | None:
        for i, ident in enumerate(entry.resource.get("identifier") or []):
            if ident.get("system") == NPI_SYSTEM and ident.get("value"):
                return str(ident["value"]).strip(), fhirpath(entry.path, "identifier", i, "value")
        return None

    @staticmethod
    def _name_of(entry: Entry) -> str | None:
        res = entry.resource
        if isinstance(res.get("name"), str):
            return str(res["name"])[:200]
        for name in res.get("name") or []:
            if isinstance(name, dict):
                if name.get("text"):
                    return str(name["text"])[:200]
                parts = [*(name.get("given") or []), name.get("family") or ""]
                text = " ".join(p for p in parts if p).strip()
                if text:
                    return text[:200]
        return None

    def _clinician(self, entry: Entry) -> Entry | None:
        """The Practitioner behind a Practitioner/PractitionerRole entry."""
        rtype = entry.resource.get("resourceType")
        if rtype == "Practitioner":
            return entry
        if rtype == "PractitionerRole":
            return self.resolve(_ref(entry.resource, "practitioner"), entry)
        return None

    def provider(self) -> tuple[dict[str, Any] | None, str | None]:
        requester = self.resolve(_ref(self.claim, "provider"))
        if requester is None:
            self.error("not-found", "Claim.provider is not in the Bundle", f"{self.cp}.provider")
            return None, None
        org: Entry | None = None
        people: list[Entry] = []
        rtype = requester.resource.get("resourceType")
        if rtype == "Organization":
            org = requester
            # The requesting clinician of an organisation request is the claim-level care-team member.
            for team in sorted(self.claim.get("careTeam") or [], key=lambda t: _seq(t, 0)):
                scope = [e.get("valueBoolean") for e in _ext(team, PAS_SD + "extension-careTeamClaimScope")]
                member = self.resolve(_ref(team, "provider"))
                if member is not None and scope != [False]:
                    people.append(member)
        else:
            people.append(requester)
            if rtype == "PractitionerRole":
                org = self.resolve(_ref(requester.resource, "organization"), requester)
        npi: tuple[str, str] | None = None
        name: str | None = None
        for person in people:
            clinician = self._clinician(person)
            # A PractitionerRole may carry the NPI itself; prefer the person's own NPI.
            found = (self._npi_of(clinician) if clinician else None) or self._npi_of(person)
            if found:
                npi, name = found, self._name_of(clinician or person)
                break
        org_npi = self._npi_of(org) if org else None
        if npi is None and org_npi is not None:
            # A group NPI is still an NPI the engine can check and key gold-card history on.
            npi, name = org_npi, self._name_of(org) if org else None
        if npi is None:
            self.error(
                "required",
                f"No requesting-provider NPI: expected an identifier with system {NPI_SYSTEM} on the "
                "Practitioner/PractitionerRole/Organization Claim.provider points at",
                f"{self.cp}.provider",
            )
            return None, None
        if not is_valid_npi(npi[0]):
            self.error("value", f"{npi[0]!r} is not a valid NPI (10 digits, Luhn check digit)", npi[1])
            return None, None
        self.paths[("provider",)] = npi[1]
        organization_npi = None
        if org_npi and org_npi[0] != npi[0] and is_valid_npi(org_npi[0]):
            organization_npi = org_npi[0]
            self.paths[("organization_npi",)] = org_npi[1]
        out: dict[str, Any] = {"npi": npi[0]}
        if name:
            out["name"] = name
        return out, organization_npi

    # lines, diagnoses, place, date, state -------------------------------------------------------------------

    def active_items(self) -> list[tuple[int, dict[str, Any]]]:
        items = [(i, it) for i, it in enumerate(self.claim.get("item") or []) if not _item_cancelled(it)]
        if not items:
            self.error(
                "required", "Every Claim.item is cancelled; there is nothing to review", f"{self.cp}.item"
            )
        return items

    def lines(self, items: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        # A rule about the lines as a whole (how many) is about Claim.item.
        self.paths[("lines",)] = f"{self.cp}.item"
        for i, item in items:
            ip = fhirpath(self.cp, "item", i)
            codings = _codings(item.get("productOrService"))
            code = next((c["code"] for c in codings if c.get("system") in PROCEDURE_SYSTEMS), None)
            if code is None:
                code = next((c["code"] for c in codings if not c.get("system")), None)
            if code is None or not _CPT_HCPCS.match(code.strip().upper()):
                shown = ", ".join(f"{c.get('system')}|{c['code']}" for c in codings) or "none"
                self.error(
                    "code-invalid",
                    f"item.productOrService has no CPT/HCPCS code (found {shown})",
                    f"{ip}.productOrService",
                )
                continue
            line: dict[str, Any] = {"code": code.strip().upper()}
            n = len(out)
            self.paths[("lines", n)] = f"{ip}.productOrService"
            mods = [m for m in (_code(mod) for mod in item.get("modifier") or []) if m]
            if mods:
                line["modifiers"] = mods
                self.paths[("lines", n, "modifiers")] = f"{ip}.modifier"
            qty = (item.get("quantity") or {}).get("value")
            if qty is not None:
                self.paths[("lines", n, "units")] = f"{ip}.quantity"
                if isinstance(qty, int | float) and float(qty).is_integer():
                    line["units"] = int(qty)
                else:
                    self.error(
                        "value", f"item.quantity {qty!r} is not a whole number of units", f"{ip}.quantity"
                    )
                    continue
            out.append(line)
        return out

    def _condition_codes(self, ref: Any) -> list[str]:
        cond = self.resolve(ref)
        if cond is None:
            return []
        return [c["code"] for c in _codings(cond.resource.get("code")) if c.get("system") == ICD10CM]

    def diagnoses(self) -> list[str]:
        dxs = sorted(self.claim.get("diagnosis") or [], key=lambda d: _seq(d, 0))
        if not dxs:
            self.error(
                "required",
                "Claim.diagnosis is required: WISeR review needs ICD-10-CM codes",
                f"{self.cp}.diagnosis",
            )
            return []
        codes: list[str] = []
        for dx in dxs:
            found = [
                c["code"] for c in _codings(dx.get("diagnosisCodeableConcept")) if c.get("system") == ICD10CM
            ]
            if not found and dx.get("diagnosisReference"):
                found = self._condition_codes(dx.get("diagnosisReference"))
            codes.extend(c.strip() for c in found if c.strip() not in codes)
        self.paths[("diagnosis_codes",)] = f"{self.cp}.diagnosis"
        if not codes:
            self.error("code-invalid", f"Claim.diagnosis has no {ICD10CM} code", f"{self.cp}.diagnosis")
        if len(codes) > _MAX_DIAGNOSES:
            # X12 278 carries only the first 12 diagnoses (INTEROP.md §1.3); the rest cannot reach review.
            self.warnings.append(
                Issue("warning", "value", "Only the first 12 diagnoses are used", [f"{self.cp}.diagnosis"])
            )
            codes = codes[:_MAX_DIAGNOSES]
        return codes

    def _service_locations(self, items: list[tuple[int, dict[str, Any]]]) -> list[Entry]:
        out: list[Entry] = []
        for _i, item in items:
            loc = self.resolve(item.get("locationReference"))
            if loc is not None:
                out.append(loc)
        facility = self.resolve(self.claim.get("facility"))
        if facility is not None:
            out.append(facility)
        for ext in _ext(self.claim, EXT_CLAIM_ENCOUNTER):
            enc = self.resolve(ext.get("valueReference"))
            if enc is None:
                continue
            for loc_ref in enc.resource.get("location") or []:
                loc = self.resolve(_ref(loc_ref, "location"), enc)
                if loc is not None:
                    out.append(loc)
        requester = self.resolve(_ref(self.claim, "provider"))
        if requester is not None and requester.resource.get("resourceType") == "PractitionerRole":
            for loc_ref in requester.resource.get("location") or []:
                loc = self.resolve(loc_ref, requester)
                if loc is not None:
                    out.append(loc)
        return out

    def place_of_service(self, items: list[tuple[int, dict[str, Any]]]) -> str | None:
        found: dict[str, str] = {}
        for i, item in items:
            concept = item.get("locationCodeableConcept")
            code = _code(concept, POS_CS) or next(
                (c["code"] for c in _codings(concept) if not c.get("system")), None
            )
            if code:
                found.setdefault(code.strip(), fhirpath(self.cp, "item", i, "locationCodeableConcept"))
        if not found:
            for loc in self._service_locations(items):
                for concept in loc.resource.get("type") or []:
                    code = _code(concept, POS_CS)
                    if code:
                        found.setdefault(code.strip(), f"{loc.path}.type")
        if len(found) > 1:
            self.error(
                "value",
                f"Items name different places of service ({', '.join(sorted(found))}); "
                "one request has one place of service",
                f"{self.cp}.item",
            )
            return None
        if not found:
            self.error(
                "required",
                f"No place of service: expected item.locationCodeableConcept from {POS_CS}",
                fhirpath(self.cp, "item", items[0][0] if items else 0, "location"),
            )
            return None
        code, path = next(iter(found.items()))
        self.paths[("place_of_service",)] = path
        return code

    def date_of_service(self, items: list[tuple[int, dict[str, Any]]]) -> dt.date | None:
        dates: list[tuple[dt.date, str]] = []
        for i, item in items:
            ip = fhirpath(self.cp, "item", i)
            d = _date(item.get("servicedDate"))
            if d is not None:
                dates.append((d, f"{ip}.servicedDate"))
            d = _date((item.get("servicedPeriod") or {}).get("start"))
            if d is not None:
                dates.append((d, f"{ip}.servicedPeriod.start"))
        if not dates:
            for j, info in enumerate(self.claim.get("supportingInfo") or []):
                if _code(info.get("category"), PAS_TEMP_CODES) in ("patientEvent", "admissionDates"):
                    d = _date(info.get("timingDate")) or _date((info.get("timingPeriod") or {}).get("start"))
                    if d is not None:
                        dates.append((d, fhirpath(self.cp, "supportingInfo", j, "timing")))
        if not dates:
            self.error(
                "required",
                "No date of service: expected item.servicedDate or item.servicedPeriod.start",
                fhirpath(self.cp, "item", items[0][0] if items else 0, "serviced"),
            )
            return None
        when, path = min(dates)
        self.paths[("date_of_service",)] = path
        return when

    def state(self, items: list[tuple[int, dict[str, Any]]], hint: str | None) -> str | None:
        sources: list[tuple[Any, str]] = []
        for i, item in items:
            sources.append((item.get("locationAddress"), fhirpath(self.cp, "item", i, "locationAddress")))
        for loc in self._service_locations(items):
            sources.append((loc.resource.get("address"), f"{loc.path}.address"))
        patient = self.resolve(_ref(self.claim, "patient"))
        if patient is not None:
            addresses = patient.resource.get("address") or []
            # A home address is where a Medicare beneficiary "lives"; prefer it over billing/temporary ones.
            ordered = sorted(enumerate(addresses), key=lambda a: 0 if a[1].get("use") == "home" else 1)
            for k, addr in ordered:
                sources.append((addr, fhirpath(patient.path, "address", k)))
        for addr, path in sources:
            state = addr.get("state") if isinstance(addr, dict) else None
            if isinstance(state, str) and _STATE.match(state.strip()):
                self.paths[("state",)] = f"{path}.state"
                return state.strip().upper()
        if hint:
            return hint.strip().upper()
        self.error(
            "required",
            "No service state: expected a state on the service Location or the Patient address",
            f"{self.cp}.item[0].location",
        )
        return None

    def urgency(self) -> Urgency:
        code = _ext_code(self.claim, EXT_LEVEL_OF_SERVICE)
        # X12 1338 UM06: U urgent -> expedited; E elective and anything else -> standard.
        return Urgency.EXPEDITED if code == "U" else Urgency.STANDARD

    # DTR facts, attestation, attachments, notes -------------------------------------------------------------

    def _questionnaire_responses(self) -> list[tuple[dict[str, Any], str]]:
        out: list[tuple[dict[str, Any], str]] = []
        seen: set[int] = set()
        for k, res in enumerate(self.claim.get("contained") or []):
            if isinstance(res, dict) and res.get("resourceType") == "QuestionnaireResponse":
                out.append((res, fhirpath(self.cp, "contained", k)))
                seen.add(id(res))
        for entry in self.index.of_type("QuestionnaireResponse"):
            if id(entry.resource) not in seen:
                out.append((entry.resource, entry.path))
        return out

    @staticmethod
    def _answer_value(answer: dict[str, Any]) -> Any:
        for key in (
            "valueBoolean",
            "valueDecimal",
            "valueInteger",
            "valueString",
            "valueDate",
            "valueDateTime",
            "valueTime",
            "valueUri",
        ):
            if key in answer:
                # Dates stay ISO strings so a FHIR submission carries the same JSON facts as a REST one.
                return answer[key]
        if "valueCoding" in answer:
            return (answer["valueCoding"] or {}).get("code")
        if "valueQuantity" in answer:
            return (answer["valueQuantity"] or {}).get("value")
        return None

    def facts(self) -> tuple[dict[str, Any], bool]:
        facts: dict[str, Any] = {}
        attested = False

        def walk(items: list[Any], path: str) -> None:
            nonlocal attested
            for n, item in enumerate(items):
                if not isinstance(item, dict):
                    continue
                ip = fhirpath(path, "item", n)
                link = item.get("linkId")
                values = [
                    v
                    for v in (self._answer_value(a) for a in item.get("answer") or [] if isinstance(a, dict))
                    if v is not None
                ]
                if isinstance(link, str) and _FACT_NAME.match(link) and values:
                    value = values[0] if len(values) == 1 else values
                    if link == ATTESTATION_LINK_ID:
                        attested = attested or value is True
                    elif link in facts and facts[link] != value:
                        self.warnings.append(
                            Issue(
                                "warning",
                                "duplicate",
                                f"fact {link!r} answered twice; the first answer is used",
                                [ip],
                            )
                        )
                    else:
                        facts.setdefault(link, value)
                        self.paths.setdefault(("clinical_facts",), ip)
                walk(item.get("item") or [], ip)
                for a, answer in enumerate(item.get("answer") or []):
                    if isinstance(answer, dict):
                        walk(answer.get("item") or [], fhirpath(ip, "answer", a))

        for qr, path in self._questionnaire_responses():
            walk(qr.get("item") or [], path)
        if len(facts) > _MAX_FACTS:
            self.error("value", f"Too many clinical facts ({len(facts)}; at most {_MAX_FACTS})", self.cp)
        for j, info in enumerate(self.claim.get("supportingInfo") or []):
            # PAS has no category for the R1 attestation; we define CS_SUPPORTING_INFO code
            # time-sensitive-attestation but accept it (and spelling variants) from any system.
            codes = {c["code"] for c in _codings(info.get("category"))}
            if codes & {
                "time_sensitive_attestation",
                "time-sensitive-attestation",
                "timeSensitiveAttestation",
            }:
                if info.get("valueBoolean") is True:
                    attested = True
                elif "valueBoolean" not in info:
                    self.error(
                        "value",
                        "the time-sensitive attestation needs valueBoolean",
                        fhirpath(self.cp, "supportingInfo", j),
                    )
        return facts, attested

    def attachments_and_notes(self) -> tuple[list[dict[str, Any]], str | None]:
        attachments: list[dict[str, Any]] = []
        notes: list[str] = []
        for info in self.claim.get("supportingInfo") or []:
            category = _code(info.get("category"), PAS_TEMP_CODES)
            if category == "freeFormMessage" and isinstance(info.get("valueString"), str):
                notes.append(info["valueString"])
            candidates: list[tuple[dict[str, Any], str | None]] = []
            if isinstance(info.get("valueAttachment"), dict):
                candidates.append((info["valueAttachment"], None))
            doc = self.resolve(info.get("valueReference"))
            if doc is not None and doc.resource.get("resourceType") == "DocumentReference":
                fallback = doc.resource.get("description") or (doc.resource.get("type") or {}).get("text")
                for content in doc.resource.get("content") or []:
                    if isinstance(content.get("attachment"), dict):
                        candidates.append((content["attachment"], fallback or "DocumentReference"))
            for att, fallback in candidates:
                item: dict[str, Any] = {
                    "title": str(att.get("title") or fallback or "attachment")[:200],
                    "content_type": str(att.get("contentType") or "application/octet-stream")[:100],
                }
                if isinstance(att.get("size"), int) and att["size"] >= 0:
                    item["size_bytes"] = att["size"]
                attachments.append(item)
        note = "\n".join(notes)[:4000] if notes else None
        return attachments[:50], note


def _loc_path(paths: dict[tuple[str | int, ...], str], loc: tuple[Any, ...], fallback: str) -> str:
    for n in range(len(loc), 0, -1):
        hit = paths.get(tuple(loc[:n]))
        if hit is not None:
            return hit
    return fallback


def to_submission(parsed: PasSubmission, *, state_hint: str | None = None) -> SubmitRequestIn:
    """Map a parsed PAS request to ``SubmitRequestIn``; FhirError (400) names what cannot be mapped."""
    m = _Mapper(parsed)
    beneficiary = m.beneficiary()
    provider, organization_npi = m.provider()
    items = m.active_items()
    lines = m.lines(items)
    diagnoses = m.diagnoses()
    pos = m.place_of_service(items) if items else None
    when = m.date_of_service(items) if items else None
    state = m.state(items, state_hint)
    facts, attested = m.facts()
    attachments, notes = m.attachments_and_notes()
    revenue = next(
        (code for _i, it in items if (code := _code(it.get("revenue"))) and re.fullmatch(r"\d{4}", code)),
        None,
    )
    parsed.warnings = m.warnings
    if m.issues:
        raise FhirError(m.issues)
    data: dict[str, Any] = {
        "state": state,
        "provider": provider,
        "organization_npi": organization_npi,
        "beneficiary": beneficiary,
        "lines": lines,
        "diagnosis_codes": diagnoses,
        "place_of_service": pos,
        "date_of_service": when,
        "urgency": m.urgency(),
        "channel": Channel.FHIR,
        "revenue_code": revenue,
        "time_sensitive_attestation": attested,
        "clinical_facts": facts,
        "attachments": attachments,
        "notes": notes,
    }
    try:
        return SubmitRequestIn.model_validate(data)
    except ValidationError as exc:
        raise FhirError(
            [
                Issue(
                    "error",
                    "value",
                    f"{'.'.join(str(s) for s in err['loc'])}: {err['msg']}",
                    [_loc_path(m.paths, tuple(err["loc"]), m.cp)],
                )
                for err in exc.errors()
            ]
        ) from None


# --- update / cancel


def parse_update_or_cancel(raw: Any) -> UpdateOrCancel:
    """Classify a `$submit` Bundle as new, update (Claim.related prior) or cancel (certificationType 3)."""
    _bundle, index = _check_submit_bundle(raw)
    claim_entry = index.first()
    assert claim_entry is not None
    kind, issues, _warnings = _check_claim(claim_entry, index)
    if issues:
        raise FhirError(issues)
    claim = claim_entry.resource
    original_identifier = original_reference = None
    related = (claim.get("related") or [{}])[0]
    rel_claim = related.get("claim") if isinstance(related, dict) else None
    if isinstance(rel_claim, dict):
        original_reference = rel_claim.get("reference")
        if isinstance(rel_claim.get("identifier"), dict):
            original_identifier = _identifier_str(rel_claim["identifier"])
        else:
            prior = index.resolve_ref(rel_claim, from_entry=claim_entry)
            if prior is not None and prior.resource.get("identifier"):
                original_identifier = _identifier_str(prior.resource["identifier"][0])
    auth = next(
        (e.get("valueString") for e in _ext(claim, EXT_AUTHORIZATION_NUMBER) if e.get("valueString")), None
    )
    if auth is None:
        auth = next(
            (
                e.get("valueString")
                for it in claim.get("item") or []
                for e in _ext(it, EXT_AUTHORIZATION_NUMBER)
                if e.get("valueString")
            ),
            None,
        )
    if kind != "new" and original_identifier is None and original_reference is None and auth is None:
        raise FhirError.single(
            "required",
            "An update or cancel must name the original request (Claim.related.claim or authorizationNumber)",
            f"{claim_entry.path}.related",
        )
    items = claim.get("item") or []
    changes = {
        code: [
            _seq(it, i + 1)
            for i, it in enumerate(items)
            if any(e.get("valueCode") == code for e in _ext(it, EXT_INFO_CHANGED))
        ]
        for code in ("changed", "added")
    }
    return UpdateOrCancel(
        kind=kind,
        claim_identifier=_identifier_str((claim.get("identifier") or [{}])[0]),
        original_identifier=original_identifier,
        original_reference=original_reference,
        authorization_number=auth,
        cancelled_sequences=[_seq(it, i + 1) for i, it in enumerate(items) if _item_cancelled(it)],
        changed_sequences=changes["changed"],
        added_sequences=changes["added"],
    )


# --- inquiry


def parse_inquiry_bundle(raw: Any) -> InquiryKey:
    """Validate a `$inquire` Bundle (profile-pas-inquiry-request-bundle) and extract what to look up."""
    bundle, index = _check_base_bundle(unwrap_parameters(raw))
    claim_entry = index.first()
    assert claim_entry is not None
    claim, cp = claim_entry.resource, claim_entry.path
    issues = _check_claim_refs(claim_entry, index)
    if claim.get("use") != "preauthorization":
        issues.append(Issue("error", "value", "Claim.use must be 'preauthorization'", [f"{cp}.use"]))
    idents = claim.get("identifier") or []
    if len(idents) != 1:
        issues.append(
            Issue(
                "error",
                "required",
                "Claim.identifier (the inquiry trace number) is required (1..1)",
                [f"{cp}.identifier"],
            )
        )
    if issues:
        raise FhirError(issues)
    patient = index.resolve_ref(claim.get("patient"), from_entry=claim_entry)
    member_ids: list[str] = []
    mbi: str | None = None
    for ident in (patient.resource.get("identifier") if patient else None) or []:
        value = str(ident.get("value") or "").strip()
        if value:
            member_ids.append(value)
            if mbi is None and is_valid_mbi(value.replace("-", "").upper()):
                mbi = value.replace("-", "").upper()
    for ins in claim.get("insurance") or []:
        cov = index.resolve_ref(_ref(ins, "coverage"), from_entry=claim_entry)
        if cov is not None and cov.resource.get("subscriberId"):
            member_ids.append(str(cov.resource["subscriberId"]))
            sub = str(cov.resource["subscriberId"]).replace("-", "").upper()
            if mbi is None and is_valid_mbi(sub):
                mbi = sub
    member_ids = list(dict.fromkeys(member_ids))
    if not member_ids:
        raise FhirError.single(
            "required", "An inquiry must identify the patient by member id (spec-52)", f"{cp}.patient"
        )
    npi: str | None = None
    requester = index.resolve_ref(claim.get("provider"), from_entry=claim_entry)
    if requester is not None:
        people = [requester]
        if requester.resource.get("resourceType") == "PractitionerRole":
            prac = index.resolve_ref(requester.resource.get("practitioner"), from_entry=requester)
            people = [p for p in (prac, requester) if p is not None]
        for person in people:
            found = _Mapper._npi_of(person)
            if found:
                npi = found[0]
                break
    auth_numbers: list[str] = []
    admin_numbers: list[str] = []
    for node in [claim, *(claim.get("item") or [])]:
        auth_numbers += [
            e["valueString"] for e in _ext(node, EXT_AUTHORIZATION_NUMBER) if e.get("valueString")
        ]
        admin_numbers += [e["valueString"] for e in _ext(node, EXT_ADMIN_REFERENCE) if e.get("valueString")]
    codes: list[str] = []
    dates: list[dt.date] = []
    for item in claim.get("item") or []:
        code = _code(item.get("productOrService"))
        # `not-applicable` means "any service" (spec-43).
        if code and code != "not-applicable":
            codes.append(code)
        for when in (
            item.get("servicedDate"),
            (item.get("servicedPeriod") or {}).get("start"),
            (item.get("servicedPeriod") or {}).get("end"),
        ):
            d = _date(when)
            if d is not None:
                dates.append(d)
    return InquiryKey(
        bundle_identifier=_identifier_str(bundle.get("identifier")),
        claim_identifier=_identifier_str(idents[0]),
        member_ids=member_ids,
        mbi=mbi,
        provider_npi=npi,
        authorization_numbers=auth_numbers,
        administration_reference_numbers=admin_numbers,
        codes=codes,
        service_date_from=min(dates) if dates else None,
        service_date_to=max(dates) if dates else None,
        claim=claim,
    )


# --- responses

_REVIEW_ACTION_DISPLAY = {
    "A1": "Certified in total",
    "A3": "Not Certified",
    "A4": "Pending",
    "C": "Cancelled",
}
_BASIS_DISPLAY = {
    "criteria": "Affirmed: documented facts meet every NCD/LCD criterion",
    "clinician": "Affirmed by a clinician reviewer",
    "deemed": "Deemed affirmed: the review deadline passed without a decision",
    "exempt": "Exempt: time-sensitive care affirmed without review (audited afterwards)",
    "gold_card": "Exempt: the provider holds a gold card for this service",
}


def _iso_instant(now: dt.datetime) -> str:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (FHIR instants carry an offset)")
    return now.isoformat(timespec="seconds")


def _review_code(outcome: PasOutcome) -> str:
    return {"affirmed": "A1", "non_affirmed": "A3", "pended": "A4", "cancelled": "C"}[outcome.decision]


def _check_outcome(outcome: PasOutcome) -> None:
    if outcome.decision in ("affirmed", "non_affirmed") and not outcome.utn:
        raise ValueError("an affirmation or non-affirmation carries a UTN")
    if outcome.decision == "affirmed":
        if outcome.affirmation_kind is None:
            raise ValueError("an affirmation names its kind")
        if outcome.valid_from is None or outcome.valid_until is None:
            raise ValueError("an affirmation carries its validity period")
    if outcome.decision == "non_affirmed" and not outcome.reasons:
        # WISeR and CMS-0057-F: every denial states its specific reasons.
        raise ValueError("a non-affirmation cites at least one unmet criterion")


def _item_entry(item: dict[str, Any], seq: int, outcome: PasOutcome, issued: dt.date) -> dict[str, Any]:
    code = _review_code(outcome)
    action: list[dict[str, Any]] = [
        {
            "url": EXT_REVIEW_ACTION_CODE,
            "valueCodeableConcept": {
                "coding": [{"system": X12_306, "code": code, "display": _REVIEW_ACTION_DISPLAY[code]}]
            },
        }
    ]
    if outcome.utn:
        action.append({"url": "number", "valueString": outcome.utn})
    if outcome.decision == "non_affirmed":
        for criterion_id, citation, statement in outcome.reasons:
            action.append(
                {
                    "url": "reasonCode",
                    "valueCodeableConcept": {
                        "coding": [
                            {"system": CS_CRITERION, "code": criterion_id, "display": statement[:250]}
                        ],
                        "text": f"{criterion_id}: {statement} ({citation})",
                    },
                }
            )
    adjudication: dict[str, Any] = {
        "extension": [{"url": EXT_REVIEW_ACTION, "extension": action}],
        "category": {"coding": [{"system": ADJUDICATION_CS, "code": "submitted"}]},
    }
    if outcome.decision == "affirmed" and outcome.affirmation_kind:
        basis = outcome.affirmation_kind.replace("_", "-")
        adjudication["extension"].append(
            {
                "url": EXT_AFFIRMATION_BASIS,
                "valueCoding": {
                    "system": CS_AFFIRMATION_BASIS,
                    "code": basis,
                    "display": _BASIS_DISPLAY[outcome.affirmation_kind],
                },
            }
        )
    extensions: list[dict[str, Any]] = [e for e in _ext(item, EXT_ITEM_TRACE_NUMBER)]
    if outcome.decision in ("affirmed", "non_affirmed"):
        extensions.append({"url": EXT_ITEM_PREAUTH_ISSUE_DATE, "valueDate": issued.isoformat()})
    if outcome.decision == "affirmed" and outcome.valid_from and outcome.valid_until:
        extensions.append(
            {
                "url": EXT_ITEM_PREAUTH_PERIOD,
                "valuePeriod": {
                    "start": outcome.valid_from.isoformat(),
                    "end": outcome.valid_until.isoformat(),
                },
            }
        )
    if outcome.decision == "pended":
        # The IG's pended example hands out an administration reference number to quote when asking later.
        extensions.append({"url": EXT_ADMIN_REFERENCE, "valueString": str(outcome.request_id)})
    out: dict[str, Any] = {}
    if extensions:
        out["extension"] = extensions
    out["itemSequence"] = seq
    if outcome.decision == "non_affirmed":
        out["noteNumber"] = list(range(1, len(outcome.reasons) + 1))
    out["adjudication"] = [adjudication]
    return out


def _absolute_ref(index: BundleIndex, holder: Entry, ref: Any) -> dict[str, Any] | None:
    """Copy a Reference so that it resolves by exact fullUrl whatever the ClaimResponse's own fullUrl is."""
    target = index.resolve_ref(ref, from_entry=holder)
    if target is None or not target.full_url:
        return None
    out: dict[str, Any] = {"reference": target.full_url}
    if isinstance(ref, dict) and ref.get("display"):
        out["display"] = ref["display"]
    return out


def _closure(index: BundleIndex, roots: list[Entry]) -> list[Entry]:
    """The roots plus every Bundle resource they reference, transitively, each once, in Bundle order."""
    seen: dict[int, Entry] = {}
    todo = list(roots)
    while todo:
        entry = todo.pop()
        if entry.index in seen:
            continue
        seen[entry.index] = entry
        for _steps, reference in iter_references(entry.resource):
            target = index.resolve(reference, from_full_url=entry.full_url)
            # The request Claim stays out: ClaimResponse.request names it by identifier instead.
            if (
                target is not None
                and target.index not in seen
                and target.resource.get("resourceType") != "Claim"
            ):
                todo.append(target)
    return [seen[k] for k in sorted(seen)]


def _claim_response(
    *, request_bundle: dict[str, Any], outcome: PasOutcome, now: dt.datetime, profile: str
) -> tuple[dict[str, Any], str, list[Entry]]:
    _check_outcome(outcome)
    created = _iso_instant(now)
    index = BundleIndex(request_bundle)
    claim_entry = index.first()
    if claim_entry is None or claim_entry.resource.get("resourceType") != "Claim":
        raise ValueError("request_bundle must be a PAS request Bundle whose first entry is the Claim")
    claim = claim_entry.resource
    cr_id = str(
        uuid.uuid5(
            uuid.NAMESPACE_URL,
            f"{WISERPA_FHIR_BASE}/ClaimResponse/{outcome.request_id}/{outcome.decision}/{created}",
        )
    )
    cr: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "id": cr_id,
        "meta": {"profile": [profile]},
    }
    reviewer_human: bool | None = None
    if outcome.decision == "non_affirmed" or outcome.affirmation_kind == "clinician":
        reviewer_human = True
    elif outcome.decision == "affirmed":
        reviewer_human = False
    if reviewer_human is not None:
        cr["extension"] = [
            {
                "url": EXT_CLAIM_RESPONSE_REVIEWER,
                "extension": [{"url": "wasHumanReviewedFlag", "valueBoolean": reviewer_human}],
            }
        ]
    cr["identifier"] = [{"system": REQUEST_ID_SYSTEM, "value": str(outcome.request_id)}]
    cr["status"] = "active"
    cr["type"] = claim.get("type") or {"coding": [{"system": CLAIM_TYPE_CS, "code": "professional"}]}
    cr["use"] = "preauthorization"
    roots: list[Entry] = []
    for src, dst in (("patient", "patient"), ("insurer", "insurer"), ("provider", "requestor")):
        ref = _absolute_ref(index, claim_entry, claim.get(src))
        if ref is None:
            raise ValueError(f"Claim.{src} does not resolve inside request_bundle")
        cr[dst] = ref
        target = index.resolve(ref["reference"])
        if target is not None:
            roots.append(target)
        if dst == "patient":
            # Keep R4's element order (patient, created, insurer, requestor) for readable output.
            cr["created"] = created
    claim_ident = (claim.get("identifier") or [None])[0]
    cr["request"] = {"identifier": claim_ident} if claim_ident else {"reference": claim_entry.full_url}
    cr["outcome"] = "complete"
    if outcome.status_text:
        cr["disposition"] = outcome.status_text[:1000]
    if outcome.utn:
        cr["preAuthRef"] = outcome.utn
    if outcome.decision == "affirmed" and outcome.valid_from and outcome.valid_until:
        cr["preAuthPeriod"] = {
            "start": outcome.valid_from.isoformat(),
            "end": outcome.valid_until.isoformat(),
        }
    items = claim.get("item") or []
    issued = outcome.issued_on or now.date()
    cr["item"] = [_item_entry(it, _seq(it, i + 1), outcome, issued) for i, it in enumerate(items)]
    if outcome.decision == "non_affirmed":
        cr["processNote"] = [
            {"number": n, "type": "display", "text": f"{cid}: {statement} ({citation})"}
            for n, (cid, citation, statement) in enumerate(outcome.reasons, start=1)
        ]
    return cr, f"urn:uuid:{cr_id}", _closure(index, roots)


def _response_bundle(
    *,
    request_bundle: dict[str, Any],
    cr: dict[str, Any],
    cr_url: str,
    echoed: list[Entry],
    now: dt.datetime,
    profile: str,
) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{cr_url}/bundle")),
        "meta": {"profile": [profile]},
    }
    if isinstance(request_bundle.get("identifier"), dict):
        # The IG examples echo the submitter's transaction identifier on the response Bundle.
        bundle["identifier"] = dict(request_bundle["identifier"])
    bundle["type"] = "collection"
    bundle["timestamp"] = _iso_instant(now)
    # spec-33: echoed resources keep the request's fullUrl and content.
    bundle["entry"] = [{"fullUrl": cr_url, "resource": cr}] + [
        {"fullUrl": e.full_url, "resource": e.resource} for e in echoed
    ]
    return bundle


def pas_response_bundle(
    *, request_bundle: dict[str, Any], outcome: PasOutcome, now: dt.datetime
) -> dict[str, Any]:
    """The PAS response Bundle for an outcome: ClaimResponse first, then the resources it references."""
    cr, cr_url, echoed = _claim_response(
        request_bundle=request_bundle, outcome=outcome, now=now, profile=PROFILE_CLAIM_RESPONSE
    )
    return _response_bundle(
        request_bundle=request_bundle,
        cr=cr,
        cr_url=cr_url,
        echoed=echoed,
        now=now,
        profile=PROFILE_RESPONSE_BUNDLE,
    )


def inquiry_response_bundle(
    *, inquiry_bundle: dict[str, Any], request_bundle: dict[str, Any], outcome: PasOutcome, now: dt.datetime
) -> dict[str, Any]:
    """One `$inquire` result Bundle: a stored request's current state, echoing the inquiry's identifier."""
    cr, cr_url, echoed = _claim_response(
        request_bundle=request_bundle, outcome=outcome, now=now, profile=PROFILE_CLAIM_INQUIRY_RESPONSE
    )
    bundle = _response_bundle(
        request_bundle=inquiry_bundle,
        cr=cr,
        cr_url=cr_url,
        echoed=echoed,
        now=now,
        profile=PROFILE_INQUIRY_RESPONSE_BUNDLE,
    )
    return bundle


def inquiry_parameters(bundles: list[dict[str, Any]]) -> dict[str, Any]:
    """Wrap `$inquire` result Bundles in Parameters as the OperationDefinition names them (`return`)."""
    return {"resourceType": "Parameters", "parameter": [{"name": "return", "resource": b} for b in bundles]}
