"""Exemptions (R1): each code set, attestation required, deterministic sampling, the audit and its report."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.factories import body
from wiserpa.policy.decide import sampled_for_audit
from wiserpa.policy.profiles import load_profile
from wiserpa.policy.validation import make_valid_npi


@pytest.mark.parametrize(
    ("dx", "code_set"),
    [
        ("G89.11", "acute_pain"),
        ("G89.12", "acute_pain"),
        ("G89.18", "acute_pain"),
        ("G89.3", "cancer_pain"),
        ("C79.51", "cancer"),
        ("D03.9", "cancer"),
        ("Z51.5", "palliative"),
    ],
)
def test_each_code_set_with_attestation_is_exempt(
    client: TestClient, make_actor, dx: str, code_set: str
) -> None:
    provider = make_actor("provider")
    data = body(case="incomplete", diagnosis_codes=[dx, "M54.16"], time_sensitive_attestation=True)
    r = client.post("/api/v1/requests", json=data, headers=provider.headers)
    assert r.status_code == 201, r.text
    view = r.json()
    assert view["status"] == "exempt_affirmed" and view["exemption"] == code_set
    assert view["decision_kind"] == "exempt" and view["utn"]
    assert all(ln["status"] == "exempt_affirmed" for ln in view["lines"])


def test_no_attestation_no_exemption(client: TestClient, make_actor) -> None:
    provider = make_actor("provider")
    data = body(case="incomplete", diagnosis_codes=["G89.3", "M54.16"], time_sensitive_attestation=False)
    view = client.post("/api/v1/requests", json=data, headers=provider.headers).json()
    assert view["status"] == "pended" and view["exemption"] is None


def test_sampling_is_deterministic_and_near_the_rate() -> None:
    rate = load_profile("asa-reform").exemptions.audit_sample_rate
    keys = [f"TXA{n:011d}" for n in range(4000)]
    first = [sampled_for_audit(k, rate, "asa-reform") for k in keys]
    assert first == [sampled_for_audit(k, rate, "asa-reform") for k in keys]
    assert abs(sum(first) / len(keys) - rate) < 0.02
    assert first != [sampled_for_audit(k, rate, "another-seed") for k in keys]
    assert not any(sampled_for_audit(k, 0.0, "asa-reform") for k in keys)


def _exempt(client: TestClient, provider, n: int, npi: str) -> list[dict]:  # type: ignore[no-untyped-def]
    out = []
    for i in range(n):
        data = body(case="exempt", seed=i + 1, provider={"npi": npi})
        r = client.post("/api/v1/requests", json=data, headers=provider.headers)
        assert r.json()["status"] == "exempt_affirmed", r.text
        out.append(r.json())
    return out


def test_audit_and_per_provider_report(client: TestClient, rt, make_actor) -> None:
    provider = make_actor("provider")
    honest, careless = make_valid_npi(7001), make_valid_npi(7002)
    a = _exempt(client, provider, 3, honest)
    b = _exempt(client, provider, 4, careless)
    reviewer = make_actor("reviewer")
    oversight = make_actor("oversight")

    url = "/api/v1/requests/{}/exemption-audit"
    assert (
        client.post(url.format(a[0]["id"]), json={"appropriate": True}, headers=reviewer.headers).status_code
        == 201
    )
    no_reason = client.post(url.format(b[0]["id"]), json={"appropriate": False}, headers=reviewer.headers)
    assert no_reason.status_code == 422 and no_reason.json()["error"]["fields"][0]["field"] == "note"
    for req in b[:2]:
        r = client.post(
            url.format(req["id"]),
            json={"appropriate": False, "note": "no acute or cancer pain documented"},
            headers=oversight.headers,
        )
        assert r.status_code == 201 and r.json()["appropriate"] is False
    again = client.post(url.format(b[0]["id"]), json={"appropriate": True}, headers=reviewer.headers)
    assert again.status_code == 409
    assert (
        client.post(url.format(a[1]["id"]), json={"appropriate": True}, headers=provider.headers).status_code
        == 403
    )
    other_state = make_actor("reviewer", state="WA")
    assert (
        client.post(
            url.format(a[1]["id"]), json={"appropriate": True}, headers=other_state.headers
        ).status_code
        == 404
    )

    pended = client.post(
        "/api/v1/requests", json=body(case="unmet", seed=99), headers=provider.headers
    ).json()
    assert (
        client.post(
            url.format(pended["id"]), json={"appropriate": True}, headers=reviewer.headers
        ).status_code
        == 409
    )

    report = {
        row["provider_npi"]: row
        for row in client.get("/api/v1/exemptions/report", headers=oversight.headers).json()["items"]
    }
    assert report[honest]["exempt"] == 3 and report[honest]["audited"] == 1
    assert report[honest]["found_inappropriate"] == 0
    assert report[careless]["exempt"] == 4 and report[careless]["audited"] == 2
    assert report[careless]["found_inappropriate"] == 2 and report[careless]["inappropriate_share"] == 1.0
    assert sum(report[careless]["by_code_set"].values()) == 4
    assert report[careless]["sampled"] == sum(r["id"] and _sampled(rt, r["id"]) for r in b)
    assert client.get("/api/v1/exemptions/report", headers=other_state.headers).json()["items"] == []


def _sampled(rt, request_id: int) -> bool:  # type: ignore[no-untyped-def]
    from wiserpa.requests.models import PaRequest

    with rt.sessions() as s:
        req = s.get(PaRequest, request_id)
        assert req is not None
        assert req.audit_sampled == sampled_for_audit(
            req.utn or "", rt.profile.exemptions.audit_sample_rate, rt.profile.id
        )
        return req.audit_sampled


@pytest.mark.parametrize("profile_name", ["wiser-2026"])
def test_wiser_2026_has_no_exemption(client: TestClient, make_actor, profile_name: str) -> None:
    provider = make_actor("provider")
    view = client.post("/api/v1/requests", json=body(case="exempt", seed=3), headers=provider.headers).json()
    assert view["status"] != "exempt_affirmed" and view["exemption"] is None
