"""Every inbound API shape refuses the NUL character with a 422 naming the field (PostgreSQL cannot store it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.factories import body


def test_nul_in_any_domains_text_is_a_422_naming_the_field_and_writes_nothing(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    """Peer-to-peer notes and support tickets used plain models: NUL reached the database (500 on PostgreSQL)."""
    provider = make_actor("provider")
    made = client.post("/api/v1/requests", json=body(case="incomplete"), headers=provider.headers)
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    for path, sent, field in (
        (f"/api/v1/requests/{rid}/peer-to-peer", {"note": "call me\x00"}, "note"),
        (
            "/api/v1/support/tickets",
            {"category": "other", "subject": "upload\x00", "description": "it fails"},
            "subject",
        ),
    ):
        r = client.post(path, json=sent, headers=provider.headers)
        assert r.status_code == 422, (path, r.text)
        assert field in [f["field"] for f in r.json()["error"]["fields"]], r.json()
    assert client.get(f"/api/v1/requests/{rid}/workflow", headers=provider.headers).json()["peer_to_peer"] == []
    assert client.get("/api/v1/support/tickets", headers=provider.headers).json()["items"] == []
