"""Support and experience pages through TestClient: forms, CSRF, role scope and the patterns page."""

from __future__ import annotations

from fastapi.testclient import TestClient

from wiserpa.web.auth import csrf_token


def sign_in(client: TestClient, key: str) -> None:
    r = client.post("/login", data={"api_key": key}, follow_redirects=False)
    assert r.status_code == 303


def test_ticket_pages_provider_then_staff(client: TestClient, make_actor) -> None:
    provider = make_actor("provider", state="TX")
    staff = make_actor("reviewer", state="TX")
    sign_in(client, provider.key)
    assert "New support ticket" in client.get("/support/new").text
    form = {
        "csrf_token": csrf_token(provider.key, "support-new"),
        "category": "upload_failure",
        "subject": "",
        "description": "PDF rejected",
        "urgent_trigger": "pain",
    }
    r = client.post("/support/new", data=form)
    assert r.status_code == 422 and "enter a subject" in r.text
    form["subject"] = "Upload fails"
    r = client.post("/support/new", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/support/")
    page = client.get(r.headers["location"]).text
    assert "Upload fails" in page and "urgent" in page and "left" in page
    # No CSRF token: nothing done.
    assert client.post("/support/new", data={**form, "csrf_token": "x"}).status_code == 403
    client.cookies.clear()
    sign_in(client, staff.key)
    queue = client.get("/support").text
    assert "Support queue" in queue and "Upload fails" in queue and "Response-time compliance" in queue
    tid = r.headers["location"].rsplit("/", 1)[1]
    r = client.post(
        f"/support/{tid}/message",
        data={"csrf_token": csrf_token(staff.key, "support-message"), "body": "Try a smaller file."},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "Try a smaller file." in client.get(f"/support/{tid}").text


def test_experience_form_rejects_identifiers_and_oversight_sees_patterns(
    client: TestClient, make_actor
) -> None:
    provider = make_actor("provider", state="WA")
    sign_in(client, provider.key)
    form = {
        "csrf_token": csrf_token(provider.key, "experience-new"),
        "state": "WA",
        "service_code": "62323",
        "requested_on": "2026-02-02",
        "decided_on": "2026-02-21",
        "obstacles": ["portal_outage"],
        "impact": "delayed_care",
        "narrative": "Call me at 555-123-4567 about Mrs. Jones.",
    }
    r = client.post("/experience/new", data=form)
    assert r.status_code == 422 and "found: name, phone" in r.text
    form["narrative"] = "The portal rejected the upload three times; the epidural slipped 19 days."
    r = client.post("/experience/new", data=form, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/experience/patterns").status_code == 403
    client.cookies.clear()
    cms = make_actor("oversight")
    sign_in(client, cms.key)
    page = client.get("/experience/patterns").text
    assert 'id="report-count"><strong>1</strong>' in page and "<svg" in page
    assert "Participant portal unavailable" in page
    assert client.get("/api/v1/experience/export.csv").status_code == 200  # the cookie works for exports
