"""Helpers shared by the FHIR API tests: fixture loading, WISeR bundle variants, response checks."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from wiserpa.fhir.pas import EXT_REVIEW_ACTION, EXT_REVIEW_ACTION_CODE
from wiserpa.fhir.validation import validate_response_bundle

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
DAVINCI = FIXTURES / "davinci"
WISER = FIXTURES / "fhir"
FHIR_JSON = {"Content-Type": "application/fhir+json"}


def load(path: Path | str) -> Any:
    """A fixture as JSON (paths relative to tests/fixtures)."""
    p = path if isinstance(path, Path) else FIXTURES / path
    return json.loads(p.read_text(encoding="utf-8"))


def wiser(
    name: str = "standard", *, ident: str | None = None, facts: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A derived WISeR request bundle, optionally with a new Bundle/Claim identifier and changed answers."""
    bundle = copy.deepcopy(load(WISER / f"pas-wiser-esi-64483-tx-{name}.json"))
    if ident is not None:
        bundle["identifier"]["value"] = ident
        bundle["entry"][0]["resource"]["identifier"][0]["value"] = f"CLAIM-{ident}"
    if facts:
        for entry in bundle["entry"]:
            res = entry["resource"]
            if res["resourceType"] != "QuestionnaireResponse":
                continue
            _set_answers(res.get("item") or [], facts)
    return bundle


def _set_answers(items: list[dict[str, Any]], facts: dict[str, Any]) -> None:
    for item in items:
        if item["linkId"] in facts:
            value = facts[item["linkId"]]
            key = "valueBoolean" if isinstance(value, bool) else "valueDecimal"
            item["answer"] = [{key: value}]
        _set_answers(item.get("item") or [], facts)


def claim_response(bundle: dict[str, Any]) -> dict[str, Any]:
    """The ClaimResponse (first entry) of a response Bundle."""
    return bundle["entry"][0]["resource"]


def review_actions(bundle: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(X12 306 code, number) per item of the ClaimResponse."""
    out = []
    for item in claim_response(bundle)["item"]:
        action = next(e for e in item["adjudication"][0]["extension"] if e["url"] == EXT_REVIEW_ACTION)
        code = next(
            e["valueCodeableConcept"]["coding"][0]["code"]
            for e in action["extension"]
            if e["url"] == EXT_REVIEW_ACTION_CODE
        )
        number = next((e["valueString"] for e in action["extension"] if e["url"] == "number"), None)
        out.append((code, number))
    return out


def assert_valid_response(body: dict[str, Any], request_bundle: dict[str, Any] | None = None) -> None:
    """A PAS response Bundle: parses with fhir.resources.R4B and passes the profile checks."""
    Bundle.model_validate(body)
    assert validate_response_bundle(body, request_bundle=request_bundle) == []


def assert_outcome(resp: Any, status: int | None = None) -> dict[str, Any]:
    """A 4xx OperationOutcome naming at least one element."""
    assert 400 <= resp.status_code < 500, resp.text[:500]
    if status is not None:
        assert resp.status_code == status, resp.text[:500]
    body = resp.json()
    assert body["resourceType"] == "OperationOutcome"
    assert resp.headers["content-type"].startswith("application/fhir+json")
    assert body["issue"] and all(i["severity"] in ("error", "fatal") for i in body["issue"])
    return body
