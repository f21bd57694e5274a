"""FHIR errors and OperationOutcome rendering for the PAS/CRD endpoints.

PAS `spec-39`: a 4xx answer carries an OperationOutcome whose issues name the offending element as a FHIRPath
expression; 5xx answers carry none, so nothing here is meant for server faults.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["ERROR_RESPONSES", "FhirError", "Issue", "IssueSeverity", "operation_outcome"]

IssueSeverity = Literal["fatal", "error", "warning", "information"]

# The R4 IssueType codes we emit, listed so a typo fails type checking instead of making invalid JSON.
IssueCode = Literal[
    "invalid",
    "structure",
    "required",
    "value",
    "invariant",
    "business-rule",
    "not-found",
    "not-supported",
    "code-invalid",
    "duplicate",
    "processing",
    "informational",
    "too-costly",
    "login",
    "forbidden",
    "conflict",
]


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue: what went wrong and where (FHIRPath expressions)."""

    severity: IssueSeverity
    code: IssueCode
    diagnostics: str
    expression: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The issue as R4 OperationOutcome.issue JSON."""
        out: dict[str, Any] = {"severity": self.severity, "code": self.code}
        if self.diagnostics:
            out["diagnostics"] = self.diagnostics
        if self.expression:
            out["expression"] = list(self.expression)
        return out


class FhirError(Exception):
    """A request the FHIR layer refuses; carries the issues and the HTTP status to answer with."""

    def __init__(self, issues: Issue | Iterable[Issue], http_status: int = 400) -> None:
        self.issues: list[Issue] = [issues] if isinstance(issues, Issue) else list(issues)
        if not self.issues:
            raise ValueError("FhirError needs at least one issue")
        if not 400 <= http_status < 500:
            # 5xx must not carry an OperationOutcome (PAS spec-39); this class only models client errors.
            raise ValueError("FhirError is for 4xx answers only")
        self.http_status = http_status
        super().__init__("; ".join(i.diagnostics for i in self.issues))

    @classmethod
    def single(
        cls,
        code: IssueCode,
        diagnostics: str,
        expression: str | list[str] | None = None,
        *,
        http_status: int = 400,
    ) -> FhirError:
        """An error with one error-severity issue."""
        expr = [expression] if isinstance(expression, str) else list(expression or [])
        return cls(Issue("error", code, diagnostics, expr), http_status)

    @classmethod
    def business_rule(cls, diagnostics: str, expression: str | list[str] | None = None) -> FhirError:
        """A well-formed request that breaks a business rule (HTTP 422)."""
        return cls.single("business-rule", diagnostics, expression, http_status=422)

    def operation_outcome(self) -> dict[str, Any]:
        """The OperationOutcome JSON to send as the response body."""
        return operation_outcome(self.issues)


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    """Render issues as a valid R4 OperationOutcome resource (JSON dict)."""
    rendered = [i.as_dict() for i in issues]
    if not rendered:
        # OperationOutcome.issue is 1..*; an empty outcome still needs one informational issue.
        rendered = [{"severity": "information", "code": "informational", "diagnostics": "No issues"}]
    return {"resourceType": "OperationOutcome", "issue": rendered}


# For OpenAPI: FHIR routes answer every refusal with an OperationOutcome (PAS spec-39), not the REST error body.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": f"{meaning}: an OperationOutcome naming the element",
        "content": {
            "application/fhir+json": {
                "schema": {"type": "object", "required": ["resourceType", "issue"]},
            }
        },
    }
    for status, meaning in (
        (400, "Malformed"),
        (401, "No valid API key"),
        (404, "Not found"),
        (409, "Conflict"),
        (422, "Breaks a rule"),
    )
}
