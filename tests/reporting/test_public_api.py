"""The public API, pages and downloads: no login, as-of time shown, no PHI, oversight behind a login."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import body
from wiserpa.reporting import service
from wiserpa.requests import service as requests
from wiserpa.requests.schemas import SubmitRequestIn
from wiserpa.reviews import service as reviews
from wiserpa.runtime import Runtime

PUBLIC = [
    "/public/",
    "/public/participants/TX",
    "/public/cms0057",
    "/public/compensation",
    "/public/methodology",
    "/public/data/metrics.csv",
    "/public/data/metrics.json",
    "/api/v1/public/metrics",
    "/api/v1/public/metrics?grain=month",
    "/api/v1/public/metrics?grain=year",
    "/api/v1/public/cms0057",
    "/api/v1/public/compensation",
    "/api/v1/public/schema",
]


@pytest.fixture
def seeded(rt: Runtime, make_actor: Callable[..., Any]) -> dict[str, list[str]]:
    """A few requests (small counts: a public report must hide them) with identifiable people on them."""
    service.clear_cache()
    provider = make_actor("provider")
    reviewer = make_actor("reviewer")
    secrets: dict[str, list[str]] = {"mbi": [], "npi": [], "utn": [], "names": []}
    with rt.sessions() as session:
        for seed, case in enumerate(("complete", "unmet", "complete", "incomplete"), start=11):
            raw = body(case=case, seed=seed)
            req = requests.submit(
                session, rt, principal=provider.principal, data=SubmitRequestIn.model_validate(raw), raw=raw
            )
            session.commit()
            secrets["mbi"].append(req.beneficiary_mbi)
            secrets["npi"].append(req.provider_npi)
            if req.utn:
                secrets["utn"].append(req.utn)
            if case == "unmet":
                unmet = [r["criterion_id"] for r in req.criteria_results if r.get("result") == "unmet"]
                reviews.decide(
                    session,
                    rt,
                    principal=reviewer.principal,
                    request_id=req.id,
                    outcome="non_affirm",
                    reasons=unmet[:1],
                    note="not met",
                )
                session.commit()
    secrets["npi"].append(reviewer.principal.npi)
    secrets["names"] += [reviewer.principal.name, provider.principal.name]
    return secrets


def test_every_public_route_answers_without_login_and_shows_its_as_of_time(
    client: TestClient, seeded: dict[str, list[str]]
) -> None:
    for path in PUBLIC:
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        if path.startswith("/public/") and not path.startswith("/public/data"):
            assert "Figures as of" in r.text
        if "metrics" in path:
            assert r.headers["X-Report-As-Of"].startswith("2026-03-02T16:00")


def test_no_phi_in_any_public_response(client: TestClient, seeded: dict[str, list[str]]) -> None:
    for path in PUBLIC:
        text = client.get(path).text
        for kind, values in seeded.items():
            for value in values:
                assert value and value not in text, f"{kind} {value!r} leaked in {path}"
        for field in (
            "beneficiary_mbi",
            "provider_npi",
            "reviewer_npi",
            "reviewer_name",
            "request_id",
            '"utn"',
        ):
            assert field not in text, f"{field} in {path}"


def test_small_counts_are_suppressed_everywhere(client: TestClient, seeded: dict[str, list[str]]) -> None:
    doc = client.get("/api/v1/public/metrics").json()
    counts = set(doc["columns"]) - {"participant", "state", "period", "grain"}
    for row in doc["rows"]:
        for col in counts:
            v = row[col]
            if col.startswith(("pct_", "mean_", "median_", "p90_")) or col.endswith("_usd"):
                continue
            assert v is None or v == 0 or v > 10, (row["participant"], row["period"], col, v)
    rows = list(csv.DictReader(io.StringIO(client.get("/public/data/metrics.csv").text)))
    tx = next(r for r in rows if r["state"] == "TX" and r["grain"] == "year")
    assert tx["requests"] == "S" and tx["outcome.non_affirmed"] == "S"


def test_csv_and_json_downloads_agree(client: TestClient, seeded: dict[str, list[str]]) -> None:
    doc = json.loads(client.get("/public/data/metrics.json").text)
    rows = list(csv.DictReader(io.StringIO(client.get("/public/data/metrics.csv").text)))
    assert len(rows) == len(doc["rows"])
    assert list(rows[0]) == doc["columns"]
    for c_row, j_row in zip(rows, doc["rows"], strict=True):
        for col in doc["columns"]:
            j = j_row[col]
            if j is None:
                assert c_row[col] in ("", "S")
                assert (c_row[col] == "S") == (col in j_row["suppressed"])
            else:
                assert c_row[col] == str(j)


def test_bad_grain_is_a_field_error(client: TestClient) -> None:
    r = client.get("/api/v1/public/metrics?grain=decade")
    assert r.status_code == 422
    assert r.json()["error"]["fields"][0]["field"] == "grain"


def test_oversight_pages_need_the_role(
    client: TestClient, make_actor: Callable[..., Any], seeded: dict[str, list[str]]
) -> None:
    assert client.get("/oversight/reports", follow_redirects=False).status_code == 303
    provider = make_actor("provider")
    client.post("/login", data={"api_key": provider.key})
    assert client.get("/oversight/reports").status_code == 403
    overseer = make_actor("oversight")
    client.post("/login", data={"api_key": overseer.key})
    page = client.get("/oversight/reports?period=week")
    assert page.status_code == 200
    assert "not suppressed" in page.text and "Penalty ledger" in page.text
    assert 'id="oversight-cuts"' in page.text
