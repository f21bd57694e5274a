"""The input limits hold: body size (413), page size (422 above 200), lines and diagnoses per request (422),
each refusal names the field and writes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.conftest import Actor
from tests.factories import body
from wiserpa.observability import iter_routes
from wiserpa.requests.models import PaRequest
from wiserpa.runtime import Runtime


def _count(rt: Runtime) -> int:
    with rt.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(PaRequest)) or 0)


def test_body_over_the_limit_is_413_on_every_post(
    client: TestClient, rt: Runtime, make_actor: Callable[..., Actor]
) -> None:
    """Every POST route refuses an oversized body with 413 before it is read, declared or streamed."""
    provider = make_actor("provider")
    limit = rt.settings.max_body_bytes
    big = json.dumps({**body(), "notes": "x" * (limit + 10)})
    posts = [r.path.replace("{", "").replace("}", "") for r in iter_routes(client.app) if r.method == "POST"]  # type: ignore[arg-type]
    assert posts
    for path in posts:
        url = "/" + "/".join("1" if seg.endswith("_id") else seg for seg in path.strip("/").split("/"))
        r = client.post(url, content=big, headers={**provider.headers, "Content-Type": "application/json"})
        assert r.status_code == 413, (url, r.status_code)
        if url.startswith("/fhir"):  # FHIR clients get an OperationOutcome
            assert r.headers["content-type"] == "application/fhir+json"
            assert [i["code"] for i in r.json()["issue"]] == ["too-costly"], r.json()
        else:
            assert r.json()["error"]["fields"][0]["field"] == "body"

    def chunks() -> object:  # no Content-Length: the limit is enforced while streaming
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    r = client.post("/api/v1/requests", content=chunks(), headers=provider.headers)
    # FastAPI's body parser turns the middleware's mid-stream refusal into a 400; either way it is refused.
    assert r.status_code in (400, 413)
    assert _count(rt) == 0


@pytest.mark.parametrize("path", ["/api/v1/requests", "/api/v1/reviews/worklist"])
def test_page_size_is_capped_at_200(client: TestClient, make_actor: Callable[..., Actor], path: str) -> None:
    """limit=200 is accepted, 201 is a 422 naming `limit`; negative offsets too."""
    reviewer = make_actor("reviewer")
    assert client.get(path, params={"limit": 200}, headers=reviewer.headers).status_code == 200
    for params in ({"limit": 201}, {"limit": 0}, {"offset": -1}):
        r = client.get(path, params=params, headers=reviewer.headers)
        assert r.status_code == 422, (params, r.status_code)
        assert r.json()["error"]["fields"][0]["field"] == next(iter(params))


def test_every_list_route_caps_its_page_size(client: TestClient, make_actor: Callable[..., Actor]) -> None:
    """Any GET route with a `limit` query parameter refuses limit=10000 (new listings join automatically)."""
    schema = client.get("/openapi.json").json()
    admin = make_actor("admin")
    checked = 0
    for path, ops in schema["paths"].items():
        get = ops.get("get")
        if not get or "{" in path:
            continue
        if any(p.get("name") == "limit" and p.get("in") == "query" for p in get.get("parameters", [])):
            r = client.get(path, params={"limit": 10_000}, headers=admin.headers)
            assert r.status_code in (403, 422), (path, r.status_code)  # refused by role, or by the cap
            checked += 1
    assert checked >= 2


def test_too_many_lines_or_diagnoses_is_422(
    client: TestClient, rt: Runtime, make_actor: Callable[..., Actor]
) -> None:
    """More than 20 service lines or 12 diagnosis codes is refused naming the field, and nothing is stored."""
    provider = make_actor("provider")
    b = body()
    lines = b["lines"] * 21
    r = client.post("/api/v1/requests", json={**b, "lines": lines[:21]}, headers=provider.headers)
    assert r.status_code == 422
    assert any(f["field"] == "lines" for f in r.json()["error"]["fields"])
    r = client.post(
        "/api/v1/requests", json={**b, "diagnosis_codes": ["M54.5"] * 13}, headers=provider.headers
    )
    assert r.status_code == 422
    assert any(f["field"] == "diagnosis_codes" for f in r.json()["error"]["fields"])
    r = client.post(
        "/api/v1/requests", json={**b, "attachments": [{"title": "x"}] * 51}, headers=provider.headers
    )
    assert r.status_code == 422
    assert _count(rt) == 0
