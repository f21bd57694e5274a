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
    assert (
        client.get(f"/api/v1/requests/{rid}/workflow", headers=provider.headers).json()["peer_to_peer"] == []
    )
    assert client.get("/api/v1/support/tickets", headers=provider.headers).json()["items"] == []


def _nul_locs(raw: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Where validating a submission body put NUL-character errors (empty when it validated)."""
    from pydantic import ValidationError

    from wiserpa.requests.schemas import SubmitRequestIn

    try:
        SubmitRequestIn.model_validate(raw)
    except ValidationError as exc:
        return [tuple(e["loc"]) for e in exc.errors() if e["type"] == "nul_character"]
    return []


def test_the_whole_body_is_checked_once_and_every_nul_is_named() -> None:
    """The outermost shape scans the body in one pass; a body with NULs is then checked field by field, naming
    each one down through nested shapes (and a plain dict such as the clinical facts by its field)."""
    raw = body()
    raw["notes"] = "see\x00attached"
    raw["provider"]["name"] = "Dr\x00X"
    raw["attachments"] = [{"title": "fine"}, {"title": "a\x00"}]
    raw["clinical_facts"]["note\x00"] = "a NUL in a key"
    assert sorted(_nul_locs(raw), key=str) == sorted(
        [("notes",), ("provider", "name"), ("attachments", 1, "title"), ("clinical_facts",)], key=str
    )


def test_text_that_spells_out_the_escape_is_not_a_nul() -> None:
    """The one-pass scan looks for JSON's escape of U+0000; a body that merely contains those six characters is
    checked exactly and accepted."""
    raw = body()
    raw["notes"] = "the log said \\u0000 at offset 4"
    assert _nul_locs(raw) == []


def test_a_nul_inside_a_shape_held_in_a_dict_is_named() -> None:
    """The exact check descends through shapes wherever they sit, dict values included."""
    from pydantic import ValidationError

    from wiserpa.inbound import Strict

    class Leaf(Strict):
        text: str

    class Holder(Strict):
        by_key: dict[str, Leaf]

    try:
        Holder.model_validate({"by_key": {"a": {"text": "fine"}, "b": {"text": "x\x00"}}})
    except ValidationError as exc:
        assert [tuple(e["loc"]) for e in exc.errors()] == [("by_key", "b", "text")]
    else:
        raise AssertionError("a NUL in a nested shape was accepted")
