"""Deemed approval is a function of time: every read a user sees agrees before any sweep has run.

Each test moves the injected clock past a request's due time and reads it through the real interfaces (REST,
web pages, reports); no sweep runs before those reads, so what they see is computed from time alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient

from tests.claims.helpers import AFTER_DOS, claim, line, post_claim
from tests.deadlines.conftest import insert_open
from tests.factories import body
from wiserpa.deadlines.service import sweep
from wiserpa.policy.clock import FixedClock
from wiserpa.reporting import service as reporting
from wiserpa.requests.models import PaRequest
from wiserpa.runtime import Runtime
from wiserpa.web.auth import csrf_token
from wiserpa.web.views import NOTICE_COOKIE

UTC = dt.UTC


def _due(view: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(view["due_at"].replace("Z", "+00:00"))


def _ids(client: TestClient, headers: dict[str, str], **params: str) -> tuple[list[int], int]:
    r = client.get("/api/v1/requests", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return [item["id"] for item in r.json()["items"]], r.json()["total"]


def _stored_status(rt: Runtime, request_id: int) -> str:
    with rt.sessions() as s:
        req = s.get(PaRequest, request_id)
        assert req is not None
        return req.status


def test_list_filters_and_worklist_switch_at_the_exact_due_instant(
    client: TestClient,
    rt: Runtime,
    clock: FixedClock,
    submit_pended: Callable[..., dict[str, Any]],
    make_actor: Callable[..., Any],
) -> None:
    """The SQL filter, the worklist and the Python view agree one second before and at the due instant."""
    first = submit_pended()
    clock.advance(dt.timedelta(hours=1))
    second = submit_pended()
    headers = first["_headers"]
    reviewer = make_actor("reviewer")

    clock.set(_due(first) - dt.timedelta(seconds=1))
    assert _ids(client, headers, status="pended") == ([second["id"], first["id"]], 2)
    assert _ids(client, headers, status="deemed_affirmed") == ([], 0)
    worklist = client.get("/api/v1/reviews/worklist", headers=reviewer.headers).json()
    assert [i["id"] for i in worklist["items"]] == [first["id"], second["id"]]

    clock.set(_due(first))
    assert _ids(client, headers, status="pended") == ([second["id"]], 1)
    assert _ids(client, headers, status="deemed_affirmed") == ([first["id"]], 1)
    listed = client.get("/api/v1/requests", headers=headers).json()["items"]
    assert {i["id"]: i["status"] for i in listed} == {first["id"]: "deemed_affirmed", second["id"]: "pended"}
    worklist = client.get("/api/v1/reviews/worklist", headers=reviewer.headers).json()
    assert [i["id"] for i in worklist["items"]] == [second["id"]] and worklist["total"] == 1
    assert _stored_status(rt, first["id"]) == "pended"  # nothing materialized: read from time alone


def test_misses_and_penalty_ledger_count_a_deemed_request_before_any_sweep(
    client: TestClient,
    rt: Runtime,
    clock: FixedClock,
    submit_pended: Callable[..., dict[str, Any]],
    make_actor: Callable[..., Any],
) -> None:
    """Oversight sees the missed timeline and its price as soon as time deems the request."""
    view = submit_pended()
    oversight = make_actor("oversight")
    clock.set(_due(view) - dt.timedelta(seconds=1))
    assert client.get("/api/v1/deadlines/misses", headers=oversight.headers).json()["total"] == 0

    clock.set(_due(view) + dt.timedelta(days=2))
    misses = client.get("/api/v1/deadlines/misses", headers=oversight.headers).json()
    assert misses["total"] == 1
    (miss,) = misses["items"]
    assert (miss["request_id"], miss["resolution"], miss["due_at"]) == (view["id"], "deemed", view["due_at"])
    assert (miss["late_seconds"], miss["penalty_usd"]) == (0, 500)  # deemed at the due instant: flat amount
    ledger = client.get("/api/v1/penalties", headers=oversight.headers).json()
    assert ledger["total_usd"] == 500
    (line,) = ledger["items"]
    assert (line["misses"], line["by_resolution"]["deemed"], line["month"]) == (1, 1, "2026-03")
    # The published figures price the same miss.
    assert reporting.oversight_report(rt).row("Cohere Health", "2026-03")["penalty_usd"] == 500

    # A sweep stores that very miss: nothing changes for the reader, nothing is counted twice.
    with rt.sessions() as s:
        assert sweep(s, rt).misses_recorded == 1
    stored = client.get("/api/v1/deadlines/misses", headers=oversight.headers).json()
    assert stored["total"] == 1
    assert {k: v for k, v in stored["items"][0].items() if not k.startswith("detected")} == {
        k: v for k, v in miss.items() if not k.startswith("detected")
    }
    assert client.get("/api/v1/penalties", headers=oversight.headers).json()["items"] == ledger["items"]


def test_misses_page_through_stored_and_unrecorded_misses_in_due_order(
    client: TestClient, rt: Runtime, clock: FixedClock, make_actor: Callable[..., Any]
) -> None:
    """Stored misses and misses only time has made yet share one ordering, one count and one paging."""
    start = clock.now()
    swept = insert_open(rt, 2, due_at=start + dt.timedelta(hours=1))
    clock.set(start + dt.timedelta(hours=2))
    with rt.sessions() as s:
        assert sweep(s, rt).misses_recorded == 2
    fresh = insert_open(rt, 1, due_at=start + dt.timedelta(hours=3), state="WA")
    clock.set(start + dt.timedelta(hours=4))
    oversight = make_actor("oversight")

    def page(**params: Any) -> tuple[list[tuple[int, str]], int]:
        got = client.get("/api/v1/deadlines/misses", params=params, headers=oversight.headers).json()
        return [(m["request_id"], m["detected_by"]) for m in got["items"]], got["total"]

    assert page(limit=2) == ([(fresh[0], "time"), (swept[1], "sweep")], 3)
    assert page(limit=2, offset=2) == ([(swept[0], "sweep")], 3)
    assert page(state="WA") == ([(fresh[0], "time")], 1)
    assert page(participant="cohere health") == ([(swept[1], "sweep"), (swept[0], "sweep")], 2)
    assert page(month="2026-04") == ([], 0)
    wa_reviewer = make_actor("reviewer", state="WA")
    (line,) = client.get("/api/v1/penalties", headers=wa_reviewer.headers).json()["items"]
    assert (line["state"], line["misses"], line["amount_usd"]) == ("WA", 1, 500)


@pytest.mark.parametrize("profile_name", ["wiser-2026"])
def test_an_unswept_still_open_miss_is_listed_and_its_price_grows_with_time(
    client: TestClient,
    clock: FixedClock,
    submit_pended: Callable[..., dict[str, Any]],
    make_actor: Callable[..., Any],
    profile_name: str,
) -> None:
    """Without deemed approval the miss stays open and accrues per started day, sweep or no sweep."""
    view = submit_pended()
    reviewer, other_state = make_actor("reviewer"), make_actor("reviewer", state="WA")
    clock.set(_due(view) + dt.timedelta(days=1, seconds=1))
    misses = client.get("/api/v1/deadlines/misses?resolution=still_open", headers=reviewer.headers).json()
    (miss,) = misses["items"]
    assert (miss["request_id"], miss["days_late"], miss["penalty_usd"]) == (view["id"], 2, 700)
    assert (
        client.get("/api/v1/deadlines/misses?resolution=deemed", headers=reviewer.headers).json()["total"]
        == 0
    )
    assert client.get("/api/v1/deadlines/misses", headers=other_state.headers).json()["total"] == 0
    clock.advance(dt.timedelta(days=1))
    (line,) = client.get("/api/v1/penalties", headers=reviewer.headers).json()["items"]
    assert (line["by_resolution"]["still_open"], line["days_late"], line["amount_usd"]) == (1, 3, 800)
    assert line["status"] == "recorded_only"


def test_a_resubmission_deemed_by_time_counts_as_approved_after_appeal(
    client: TestClient,
    rt: Runtime,
    clock: FixedClock,
    submit_pended: Callable[..., dict[str, Any]],
    make_actor: Callable[..., Any],
) -> None:
    """CMS-0057-F "approved after appeal" agrees with the resubmission's own (deemed) outcome before a sweep."""
    original = submit_pended()
    gaps = [c["criterion_id"] for c in original["criteria_results"] if c["result"] != "met"]
    reviewer = make_actor("reviewer")
    denied = client.post(
        f"/api/v1/requests/{original['id']}/decision",
        json={"decision": "non_affirm", "reasons": gaps[:1]},
        headers=reviewer.headers,
    )
    assert denied.status_code == 200 and denied.json()["status"] == "non_affirmed"
    again = client.post(f"/api/v1/requests/{original['id']}/resubmit", json={}, headers=original["_headers"])
    assert again.status_code == 201 and again.json()["status"] == "pended"
    clock.set(_due(again.json()))
    assert client.get(f"/api/v1/requests/{again.json()['id']}", headers=original["_headers"]).json()[
        "status"
    ] == ("deemed_affirmed")
    cms = {x["key"]: x for x in reporting.oversight_report(rt).cms0057[("Cohere Health", "2026")]}
    # Two standard requests: the original (non-affirmed, then approved through its resubmission) and the
    # resubmission (deemed affirmed).
    assert cms["standard_approved_after_appeal_pct"]["value"] == pytest.approx(50.0)


def _login(client: TestClient, key: str) -> None:
    client.cookies.clear()
    assert client.post("/login", data={"api_key": key}, follow_redirects=False).status_code == 303


def test_pages_a_form_opened_before_the_due_time_and_sent_after_it_does_not_overturn(
    client: TestClient,
    clock: FixedClock,
    submit_pended: Callable[..., dict[str, Any]],
    make_actor: Callable[..., Any],
) -> None:
    """The reviewer's pages drop the request at its due time, and a non-affirmation sent late is ignored."""
    view = submit_pended()
    gaps = [c["criterion_id"] for c in view["criteria_results"] if c["result"] != "met"]
    reviewer = make_actor("reviewer")
    link = f'href="/review/{view["id"]}"'

    clock.set(_due(view) - dt.timedelta(minutes=1))
    _login(client, reviewer.key)
    assert link in client.get("/review").text
    assert f'action="/review/{view["id"]}/decision"' in client.get(f"/review/{view['id']}").text

    clock.set(_due(view) + dt.timedelta(minutes=1))
    assert link not in client.get("/review").text
    page = client.get(f"/review/{view['id']}").text
    assert f'action="/review/{view["id"]}/decision"' not in page and "deemed affirmed" in page.lower()
    sent = client.post(
        f"/review/{view['id']}/decision",
        data={
            "decision": "non_affirm",
            "reasons": gaps[0],
            "version": str(view["version"]),
            "csrf_token": csrf_token(reviewer.key, "review-decision"),
        },
        follow_redirects=False,
    )
    assert sent.status_code == 303 and sent.headers["location"] == "/review"
    assert "recorded as late" in unquote(sent.cookies.get(NOTICE_COOKIE) or "")

    provider_key = view["_headers"]["Authorization"].removeprefix("Bearer ")
    _login(client, provider_key)
    listed = client.get("/requests", params={"status": "deemed_affirmed"}).text
    assert f'href="/requests/{view["id"]}"' in listed
    assert f'href="/requests/{view["id"]}"' not in client.get("/requests", params={"status": "pended"}).text
    client.cookies.clear()
    read = client.get(f"/api/v1/requests/{view['id']}", headers=view["_headers"]).json()
    assert read["status"] == "deemed_affirmed" and read["decision_kind"] == "deemed"
    assert [(d["kind"], d["effective"]) for d in read["decisions"]][-2:] == [
        ("deemed", True),
        ("late_non_affirm", False),
    ]


def test_prepayment_review_list_filter_follows_the_missed_decision_clock(
    client: TestClient, clock: FixedClock, make_actor: Callable[..., Any]
) -> None:
    """A review whose decision clock ran out reads deemed payable, and the worklist filter agrees."""
    clock.set(AFTER_DOS)
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    made = post_claim(client, provider.headers, claim([line("62323")])).json()
    rid = made["lines"][0]["prepayment_review"]["id"]
    docs = client.post(
        f"/api/v1/claims/reviews/{rid}/documents",
        json={"clinical_facts": body(case="incomplete")["clinical_facts"]},
        headers=provider.headers,
    ).json()
    assert docs["status"] == "under_review"
    clock.set(dt.datetime.fromisoformat(docs["decision_due_at"].replace("Z", "+00:00")))

    def listed(status: str) -> list[tuple[int, str]]:
        got = client.get("/api/v1/claims/reviews", params={"status": status}, headers=reviewer.headers)
        assert got.status_code == 200, got.text
        return [(r["id"], r["status"]) for r in got.json()["items"]]

    assert listed("deemed_payable") == [(rid, "deemed_payable")]
    assert listed("under_review") == []
