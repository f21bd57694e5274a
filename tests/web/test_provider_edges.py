"""Provider pages at the edges: odd form input, other practices' ids, list parameters, resubmit state."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.factories import body
from tests.web.test_request_pages import _form_values, _login
from wiserpa.web.auth import csrf_token


def _submit(client: TestClient, actor: Any, **changes: str) -> Any:
    """Post the complete epidural form, with `changes`, as `actor` (already signed in)."""
    form = _form_values("epidural_steroid_injection")
    form["csrf_token"] = csrf_token(actor.key, "request-new")
    form.update(changes)
    return client.post("/requests/new", data=form, follow_redirects=False)


def _total(client: TestClient, actor: Any) -> int:
    return int(client.get("/api/v1/requests", headers=actor.headers).json()["total"])


def test_an_overlong_form_token_is_answered_not_a_500(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    """A tampered idempotency token longer than the stored key is refused or ignored, never a 500."""
    provider = make_actor("provider")
    _login(client, provider)
    page = _submit(client, provider, idempotency_key="k" * 500)
    assert page.status_code == 422
    assert "token is not valid" in page.text and 'value="k' not in page.text
    assert _total(client, provider) == 0
    # The fresh token on the re-rendered form submits.
    token = re.search(r'name="idempotency_key" value="([^"]+)"', page.text)
    assert token is not None
    assert _submit(client, provider, idempotency_key=token.group(1)).status_code == 303


def test_a_nul_character_in_notes_is_a_422_naming_notes(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    """A NUL pasted into the notes is refused next to the field, with the typed values kept."""
    provider = make_actor("provider")
    _login(client, provider)
    page = _submit(client, provider, notes="before\x00after", provider_npi="1234\x00")
    assert page.status_code == 422
    assert "notes: remove the NUL character" in page.text
    assert 'id="err-provider_npi"' in page.text
    assert "before" in page.text and "after" in page.text
    assert _total(client, provider) == 0


def test_unicode_notes_round_trip(client: TestClient, make_actor: Callable[..., Any]) -> None:
    """Accented names, CJK and emoji in notes are accepted and the request page opens."""
    provider = make_actor("provider")
    _login(client, provider)
    sent = _submit(client, provider, notes="Señora Ñúñez — 痛み 🩺")
    assert sent.status_code == 303, sent.text[:500]
    assert client.get(sent.headers["location"]).status_code == 200


def test_huge_notes_are_a_422_naming_notes_and_nothing_is_stored(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    """Notes past 4,000 characters come back next to the notes field, values kept, nothing stored."""
    provider = make_actor("provider")
    _login(client, provider)
    page = _submit(client, provider, notes="x" * 100_000)
    assert page.status_code == 422, page.text[:500]
    assert "notes: String should have at most 4000 characters" in page.text
    assert _total(client, provider) == 0


def test_impossible_date_is_a_422_naming_the_date(client: TestClient, make_actor: Callable[..., Any]) -> None:
    """2026-02-30 is shown as a date error next to the date, the other values kept."""
    provider = make_actor("provider")
    _login(client, provider)
    page = _submit(client, provider, date_of_service="2026-02-30")
    assert page.status_code == 422
    assert 'id="err-date_of_service"' in page.text
    assert 'value="2026-02-30"' in page.text
    assert _total(client, provider) == 0


def test_unknown_code_and_state_are_422s_naming_them(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    """A code or state outside the model is a field error, never a 500."""
    provider = make_actor("provider")
    _login(client, provider)
    page = _submit(client, provider, code="99999")
    assert page.status_code == 422 and 'id="err-code"' in page.text
    page = _submit(client, provider, state="ZZ")
    assert page.status_code == 422 and 'id="err-state"' in page.text, page.text[-3000:]
    page = _submit(client, provider, state="ÄÖÜ")
    assert page.status_code == 422
    assert _total(client, provider) == 0


def test_missing_fields_are_each_named(client: TestClient, make_actor: Callable[..., Any]) -> None:
    """An empty submit names every required field."""
    provider = make_actor("provider")
    _login(client, provider)
    page = client.post(
        "/requests/new",
        data={"action": "submit", "csrf_token": csrf_token(provider.key, "request-new")},
    )
    assert page.status_code == 422
    for field in ("state", "code", "date_of_service", "provider_npi", "beneficiary_mbi", "diagnosis_codes"):
        assert f'id="err-{field}"' in page.text, field


def test_another_practices_request_page_is_a_404(client: TestClient, make_actor: Callable[..., Any]) -> None:
    """A practice that guesses another practice's request id sees not found, not the request."""
    owner = make_actor("provider")
    other = make_actor("provider")
    made = client.post("/api/v1/requests", json=body("epidural_steroid_injection"), headers=owner.headers)
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    _login(client, other)
    page = client.get(f"/requests/{rid}")
    assert page.status_code == 404
    sent = client.post(
        f"/requests/{rid}/resubmit",
        data={"csrf_token": csrf_token(other.key, "request-resubmit"), "notes": "x"},
    )
    assert sent.status_code == 404
    assert _total(client, other) == 0


def test_list_page_bad_parameters_are_4xx(client: TestClient, make_actor: Callable[..., Any]) -> None:
    """Unknown status, negative or non-numeric offset are refused with a 4xx page, never a 500."""
    provider = make_actor("provider")
    _login(client, provider)
    for params in ({"status": "bogus"}, {"offset": "-1"}, {"offset": "abc"}, {"offset": "99999999999"}):
        page = client.get("/requests", params=params)
        assert 400 <= page.status_code < 500, (params, page.status_code)
    assert client.get("/requests", params={"offset": "500"}).status_code == 200


def test_resubmit_of_an_affirmed_request_is_refused(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    """Resubmitting a request that is not non-affirmed or withdrawn is a 4xx, and no new request is made."""
    provider = make_actor("provider")
    _login(client, provider)
    sent = _submit(client, provider)
    assert sent.status_code == 303
    rid = re.findall(r"\d+", sent.headers["location"])[0]
    page = client.post(
        f"/requests/{rid}/resubmit",
        data={"csrf_token": csrf_token(provider.key, "request-resubmit"), "notes": "again"},
        follow_redirects=False,
    )
    assert 400 <= page.status_code < 500, (page.status_code, page.text[:300])
    assert _total(client, provider) == 1


def test_an_undecided_request_past_its_due_time_reads_deemed_affirmed(
    client: TestClient, make_actor: Callable[..., Any], clock: Any
) -> None:
    """Before any sweep, the list, its status filter and the request page show deemed affirmed after due."""
    provider = make_actor("provider")
    made = client.post(
        "/api/v1/requests",
        json=body("epidural_steroid_injection", case="incomplete"),
        headers=provider.headers,
    )
    assert made.status_code == 201 and made.json()["status"] == "pended", made.text
    rid = made.json()["id"]
    _login(client, provider)
    clock.advance(dt.timedelta(days=30))
    listing = client.get("/requests", params={"status": "deemed_affirmed"})
    assert f'href="/requests/{rid}"' in listing.text
    assert f'href="/requests/{rid}"' not in client.get("/requests", params={"status": "pended"}).text
    page = client.get(f"/requests/{rid}")
    assert page.status_code == 200 and "deemed" in page.text.lower()


def test_same_form_token_with_other_values_is_a_409_with_a_fresh_token(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    """Back button, edit, submit again: the page says so, keeps the values and offers a new token."""
    provider = make_actor("provider")
    _login(client, provider)
    assert _submit(client, provider, idempotency_key="tok-1").status_code == 303
    page = _submit(client, provider, idempotency_key="tok-1", notes="changed after going back")
    assert page.status_code == 409
    assert "already submitted with other values" in page.text and "changed after going back" in page.text
    assert 'value="tok-1"' not in page.text
    assert _total(client, provider) == 1


def test_nul_in_resubmit_and_peer_to_peer_notes_is_refused(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    """A NUL in the resubmit or peer-to-peer note is refused with a message, never a 500."""
    provider = make_actor("provider")
    made = client.post(
        "/api/v1/requests",
        json=body("epidural_steroid_injection", case="incomplete"),
        headers=provider.headers,
    )
    rid = made.json()["id"]
    _login(client, provider)
    asked = client.post(
        f"/requests/{rid}/peer-to-peer",
        data={"csrf_token": csrf_token(provider.key, "request-p2p"), "note": "call me\x00"},
    )
    assert asked.status_code == 200 and "Not requested" in asked.text
    client.post(f"/api/v1/requests/{rid}/withdraw", headers=provider.headers)
    sent = client.post(
        f"/requests/{rid}/resubmit",
        data={"csrf_token": csrf_token(provider.key, "request-resubmit"), "notes": "again\x00"},
        follow_redirects=False,
    )
    assert sent.status_code == 422
    assert "notes: remove the NUL character" in sent.text
    assert _total(client, provider) == 1


def test_too_many_additional_codes_are_named_at_the_additional_codes_field(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    """More than 20 lines is shown next to the add-on codes box, not the primary code the user chose."""
    provider = make_actor("provider")
    _login(client, provider)
    page = _submit(client, provider, additional_codes=", ".join(["64483"] * 25))
    assert page.status_code == 422
    assert 'id="err-additional_codes"' in page.text and 'id="err-code"' not in page.text
    assert _total(client, provider) == 0


def test_a_bad_query_parameter_on_a_page_is_an_html_page_naming_it(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    """?status=bogus, ?offset=-1 and ?state=TEXAS answer a 422 HTML page that names the parameter."""
    provider = make_actor("provider")
    _login(client, provider)
    for path, params, name in (
        ("/requests", {"status": "bogus"}, "status"),
        ("/requests", {"offset": "-1"}, "offset"),
        ("/requests/new", {"state": "TEXAS"}, "state"),
    ):
        page = client.get(path, params=params)
        assert page.status_code == 422
        assert page.headers["content-type"].startswith("text/html"), (path, params)
        assert name in page.text


def _pended(client: TestClient, provider: Any) -> int:
    made = client.post(
        "/api/v1/requests",
        json=body("epidural_steroid_injection", case="incomplete"),
        headers=provider.headers,
    )
    assert made.status_code == 201 and made.json()["status"] == "pended", made.text
    return int(made.json()["id"])


def test_a_practice_withdraws_its_request_from_the_page(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    """The request page offers the withdrawal; it records the reason, and the page then offers resubmission."""
    provider = make_actor("provider")
    rid = _pended(client, provider)
    _login(client, provider)
    page = client.get(f"/requests/{rid}")
    assert f'action="/requests/{rid}/withdraw"' in page.text and 'name="version" value="1"' in page.text
    done = client.post(
        f"/requests/{rid}/withdraw",
        data={
            "csrf_token": csrf_token(provider.key, "request-withdraw"),
            "version": "1",
            "reason": "Surgery cancelled",
        },
    )
    assert done.status_code == 200 and f"Request {rid} withdrawn." in done.text
    assert (
        f'action="/requests/{rid}/withdraw"' not in done.text
        and f'action="/requests/{rid}/resubmit"' in done.text
    )
    stored = client.get(f"/api/v1/requests/{rid}", headers=provider.headers).json()
    assert stored["status"] == "withdrawn"
    assert (
        stored["decisions"][-1]["kind"] == "withdrawn"
        and stored["decisions"][-1]["note"] == "Surgery cancelled"
    )


def test_a_stale_or_odd_withdrawal_changes_nothing(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    """A page older than the request, a NUL or overlong reason, an altered version, another practice, a missing
    token: each is refused with a message or a 4xx, and the request stays pended."""
    provider, other = make_actor("provider"), make_actor("provider")
    rid = _pended(client, provider)
    _login(client, provider)
    token = csrf_token(provider.key, "request-withdraw")
    for data, message in (
        ({"version": "7"}, "changed"),
        ({"version": "1", "reason": "x\x00"}, "NUL"),
        ({"version": "1", "reason": "x" * 1001}, "at most 1,000"),
        ({"version": "one"}, "altered"),
    ):
        page = client.post(f"/requests/{rid}/withdraw", data={"csrf_token": token, **data})
        assert page.status_code == 200 and "Not withdrawn" in page.text and message in page.text, data
    assert client.post(f"/requests/{rid}/withdraw", data={"version": "1"}).status_code == 403
    _login(client, other)
    foreign = client.post(
        f"/requests/{rid}/withdraw",
        data={"csrf_token": csrf_token(other.key, "request-withdraw"), "version": "1"},
    )
    assert "Not withdrawn" in foreign.text and "not found" in foreign.text
    assert client.get(f"/api/v1/requests/{rid}", headers=provider.headers).json()["status"] == "pended"
