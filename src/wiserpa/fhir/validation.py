"""Shared FHIR helpers: FHIRPath builders, reference resolution in a Bundle, structural and profile checks.

Everything here is pure (dict in, issues out). ``fhir.resources.R4B`` checks base R4 structure only (no
profiles, slicing or bindings), so the PAS profile rules we rely on are checked by hand or, for the IG's
invariants, with ``fhirpathpy`` against the R4 model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import fhirpathpy
from fhir.resources.R4B import get_fhir_model_class
from fhirpathpy.models import models as _fhirpath_models
from pydantic import ValidationError

from wiserpa.fhir.outcome import Issue, IssueCode

__all__ = [
    "PAS_SD",
    "BundleIndex",
    "Entry",
    "body_issues",
    "check_invariant",
    "fhirpath",
    "iter_references",
    "structural_issues",
    "validate_response_bundle",
]

PAS_SD = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/"
EXT_REVIEW_ACTION = PAS_SD + "extension-reviewAction"
EXT_REVIEW_ACTION_CODE = PAS_SD + "extension-reviewActionCode"
X12_306 = "https://codesystem.x12.org/005010/306"
ADJUDICATION_CS = "http://terminology.hl7.org/CodeSystem/adjudication"
# X12 306 codes named by the IG and INTEROP.md §7 (the full list is X12-licensed).
REVIEW_ACTION_CODES = frozenset({"A1", "A2", "A3", "A4", "A6", "C", "CT", "NA"})
# PAS 2.2.1 binds ClaimResponse.outcome to ClaimResponseOutcome, which drops R4's `queued`.
PAS_OUTCOMES = frozenset({"complete", "error", "partial"})

_R4 = _fhirpath_models["r4"]
_MAX_STRUCTURAL_ISSUES = 50
# Real FHIR JSON nests a few dozen levels at most (extensions of extensions); deeper bodies are hostile and
# would exhaust the recursion of the validators that walk them.
MAX_JSON_DEPTH = 64
_RELATIVE_REF = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(/_history/[A-Za-z0-9\-.]{1,64})?$")
_RESTFUL_URL = re.compile(r"^(https?://.+)/([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(/_history/.*)?$")


def fhirpath(root: str, *steps: str | int) -> str:
    """Build a FHIRPath like ``Bundle.entry[0].resource.item[1].productOrService`` from names and indexes."""
    out = root
    for step in steps:
        out += f"[{step}]" if isinstance(step, int) else f".{step}"
    return out


@dataclass(frozen=True)
class Entry:
    """One Bundle entry as seen by the resolver."""

    index: int
    full_url: str | None
    resource: dict[str, Any]

    @property
    def path(self) -> str:
        """FHIRPath of this entry's resource inside its Bundle."""
        return fhirpath("Bundle", "entry", self.index, "resource")

    @property
    def type_id(self) -> str:
        """``Type/id`` of the resource (id may be empty)."""
        return f"{self.resource.get('resourceType', '')}/{self.resource.get('id', '')}"


class BundleIndex:
    """Resolves references between the entries of one Bundle (FHIR R4 §3.3.1.4 rules, leniently)."""

    def __init__(self, bundle: dict[str, Any]) -> None:
        self.entries: list[Entry] = []
        self._by_full_url: dict[str, Entry] = {}
        self._by_type_id: dict[str, list[Entry]] = {}
        for i, raw in enumerate(bundle.get("entry") or []):
            if not isinstance(raw, dict) or not isinstance(raw.get("resource"), dict):
                continue
            entry = Entry(
                i, raw.get("fullUrl") if isinstance(raw.get("fullUrl"), str) else None, raw["resource"]
            )
            self.entries.append(entry)
            if entry.full_url:
                self._by_full_url.setdefault(entry.full_url, entry)
            if entry.resource.get("id"):
                self._by_type_id.setdefault(entry.type_id, []).append(entry)

    def first(self) -> Entry | None:
        """The first entry with a resource."""
        return self.entries[0] if self.entries else None

    def resolve(self, reference: str | None, *, from_full_url: str | None = None) -> Entry | None:
        """The entry a reference string points at, or None when it is not in the Bundle."""
        if not reference or reference.startswith("#"):
            return None
        hit = self._by_full_url.get(reference)
        if hit is not None:
            return hit
        m = _RELATIVE_REF.match(reference)
        if m is None:
            rest = _RESTFUL_URL.match(reference)
            # An absolute RESTful URL may still name a resource the sender put in with a urn:uuid fullUrl.
            if rest is None:
                return None
            type_id = f"{rest.group(2)}/{rest.group(3)}"
        else:
            type_id = f"{m.group(1)}/{m.group(2)}"
            base = _RESTFUL_URL.match(from_full_url or "")
            if base is not None:
                hit = self._by_full_url.get(f"{base.group(1)}/{type_id}")
                if hit is not None:
                    return hit
        candidates = self._by_type_id.get(type_id, [])
        # Matching on Type/id alone is a leniency for senders mixing urn:uuid fullUrls with relative
        # references; it is only safe when unambiguous.
        return candidates[0] if len(candidates) == 1 else None

    def resolve_ref(self, ref: Any, *, from_entry: Entry | None = None) -> Entry | None:
        """Resolve a Reference element (``{"reference": ...}``) relative to the entry that holds it."""
        if not isinstance(ref, dict) or not isinstance(ref.get("reference"), str):
            return None
        return self.resolve(ref["reference"], from_full_url=from_entry.full_url if from_entry else None)

    def of_type(self, resource_type: str) -> list[Entry]:
        """All entries whose resource has the given type."""
        return [e for e in self.entries if e.resource.get("resourceType") == resource_type]


def contained(resource: dict[str, Any], reference: str) -> dict[str, Any] | None:
    """The contained resource a ``#id`` reference points at."""
    if not reference.startswith("#"):
        return None
    for res in resource.get("contained") or []:
        if isinstance(res, dict) and res.get("id") == reference[1:]:
            return res
    return None


def iter_references(node: Any, *steps: str | int) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Yield (path steps, reference string) for every Reference.reference below ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            # Narrative and contained resources are not references of this resource.
            if key in ("text", "contained"):
                continue
            if key == "reference" and isinstance(value, str):
                yield steps, value
            else:
                yield from iter_references(value, *steps, key)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from iter_references(value, *steps, i)


@lru_cache(maxsize=512)
def _known_resource_type(name: str) -> bool:
    try:
        get_fhir_model_class(name)
    except (KeyError, ValueError, AttributeError):
        return False
    return True


# A path as a linked list of steps (parent, step), rendered only for the rare node that has a problem.
_Link = tuple[Any, str | int] | None


def _render(root: str, link: _Link) -> str:
    steps: list[str | int] = []
    while link is not None:
        link, step = link
        steps.append(step)
    return fhirpath(root, *reversed(steps))


def body_issues(data: Any, *, root: str = "Bundle", resource_types: bool = True) -> list[Issue]:
    """Problems no FHIR validator should meet: nesting past ``MAX_JSON_DEPTH``, NUL characters and (with
    ``resource_types``) resources of a type R4 does not define, each named by FHIRPath. Iterative: any depth
    is safe."""
    issues: list[Issue] = []
    todo: list[tuple[Any, _Link, int]] = [(data, None, 0)]
    while todo and len(issues) < _MAX_STRUCTURAL_ISSUES:
        node, link, depth = todo.pop()
        if isinstance(node, str):
            if "\x00" in node:
                # FHIR strings carry no control characters but tab, CR and LF; NUL cannot even be stored.
                issues.append(
                    Issue("error", "value", "NUL character (U+0000) in a string", [_render(root, link)])
                )
            continue
        if depth >= MAX_JSON_DEPTH and isinstance(node, dict | list):
            where = _render(root, link)
            return [Issue("error", "structure", f"JSON nested deeper than {MAX_JSON_DEPTH} levels", [where])]
        if isinstance(node, dict):
            rtype = node.get("resourceType")
            if resource_types and depth and isinstance(rtype, str) and not _known_resource_type(rtype):
                issues.append(
                    Issue(
                        "error",
                        "not-supported",
                        f"Unknown FHIR R4 resource type {rtype!r}",
                        [_render(root, link)],
                    )
                )
            for key, value in node.items():
                if "\x00" in key:
                    issues.append(
                        Issue("error", "structure", "NUL character in a property name", [_render(root, link)])
                    )
                elif isinstance(value, dict | list | str):
                    todo.append((value, (link, key), depth + 1))
        elif isinstance(node, list):
            todo.extend((value, (link, i), depth + 1) for i, value in enumerate(node))
    return sorted(issues, key=lambda i: i.expression)


def _issue_code_for(error_type: str) -> IssueCode:
    if "missing" in error_type:
        return "required"
    if "extra" in error_type:
        return "structure"
    return "value"


def structural_issues(data: Any, *, root: str | None = None) -> list[Issue]:
    """Base-R4 structural problems of a resource (via fhir.resources.R4B), each with a FHIRPath expression."""
    if not isinstance(data, dict):
        return [Issue("error", "structure", "The body is not a JSON object", [root or "Resource"])]
    rtype = data.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        return [Issue("error", "structure", "Missing resourceType", [root or "Resource"])]
    try:
        model = get_fhir_model_class(rtype)
    except (KeyError, ValueError, AttributeError):
        return [Issue("error", "not-supported", f"Unknown FHIR R4 resource type {rtype!r}", [rtype])]
    found = body_issues(data, root=root or rtype)
    if found:
        return found
    try:
        model.model_validate(data)
    except ValidationError as exc:
        issues = []
        for err in exc.errors()[:_MAX_STRUCTURAL_ISSUES]:
            steps = [s for s in err.get("loc", ()) if isinstance(s, str | int)]
            issues.append(
                Issue(
                    "error",
                    _issue_code_for(str(err.get("type", ""))),
                    str(err.get("msg", "invalid")),
                    [fhirpath(root or rtype, *steps)],
                )
            )
        return issues
    except (TypeError, ValueError) as exc:
        # fhir.resources raises plain ValueErrors for a few primitive-format problems.
        return [Issue("error", "structure", f"Not valid FHIR R4: {exc}", [root or rtype])]
    return []


@lru_cache(maxsize=256)
def _compiled(expression: str) -> Callable[..., list[Any]]:
    # Parsing a FHIRPath expression costs milliseconds; invariants are few and fixed, so parse each once.
    return fhirpathpy.compile(expression, _R4)


def check_invariant(resource: Any, expression: str) -> bool:
    """Evaluate a FHIRPath invariant with the R4 model; True only when it yields exactly ``true``."""
    try:
        result = _compiled(expression)(resource, None)
    except Exception:
        # fhirpathpy lacks a few functions (e.g. memberOf); an unevaluable invariant must not fail a request.
        return True
    return result == [True]


def _codes(concept: Any, system: str | None = None) -> list[str]:
    if not isinstance(concept, dict):
        return []
    return [
        str(c.get("code"))
        for c in concept.get("coding") or []
        if isinstance(c, dict) and c.get("code") and (system is None or c.get("system") == system)
    ]


def _strip_narrative(resource: Any) -> Any:
    if isinstance(resource, dict):
        return {k: _strip_narrative(v) for k, v in resource.items() if k != "text"}
    if isinstance(resource, list):
        return [_strip_narrative(v) for v in resource]
    return resource


def validate_response_bundle(
    bundle: Any, *, request_bundle: dict[str, Any] | None = None, inquiry: bool = False
) -> list[Issue]:
    """Check a PAS (inquiry) response Bundle against the profile elements we can check; [] when it passes."""
    issues = structural_issues(bundle, root="Bundle")
    if issues:
        return issues
    if bundle.get("resourceType") != "Bundle":
        return [Issue("error", "structure", "Not a Bundle", [str(bundle.get("resourceType"))])]
    if bundle.get("type") != "collection":
        issues.append(Issue("error", "value", "Bundle.type must be 'collection'", ["Bundle.type"]))
    if not inquiry and not bundle.get("identifier"):
        issues.append(
            Issue("error", "required", "Bundle.identifier is required (1..1)", ["Bundle.identifier"])
        )
    if not bundle.get("timestamp"):
        issues.append(Issue("error", "required", "Bundle.timestamp is required (1..1)", ["Bundle.timestamp"]))
    raw_entries = bundle.get("entry") or []
    if not raw_entries:
        issues.append(Issue("error", "required", "Bundle.entry is required (1..*)", ["Bundle.entry"]))
        return issues
    for i, raw in enumerate(raw_entries):
        if not raw.get("fullUrl"):
            issues.append(
                Issue("error", "required", "entry.fullUrl is required", [fhirpath("Bundle", "entry", i)])
            )
        for forbidden in ("request", "response", "search"):
            if forbidden in raw:
                issues.append(
                    Issue(
                        "error",
                        "structure",
                        f"entry.{forbidden} is not allowed",
                        [fhirpath("Bundle", "entry", i)],
                    )
                )
    if not check_invariant(bundle, "entry.first().resource is ClaimResponse"):
        issues.append(
            Issue(
                "error",
                "invariant",
                "ClaimResponseFirst: the first entry must be a ClaimResponse",
                ["Bundle.entry[0]"],
            )
        )
        return issues
    index = BundleIndex(bundle)
    responses = index.of_type("ClaimResponse")
    if not inquiry and len(responses) != 1:
        issues.append(
            Issue("error", "structure", "Exactly one ClaimResponse entry is allowed", ["Bundle.entry"])
        )
    for cr_entry in responses:
        issues.extend(_claim_response_issues(cr_entry, index))
    if request_bundle is not None:
        issues.extend(_echo_issues(index, BundleIndex(request_bundle)))
    return issues


def _claim_response_issues(entry: Entry, index: BundleIndex) -> list[Issue]:
    cr, p = entry.resource, entry.path
    issues: list[Issue] = []
    if cr.get("status") != "active":
        issues.append(Issue("error", "value", "ClaimResponse.status must be 'active'", [f"{p}.status"]))
    if cr.get("use") != "preauthorization":
        issues.append(Issue("error", "value", "ClaimResponse.use must be 'preauthorization'", [f"{p}.use"]))
    for name in ("patient", "created", "insurer"):
        if not cr.get(name):
            issues.append(Issue("error", "required", f"ClaimResponse.{name} is required", [f"{p}.{name}"]))
    request = cr.get("request")
    if not isinstance(request, dict) or not (
        request.get("reference") or request.get("identifier") or request.get("extension")
    ):
        issues.append(
            Issue(
                "error",
                "required",
                "ClaimResponse.request (reference, identifier or data-absent-reason) is required",
                [f"{p}.request"],
            )
        )
    if cr.get("outcome") not in PAS_OUTCOMES:
        issues.append(
            Issue(
                "error",
                "code-invalid",
                "ClaimResponse.outcome must be complete|error|partial",
                [f"{p}.outcome"],
            )
        )
    if cr.get("outcome") != "error" and not cr.get("item"):
        issues.append(
            Issue(
                "error", "required", "ClaimResponse.item carries the decision and is required", [f"{p}.item"]
            )
        )
    for i, item in enumerate(cr.get("item") or []):
        ip = fhirpath(p, "item", i)
        adjudications = item.get("adjudication") or []
        if not adjudications:
            issues.append(Issue("error", "required", "item.adjudication is required", [f"{ip}.adjudication"]))
        for j, adj in enumerate(adjudications):
            ap = fhirpath(ip, "adjudication", j)
            if _codes(adj.get("category"), ADJUDICATION_CS) != ["submitted"]:
                issues.append(
                    Issue(
                        "error",
                        "value",
                        "adjudication.category must be adjudication#submitted",
                        [f"{ap}.category"],
                    )
                )
            actions = [x for x in adj.get("extension") or [] if x.get("url") == EXT_REVIEW_ACTION]
            if len(actions) != 1:
                issues.append(
                    Issue(
                        "error",
                        "required",
                        "exactly one reviewAction extension is expected",
                        [f"{ap}.extension"],
                    )
                )
                continue
            subs = actions[0].get("extension") or []
            codes = [
                c
                for s in subs
                if s.get("url") == EXT_REVIEW_ACTION_CODE
                for c in _codes(s.get("valueCodeableConcept"), X12_306)
            ]
            if len(codes) != 1 or codes[0] not in REVIEW_ACTION_CODES:
                issues.append(
                    Issue(
                        "error",
                        "code-invalid",
                        "reviewActionCode must be one X12 306 code",
                        [f"{ap}.extension('{EXT_REVIEW_ACTION}')"],
                    )
                )
            for s in subs:
                if s.get("url") == "number" and not isinstance(s.get("valueString"), str):
                    issues.append(
                        Issue(
                            "error",
                            "value",
                            "reviewAction.number must be a string",
                            [f"{ap}.extension('{EXT_REVIEW_ACTION}')"],
                        )
                    )
    # spec-33: every resource the ClaimResponse references must be in the Bundle (the Claim itself may be
    # absent when `request` carries only an identifier).
    for steps, ref in iter_references(cr):
        if steps and steps[0] == "request":
            continue
        if ref.startswith("#"):
            if contained(cr, ref) is None:
                issues.append(
                    Issue("error", "not-found", f"contained resource {ref} is missing", [fhirpath(p, *steps)])
                )
        elif index.resolve(ref, from_full_url=entry.full_url) is None:
            issues.append(
                Issue(
                    "error",
                    "not-found",
                    f"referenced resource {ref} is not in the Bundle",
                    [fhirpath(p, *steps)],
                )
            )
    return issues


def _echo_issues(response: BundleIndex, request: BundleIndex) -> list[Issue]:
    """spec-33: resources echoed from the request keep their fullUrl and content."""
    issues = []
    for entry in response.entries:
        if entry.resource.get("resourceType") == "ClaimResponse" or not entry.full_url:
            continue
        original = request.resolve(entry.full_url)
        if original is None:
            continue
        if _strip_narrative(original.resource) != _strip_narrative(entry.resource):
            issues.append(
                Issue(
                    "error",
                    "value",
                    f"{entry.full_url} differs from the resource with that fullUrl in the request",
                    [entry.path],
                )
            )
    return issues
