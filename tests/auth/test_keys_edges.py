"""API keys presented in odd shapes, through the REST API and the sign-in form, on both databases: a key that
cannot be ours is refused like any wrong key (401), never a 500."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Actor
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
