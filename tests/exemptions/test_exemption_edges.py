"""Exemption edges through the REST API: code forms, report scope and figures, local-day filters, retries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Actor
from tests.factories import body
from wiserpa.policy.clock import FixedClock
from wiserpa.policy.validation import make_valid_npi

MakeActor = Callable[..., Actor]


def _submit(
    client: TestClient, actor: Actor, dx: list[str], *, seed: int = 1, **extra: Any
) -> dict[str, Any]:
    """Submit a request with these diagnoses and a time-sensitive attestation; return its view."""
    data = body(case="incomplete", seed=seed, diagnosis_codes=dx, time_sensitive_attestation=True, **extra)
    r = client.post("/api/v1/requests", json=data, headers=actor.headers)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


@pytest.mark.parametrize(
    ("dx", "code_set"),
    [
        ("g89.3", "cancer_pain"),  # lower case
        ("G893", "cancer_pain"),  # without the dot
        ("C50.911", "cancer"),  # a child code of the chapter
        ("c7951", "cancer"),
        ("D49.2", "cancer"),  # the chapter's last block
        ("G89.29", None),  # other chronic pain: not acute, not cancer-related
        ("G89.4", None),  # chronic pain syndrome
        ("D50.9", None),  # anemia: just past the neoplasm chapter
        ("Z51.81", None),  # drug-level monitoring, not palliative care (Z51.5)
    ],
)
def test_diagnosis_code_forms_and_near_misses(
    client: TestClient, make_actor: MakeActor, dx: str, code_set: str | None
) -> None:
    """Codes match whatever their case or dot; neighbours outside the code sets follow the normal path."""
    view = _submit(client, make_actor("provider"), [dx, "M54.16"])
    assert view["exemption"] == code_set
    assert view["status"] == ("exempt_affirmed" if code_set else "pended")


def test_report_is_scoped_to_the_practice_even_when_filtering_by_another_npi(
    client: TestClient, make_actor: MakeActor
) -> None:
    """A practice asking for another practice's NPI sees nothing; its own figures match its requests."""
    mine, theirs = make_actor("provider"), make_actor("provider")
    npi_mine, npi_theirs = make_valid_npi(7101), make_valid_npi(7102)
    own = [_submit(client, mine, ["G89.11"], seed=i, provider={"npi": npi_mine}) for i in range(1, 4)]
    _submit(client, mine, ["Z51.5"], seed=4, provider={"npi": npi_mine})
    _submit(client, theirs, ["G89.3"], seed=5, provider={"npi": npi_theirs})

    url = "/api/v1/exemptions/report"
    assert client.get(url, params={"npi": npi_theirs}, headers=mine.headers).json()["items"] == []
    (row,) = client.get(url, headers=mine.headers).json()["items"]
    assert row["provider_npi"] == npi_mine and row["exempt"] == 4
    assert row["by_code_set"] == {"acute_pain": 3, "palliative": 1}
    assert row["audited"] == 0 and row["inappropriate_share"] is None
    assert all(r["exemption"] == "acute_pain" for r in own)


def test_report_date_filters_use_the_states_local_day(
    client: TestClient, clock: FixedClock, make_actor: MakeActor
) -> None:
    """A Texas request received at 22:00 CST on March 1 is in the March 1 report, not in March 2's."""
    provider, oversight = make_actor("provider"), make_actor("oversight")
    clock.set(dt.datetime(2026, 3, 2, 4, 0, tzinfo=dt.UTC))  # 2026-03-01 22:00 in America/Chicago
    _submit(client, provider, ["G89.3"], seed=1)
    clock.set(dt.datetime(2026, 3, 1, 6, 0, tzinfo=dt.UTC))  # 2026-03-01 00:00 CST: the day's first instant
    _submit(client, provider, ["G89.3"], seed=2)
    url = "/api/v1/exemptions/report"

    def exempt(day: str) -> int:
        """Exempt requests received on that local day."""
        items = client.get(url, params={"received_from": day, "received_to": day}, headers=oversight.headers)
        assert items.status_code == 200, items.text
        return sum(r["exempt"] for r in items.json()["items"])

    assert (exempt("2026-02-28"), exempt("2026-03-01"), exempt("2026-03-02")) == (0, 2, 0)


def test_bad_report_filters_are_a_4xx_naming_the_field(client: TestClient, make_actor: MakeActor) -> None:
    """Malformed dates and states are refused with the parameter named, never a 500."""
    oversight = make_actor("oversight")
    for params, name in [({"received_from": "2026-13-01"}, "received_from"), ({"state": "Texas"}, "state")]:
        r = client.get("/api/v1/exemptions/report", params=params, headers=oversight.headers)
        assert r.status_code == 422 and name in r.text


def test_a_retried_audit_is_replayed_not_refused(client: TestClient, make_actor: MakeActor) -> None:
    """The same Idempotency-Key replays the finding; the report counts it once."""
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    req = _submit(client, provider, ["G89.12"], seed=8)
    url = f"/api/v1/requests/{req['id']}/exemption-audit"
    headers = {"Idempotency-Key": "audit-8", **reviewer.headers}
    finding = {"appropriate": False, "note": "no acute pain documented"}
    first = client.post(url, json=finding, headers=headers)
    again = client.post(url, json=finding, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == first.json()
    changed = client.post(url, json={"appropriate": True}, headers=headers)
    assert changed.status_code == 409 and changed.json()["error"]["code"] == "idempotency_conflict"
    (row,) = client.get("/api/v1/exemptions/report", headers=reviewer.headers).json()["items"]
    assert (row["audited"], row["found_inappropriate"]) == (1, 1)
