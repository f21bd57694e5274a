"""Helpers for deadline tests: pended requests through the API, and many open requests inserted directly."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import body
from wiserpa.policy.validation import make_valid_mbi, make_valid_npi
from wiserpa.requests.models import PaRequest, RequestLine
from wiserpa.runtime import Runtime


@pytest.fixture
def submit_pended(client: TestClient, make_actor: Callable[..., Any]) -> Callable[..., dict[str, Any]]:
    """Submit an epidural steroid injection request that needs a clinician (so it pends); returns its view."""
    provider = make_actor("provider")
    counter = {"n": 0}

    def submit(**overrides: Any) -> dict[str, Any]:
        counter["n"] += 1
        data = body(case="incomplete", seed=counter["n"], **overrides)
        r = client.post("/api/v1/requests", json=data, headers=provider.headers)
        assert r.status_code == 201, r.text
        view = r.json()
        assert view["status"] == "pended", view["status"]
        view["_headers"] = provider.headers
        return view

    return submit


def insert_open(
    rt: Runtime, n: int, *, due_at: dt.datetime, deems: bool = True, state: str = "TX"
) -> list[int]:
    """Insert `n` pended epidural requests due at `due_at` directly (fast), each with an anesthesia line."""
    now = rt.clock.now()
    info = rt.catalog.state(state)
    assert info is not None
    with rt.sessions() as session:
        from wiserpa.auth.models import OrgKind
        from wiserpa.auth.service import create_organization

        org = create_organization(session, name="bulk practice", kind=OrgKind.PRACTICE, now=now, state=state)
        rows = []
        for i in range(n):
            req = PaRequest(
                state=state,
                participant=info.participant,
                jurisdiction=info.jurisdiction,
                organization_id=org.id,
                provider_npi=make_valid_npi(500 + i % 7),
                beneficiary_mbi=make_valid_mbi(90_000 + i),
                category="epidural_steroid_injection",
                policy_id=None,
                primary_code="62323",
                place_of_service="11",
                date_of_service=dt.date(2026, 3, 20),
                urgency="standard",
                channel="portal",
                received_at=now,
                clock_started_at=now,
                due_at=due_at,
                deems_on_due=deems,
                status="pended",
                profile_id=rt.profile.id,
                profile_version=rt.profile.version,
                diagnosis_codes=["M54.16"],
                clinical_facts={},
                criteria_results=[],
                attachments=[],
                raw_submission={},
                updated_at=now,
            )
            req.lines.append(
                RequestLine(seq=0, code="62323", modifiers=[], units=1, role="primary", kind=None)
            )
            req.lines.append(
                RequestLine(seq=1, code="01992", modifiers=[], units=1, role="associated", kind="anesthesia")
            )
            rows.append(req)
        session.add_all(rows)
        session.commit()
        return [r.id for r in rows]
