"""The web foundation: sign-in cookie, CSRF, role-aware nav, HTML errors."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from wiserpa.web.auth import COOKIE, csrf_token


def test_home_is_public_and_offers_sign_in(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "Sign in" in page.text
    assert 'lang="en"' in page.text and '<main id="main"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_login_sets_a_strict_httponly_cookie_and_nav_follows_role(
    client: TestClient, make_actor: Callable[..., object]
) -> None:
    provider = make_actor("provider")
    page = client.post("/login", data={"api_key": provider.key, "next": "/"}, follow_redirects=False)
    assert page.status_code == 303
    cookie = page.headers["set-cookie"]
    assert (
        f"{COOKIE}=" in cookie
        and "HttpOnly" in cookie
        and "SameSite=strict" in cookie.replace("Strict", "strict")
    )
    home = client.get("/")
    assert "New request" in home.text and "Worklist" not in home.text
    assert "Signed in as" in home.text

    client.cookies.clear()
    reviewer = make_actor("reviewer")
    client.post("/login", data={"api_key": reviewer.key})
    home = client.get("/")
    assert "Worklist" in home.text and "New request" not in home.text


def test_wrong_key_is_refused_on_the_form(client: TestClient) -> None:
    page = client.post("/login", data={"api_key": "wpa_nope_nope"})
    assert page.status_code == 401
    assert "not recognized" in page.text
    assert COOKIE not in client.cookies


def test_login_never_redirects_off_site(client: TestClient, make_actor: Callable[..., object]) -> None:
    provider = make_actor("provider")
    page = client.post(
        "/login", data={"api_key": provider.key, "next": "//evil.example/x"}, follow_redirects=False
    )
    assert page.headers["location"] == "/"


def test_protected_page_redirects_to_login_and_back(client: TestClient) -> None:
    page = client.get("/requests", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/requests"


def test_logout_needs_the_csrf_token(client: TestClient, make_actor: Callable[..., object]) -> None:
    provider = make_actor("provider")
    client.post("/login", data={"api_key": provider.key})
    refused = client.post("/logout", data={})
    assert refused.status_code == 403 and "Form expired" in refused.text
    assert COOKIE in client.cookies
    forged = client.post("/logout", data={"csrf_token": csrf_token(provider.key, "other-form")})
    assert forged.status_code == 403
    ok = client.post(
        "/logout", data={"csrf_token": csrf_token(provider.key, "logout")}, follow_redirects=False
    )
    assert ok.status_code == 303
    assert COOKIE not in client.cookies


def test_csrf_refuses_a_cross_origin_post(client: TestClient, make_actor: Callable[..., object]) -> None:
    provider = make_actor("provider")
    client.post("/login", data={"api_key": provider.key})
    page = client.post(
        "/logout",
        data={"csrf_token": csrf_token(provider.key, "logout")},
        headers={"Origin": "https://evil.example"},
    )
    assert page.status_code == 403


def test_static_assets_are_served(client: TestClient) -> None:
    assert client.get("/static/wiserpa.css").status_code == 200
    assert "countdown" in client.get("/static/wiserpa.js").text
