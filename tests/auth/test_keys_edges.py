"""API keys presented in odd shapes, through the REST API and the sign-in form, on both databases: a key that
cannot be ours is refused like any wrong key (401), never a 500."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Actor
from wiserpa.auth.models import Role, User
from wiserpa.auth.service import create_user, issue_key
from wiserpa.web.auth import COOKIE

# Prefixes we never issue (ours are 12 lowercase hex digits): a NUL byte (which PostgreSQL text cannot hold),
# another control character, and one longer than the column.
BAD_PREFIXES = ["ab\x00cd", "ab\x01cd", "x" * 40]


@pytest.mark.parametrize("prefix", BAD_PREFIXES, ids=["nul", "control", "long"])
def test_a_malformed_key_on_the_sign_in_form_is_a_401_page(client: TestClient, prefix: str) -> None:
    """A pasted key with characters we never issue is refused as a wrong key, and nobody is signed in."""
    page = client.post(
        "/login", data={"api_key": f"wpa_{prefix}_secret", "next": "/"}, follow_redirects=False
    )
    assert page.status_code == 401, page.text
    assert COOKIE not in page.headers.get("set-cookie", "")


@pytest.mark.parametrize("prefix", BAD_PREFIXES, ids=["nul", "control", "long"])
def test_a_malformed_key_in_the_cookie_is_a_401_not_a_500(client: TestClient, prefix: str) -> None:
    """The API reads the key from the sign-in cookie too; a cookie carrying a NUL or control character is a 401."""
    escaped = prefix.replace("\x00", "\\000").replace("\x01", "\\001")
    client.cookies.set(COOKIE, f'"wpa_{escaped}_secret"')
    r = client.get("/api/v1/requests")
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthorized"


def test_a_valid_key_still_signs_in_after_the_shape_check(
    client: TestClient, make_actor: Callable[..., Actor]
) -> None:
    """The shape check refuses only what we never issue: a real key works by header and on the form."""
    provider = make_actor("provider")
    assert client.get("/api/v1/requests", headers=provider.headers).status_code == 200
    page = client.post("/login", data={"api_key": provider.key, "next": "/"}, follow_redirects=False)
    assert page.status_code == 303


def test_an_expiring_key_works_until_its_instant_and_then_is_a_401(
    client: TestClient, rt: Any, clock: Any
) -> None:
    """Time is the clock's: a key is refused from its expiry instant on, over the API and on the web."""
    now = clock.now()
    with rt.sessions() as s:
        user = create_user(s, name="Analyst", role=Role.OVERSIGHT, now=now)
        key = issue_key(s, user=user, now=now, expires_at=now + dt.timedelta(days=1))
        s.commit()
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/requests", headers=headers).status_code == 200
    clock.advance(dt.timedelta(days=1) - dt.timedelta(microseconds=1))
    assert client.get("/api/v1/requests", headers=headers).status_code == 200
    clock.advance(dt.timedelta(microseconds=1))
    assert client.get("/api/v1/requests", headers=headers).status_code == 401
    assert client.post("/login", data={"api_key": key}).status_code == 401
    with rt.sessions() as s, pytest.raises(ValueError, match="expire after"):
        issue_key(s, user=s.get(User, user.id), now=clock.now(), expires_at=clock.now())
