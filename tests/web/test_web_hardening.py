"""Web pages under hostile or malformed input: tampered form fields answer 4xx pages, never 500s."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import body
from wiserpa.web.auth import COOKIE, csrf_token


def _login(client: TestClient, actor: Any) -> None:
    client.cookies.clear()
    assert client.post("/login", data={"api_key": actor.key}, follow_redirects=False).status_code == 303


def _pended(client: TestClient, provider: Any) -> int:
    created = client.post("/api/v1/requests", json=body(case="incomplete", seed=60), headers=provider.headers)
    assert created.status_code == 201 and created.json()["status"] == "pended"
    request_id: int = created.json()["id"]
    return request_id


@pytest.mark.parametrize("version", ["²", "٣", "99999999999999999999999"])
def test_tampered_version_on_the_decision_form_is_a_422_page_and_nothing_is_decided(
    client: TestClient, make_actor: Callable[..., Any], version: str
) -> None:
    """A version field that is not ASCII digits within 64 bits was a 500 (int('²') or an overflow)."""
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    request_id = _pended(client, provider)
    _login(client, reviewer)
    page = client.post(
        f"/review/{request_id}/decision",
        data={
            "decision": "affirm",
            "version": version,
            "csrf_token": csrf_token(reviewer.key, "review-decision"),
        },
    )
    assert page.status_code == 422, page.text[:300]
    assert "version" in page.text and "text/html" in page.headers["content-type"]
    status = client.get(f"/api/v1/requests/{request_id}", headers=provider.headers).json()["status"]
    assert status == "pended"


@pytest.mark.parametrize("step", ["schedule", "outcome"])
@pytest.mark.parametrize("p2p_id", ["²", "99999999999999999999999"])
def test_tampered_peer_to_peer_id_is_a_4xx_page(
    client: TestClient, make_actor: Callable[..., Any], step: str, p2p_id: str
) -> None:
    """A peer-to-peer id of '²' or 23 digits was a 500; it is now an unknown id (404 page) or a 422."""
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    request_id = _pended(client, provider)
    _login(client, reviewer)
    page = client.post(
        f"/review/{request_id}/peer-to-peer",
        data={
            "step": step,
            "p2p_id": p2p_id,
            "scheduled_for": "2026-03-04T10:00",
            "outcome": "upheld",
            "csrf_token": csrf_token(reviewer.key, "review-p2p"),
        },
    )
    assert 400 <= page.status_code < 500, page.text[:300]
    assert "text/html" in page.headers["content-type"]


def test_another_site_cannot_sign_a_visitor_in_under_its_own_key(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    """Login CSRF: a cross-site form posting the attacker's key must not set the session cookie."""
    attacker = make_actor("provider")
    page = client.post(
        "/login",
        data={"api_key": attacker.key, "next": "/requests/new"},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert page.status_code == 403
    assert COOKIE not in client.cookies and "set-cookie" not in page.headers
    same_site = client.post(
        "/login",
        data={"api_key": attacker.key},
        headers={"Origin": "http://testserver"},
        follow_redirects=False,
    )
    assert same_site.status_code == 303 and COOKIE in client.cookies


def test_oversight_report_never_labels_a_figure_suppressed(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    """The oversight page is unsuppressed: a figure with nothing to compute reads "—", not "S"."""
    provider, overseer = make_actor("provider"), make_actor("oversight")
    _pended(client, provider)  # TX has one request; the other participants none
    _login(client, overseer)
    page = client.get("/oversight/reports")
    assert page.status_code == 200 and "not suppressed" in page.text
    table = page.text.split('id="oversight-participants"', 1)[1].split("</table>", 1)[0]
    assert "<td>S</td>" not in table
    assert "<td>—</td>" in table and "<td>1</td>" in table


@pytest.mark.parametrize(
    "path",
    ["/api/v1/public/cms0057", "/api/v1/public/compensation", "/public/", "/oversight/reports"],
)
def test_a_malformed_report_year_is_a_422_naming_year_and_an_unknown_one_a_404(
    client: TestClient, make_actor: Callable[..., Any], path: str
) -> None:
    """A year that is not YYYY is bad input (422, field year); a well-formed year without figures is a 404."""
    provider = make_actor("provider")
    _pended(client, provider)
    _login(client, make_actor("oversight"))
    bad = client.get(f"{path}?year=20x6")
    assert bad.status_code == 422
    if path.startswith("/api/"):
        assert [f["field"] for f in bad.json()["error"]["fields"]] == ["year"]
    else:
        assert "year" in bad.text and "text/html" in bad.headers["content-type"]
    assert client.get(f"{path}?year=1999").status_code == 404


XSS = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


def test_text_typed_by_one_party_is_escaped_on_every_page_another_party_reads(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    """Stored XSS: notes, messages and ticket text come back as text, never as markup."""
    provider, reviewer, overseer = make_actor("provider"), make_actor("reviewer"), make_actor("oversight")
    sent = body(case="incomplete", seed=60)
    sent["notes"] = f"practice note {XSS}"
    created = client.post("/api/v1/requests", json=sent, headers=provider.headers).json()
    request_id = created["id"]
    gap = next(c["criterion_id"] for c in created["criteria_results"] if c["result"] != "met")
    _login(client, reviewer)
    asked = client.post(
        f"/review/{request_id}/information",
        data={
            "criterion_ids": gap,
            "message": f"reviewer asks {XSS}",
            "csrf_token": csrf_token(reviewer.key, "review-information"),
        },
    )
    assert asked.status_code == 200
    ticket = client.post(
        "/api/v1/support/tickets",
        json={"category": "other", "subject": f"subject {XSS}", "description": f"description {XSS}"},
        headers=provider.headers,
    ).json()
    client.post(
        f"/api/v1/support/tickets/{ticket['id']}/messages",
        json={"body": f"reply {XSS}"},
        headers=reviewer.headers,
    )
    pages = [
        (reviewer, f"/review/{request_id}"),
        (reviewer, "/review"),
        (reviewer, f"/support/{ticket['id']}"),
    ]
    pages += [
        (provider, f"/requests/{request_id}"),
        (provider, "/support"),
        (provider, f"/support/{ticket['id']}"),
    ]
    pages += [(overseer, f"/requests/{request_id}"), (overseer, f"/support/{ticket['id']}")]
    seen = 0
    for actor, path in pages:
        _login(client, actor)
        text = client.get(path).text
        assert "<script>alert(1)" not in text and "<img src=x" not in text, path
        seen += text.count("&lt;script&gt;alert(1)")
    assert seen >= 5  # the hostile text is shown (escaped), not dropped


@pytest.mark.parametrize("request_id", ["²", "99999999999999999999999"])
def test_a_tampered_request_number_on_the_support_form_is_a_422_naming_it(
    client: TestClient, make_actor: Callable[..., Any], request_id: str
) -> None:
    """A request number that is not ASCII digits within 64 bits is a 422 page naming it, not a 500."""
    provider = make_actor("provider")
    _login(client, provider)
    page = client.post(
        "/support/new",
        data={
            "category": "other",
            "subject": "cannot upload",
            "description": "the upload fails",
            "request_id": request_id,
            "csrf_token": csrf_token(provider.key, "support-new"),
        },
    )
    assert page.status_code == 422 and "request number" in page.text
