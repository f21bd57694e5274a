"""Edges of the clinician decision and the review workflow through the REST API and the web form, on both
databases: who may non-affirm, what may be cited, which requests can still be decided, and what is audited."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import Actor
from tests.factories import body
from wiserpa.audit.models import AuditEntry
from wiserpa.auth.models import Role
from wiserpa.auth.service import create_user, issue_key, principal_for
from wiserpa.errors import Conflict
from wiserpa.policy.clock import FixedClock
from wiserpa.policy.examples import VIOLATIONS
from wiserpa.requests.models import Decision, PaRequest
from wiserpa.reviews import workflow
from wiserpa.runtime import Runtime
from wiserpa.web.auth import csrf_token


def _pended(
    client: TestClient, provider: Actor, category: str = "vertebral_augmentation"
) -> tuple[dict[str, Any], str]:
    fact, bad, criterion_id = VIOLATIONS[category]
    data = body(category)
    data["clinical_facts"][fact] = bad
    view = client.post("/api/v1/requests", json=data, headers=provider.headers).json()
    assert view["status"] == "pended", view
    return view, criterion_id


def _counts(rt: Runtime, request_id: int) -> tuple[int, int, str, int]:
    """Audit rows, decision rows, stored status and version of one request."""
    with rt.sessions() as s:
        audits = s.scalar(select(func.count()).select_from(AuditEntry)) or 0
        decisions = s.scalar(select(func.count()).where(Decision.request_id == request_id)) or 0
        req = s.get(PaRequest, request_id)
        assert req is not None
        return audits, decisions, req.status, req.version


def _clinician_without_npi(rt: Runtime, reviewer: Actor) -> Actor:
    """A reviewer flagged as clinician but with no NPI on file, in the same participant as `reviewer`."""
    with rt.sessions() as s:
        user = create_user(
            s,
            name="No-NPI clinician",
            role=Role.REVIEWER,
            now=rt.clock.now(),
            organization_id=reviewer.organization_id,
            state="TX",
            npi=None,
            credentials="MD",
            is_clinician=True,
        )
        key = issue_key(s, user=user, now=rt.clock.now())
        s.commit()
        return Actor(key, principal_for(user), reviewer.organization_id)


def test_a_clinician_without_an_npi_cannot_non_affirm_and_nothing_is_written(
    client: TestClient, make_actor: Callable[..., Actor], rt: Runtime
) -> None:
    """A clinician flag alone is not enough: without an NPI on file the non-affirmation is a 403."""
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    view, criterion_id = _pended(client, provider)
    no_npi = _clinician_without_npi(rt, reviewer)
    before = _counts(rt, view["id"])
    r = client.post(
        f"/api/v1/requests/{view['id']}/decision",
        json={"decision": "non_affirm", "reasons": [criterion_id]},
        headers=no_npi.headers,
    )
    assert r.status_code == 403, r.text
    assert "NPI" in r.json()["error"]["message"]
    assert _counts(rt, view["id"]) == before
    # The same reviewer may still affirm: machines and any reviewer may approve.
    ok = client.post(
        f"/api/v1/requests/{view['id']}/decision", json={"decision": "affirm"}, headers=no_npi.headers
    )
    assert ok.status_code == 200 and ok.json()["status"] == "affirmed"


def test_non_affirm_may_not_cite_a_met_criterion_or_one_of_another_policy(
    client: TestClient, make_actor: Callable[..., Actor], rt: Runtime
) -> None:
    """Only this request's unmet or undocumented criteria may be cited; the 422 names `reasons`."""
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    view, criterion_id = _pended(client, provider)
    met = next(r["criterion_id"] for r in view["criteria_results"] if r["result"] == "met")
    other_policy = VIOLATIONS["spinal_cord_stimulation"][2]
    before = _counts(rt, view["id"])
    for reasons in ([met], [criterion_id, met], [other_policy]):
        r = client.post(
            f"/api/v1/requests/{view['id']}/decision",
            json={"decision": "non_affirm", "reasons": reasons},
            headers=reviewer.headers,
        )
        assert r.status_code == 422, r.text
        fields = r.json()["error"]["fields"]
        assert fields[0]["field"] == "reasons" and reasons[-1] in fields[0]["message"]
    assert _counts(rt, view["id"]) == before


def test_a_non_affirmation_records_each_cited_criterion_once_with_its_section(
    client: TestClient, make_actor: Callable[..., Actor], rt: Runtime
) -> None:
    """The decision record names each cited criterion once, with its NCD/LCD citation, profile and results."""
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    view, criterion_id = _pended(client, provider)
    r = client.post(
        f"/api/v1/requests/{view['id']}/decision",
        json={"decision": "non_affirm", "reasons": [criterion_id, criterion_id]},
        headers=reviewer.headers,
    )
    assert r.status_code == 200, r.text
    with rt.sessions() as s:
        decision = s.scalars(
            select(Decision).where(Decision.request_id == view["id"], Decision.kind == "clinician_non_affirm")
        ).one()
        assert [x["criterion_id"] for x in decision.reasons] == [criterion_id]
        assert decision.reasons[0]["citation"]["policy"] == view["policy_id"]
        assert decision.reasons[0]["citation"]["section"]
        assert (decision.profile_id, decision.profile_version) == (
            view["profile"]["id"],
            view["profile"]["version"],
        )
        assert {c["criterion_id"] for c in decision.criteria_results} == {
            c["criterion_id"] for c in view["criteria_results"]
        }
        assert decision.reviewer_npi == reviewer.principal.npi


def test_withdrawn_or_already_decided_requests_cannot_be_decided(
    client: TestClient, make_actor: Callable[..., Actor], rt: Runtime
) -> None:
    """A decision on a withdrawn or decided request is a 409 that changes nothing."""
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    withdrawn, gap = _pended(client, provider)
    assert (
        client.post(
            f"/api/v1/requests/{withdrawn['id']}/withdraw",
            json={"reason": "changed plan"},
            headers=provider.headers,
        ).status_code
        == 200
    )
    decided, gap2 = _pended(client, provider)
    assert (
        client.post(
            f"/api/v1/requests/{decided['id']}/decision",
            json={"decision": "affirm"},
            headers=reviewer.headers,
        ).status_code
        == 200
    )
    for rid, reason in ((withdrawn["id"], gap), (decided["id"], gap2)):
        before = _counts(rt, rid)
        for decision in ({"decision": "affirm"}, {"decision": "non_affirm", "reasons": [reason]}):
            r = client.post(f"/api/v1/requests/{rid}/decision", json=decision, headers=reviewer.headers)
            assert r.status_code == 409, r.text
        assert _counts(rt, rid) == before


def test_a_reviewer_of_another_state_gets_a_404_and_the_refusal_is_audited_under_their_name(
    client: TestClient, make_actor: Callable[..., Actor], rt: Runtime
) -> None:
    """Another state's reviewer cannot tell the request exists; the audit log names who tried."""
    provider = make_actor("provider")
    view, gap = _pended(client, provider)
    stranger = make_actor("reviewer", state="WA")
    _, decisions, status, version = _counts(rt, view["id"])
    for decision in ({"decision": "affirm"}, {"decision": "non_affirm", "reasons": [gap]}):
        r = client.post(f"/api/v1/requests/{view['id']}/decision", json=decision, headers=stranger.headers)
        assert r.status_code == 404, r.text
    assert _counts(rt, view["id"])[1:] == (decisions, status, version)
    with rt.sessions() as s:
        refusals = s.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "request.decide", AuditEntry.object_id == str(view["id"])
            )
        ).all()
    assert [(e.actor, e.outcome) for e in refusals] == [(stranger.principal.actor.name, "not_found")] * 2


def test_a_decision_writes_exactly_one_audit_entry_naming_the_reviewer(
    client: TestClient, make_actor: Callable[..., Actor], rt: Runtime
) -> None:
    """One state change, one audit entry, with the deciding reviewer as actor; the ETag moves on."""
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    view, gap = _pended(client, provider)
    audits, decisions, _, version = _counts(rt, view["id"])
    r = client.post(
        f"/api/v1/requests/{view['id']}/decision",
        json={"decision": "non_affirm", "reasons": [gap]},
        headers={**reviewer.headers, "If-Match": f'"{version}"'},
    )
    assert r.status_code == 200, r.text
    after = _counts(rt, view["id"])
    assert after[:3] == (audits + 1, decisions + 1, "non_affirmed")
    assert r.headers["ETag"].strip('"').removeprefix("W/").strip('"') == str(after[3]) != str(version)
    with rt.sessions() as s:
        entry = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).one()
    assert (entry.action, entry.actor, entry.outcome) == (
        "request.decide",
        reviewer.principal.actor.name,
        "non_affirmed",
    )


def _web_login(client: TestClient, actor: Actor) -> None:
    r = client.post("/login", data={"api_key": actor.key, "next": "/review"}, follow_redirects=False)
    assert r.status_code in (302, 303), r.text


def _csrf(html: str, actor: Actor, form: str = "review-decision") -> str:
    """The decision form's CSRF token, checked to be on the page the reviewer was shown."""
    token = csrf_token(actor.key, form)
    assert token in html, f"the {form} form is not on the page"
    return token


def test_a_non_clinician_cannot_non_affirm_from_the_web_form(
    client: TestClient, make_actor: Callable[..., Actor], rt: Runtime
) -> None:
    """The web form refuses a non-clinician's non-affirmation with a 403 page and decides nothing."""
    provider = make_actor("provider")
    view, gap = _pended(client, provider)
    staff = make_actor("reviewer", clinician=False)
    _web_login(client, staff)
    page = client.get(f"/review/{view['id']}")
    assert page.status_code == 200, page.text
    before = _counts(rt, view["id"])
    r = client.post(
        f"/review/{view['id']}/decision",
        data={"csrf_token": _csrf(page.text, staff), "decision": "non_affirm", "reasons": gap},
        follow_redirects=False,
    )
    assert r.status_code == 403, r.text
    assert "clinician" in r.text
    assert _counts(rt, view["id"])[1:] == before[1:]


def test_a_web_session_ends_when_its_key_is_revoked(
    client: TestClient, make_actor: Callable[..., Actor], rt: Runtime
) -> None:
    """Revoking the key signs its web session out on the next page, and its forms decide nothing."""
    from wiserpa.auth.service import revoke_key

    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    view, _ = _pended(client, provider)
    _web_login(client, reviewer)
    page = client.get(f"/review/{view['id']}")
    assert page.status_code == 200
    token = _csrf(page.text, reviewer)
    with rt.sessions() as s:
        assert revoke_key(s, prefix=reviewer.key.split("_")[1], now=rt.clock.now())
        s.commit()
    assert client.get(f"/review/{view['id']}", follow_redirects=False).status_code in (302, 303, 401)
    r = client.post(
        f"/review/{view['id']}/decision",
        data={"csrf_token": token, "decision": "affirm"},
        follow_redirects=False,
    )
    assert r.status_code in (302, 303, 401, 403)
    assert _counts(rt, view["id"])[2] == "pended"


def _race(
    rt: Runtime, first: Callable[[Session], Any], second: Callable[[Session], Any]
) -> BaseException | None:
    """Run `first` in a transaction left open while `second` runs in another one, then commit `first`; what
    `second` raised, if anything (it committed otherwise)."""
    outcome: list[BaseException | None] = []

    def run_second() -> None:
        with rt.sessions() as s:
            try:
                second(s)
                s.commit()
                outcome.append(None)
            except Exception as exc:  # the caller inspects it
                s.rollback()
                outcome.append(exc)

    with rt.sessions() as s:
        first(s)
        thread = threading.Thread(target=run_second)
        thread.start()
        thread.join(0.5)  # the second transaction now waits on the first (or has already gone ahead)
        s.commit()
    thread.join(30)
    assert outcome, "the second transaction did not finish"
    return outcome[0]


def test_two_peer_to_peer_requests_at_once_leave_one_open(
    client: TestClient, make_actor: Callable[..., Actor], rt: Runtime
) -> None:
    """The provider and the reviewer asking at the same moment get one open peer-to-peer and one 409."""
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    view, _ = _pended(client, provider)

    def ask(actor: Actor) -> Callable[[Session], Any]:
        return lambda s: workflow.request_peer_to_peer(
            s, rt, principal=actor.principal, request_id=view["id"], note="call me"
        )

    refused = _race(rt, ask(provider), ask(reviewer))
    assert isinstance(refused, Conflict), refused
    wf = client.get(f"/api/v1/requests/{view['id']}/workflow", headers=provider.headers).json()
    assert [p["requested_by_role"] for p in wf["peer_to_peer"]] == ["provider"]


def test_two_answers_to_one_information_request_at_once_keep_the_first(
    client: TestClient, make_actor: Callable[..., Actor], rt: Runtime
) -> None:
    """Two colleagues answering the same request for information at once: one answer stands, the other is a 409."""
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    colleague = make_actor("provider", organization_id=provider.organization_id)
    view, criterion_id = _pended(client, provider)
    info = client.post(
        f"/api/v1/requests/{view['id']}/information-requests",
        json={"criterion_ids": [criterion_id]},
        headers=reviewer.headers,
    ).json()

    def answer(actor: Actor, note: str) -> Callable[[Session], Any]:
        return lambda s: workflow.respond_information(
            s,
            rt,
            principal=actor.principal,
            request_id=view["id"],
            information_request_id=info["id"],
            note=note,
        )

    refused = _race(rt, answer(provider, "first"), answer(colleague, "second"))
    assert isinstance(refused, Conflict), refused
    wf = client.get(f"/api/v1/requests/{view['id']}/workflow", headers=provider.headers).json()
    assert wf["information_requests"][0]["response_note"] == "first"
    with rt.sessions() as s:
        answers = s.scalar(
            select(func.count()).where(
                AuditEntry.action == "request.information_answered", AuditEntry.object_id == str(view["id"])
            )
        )
    assert answers == 1


def test_two_peer_to_peer_outcomes_at_once_keep_the_first(
    client: TestClient, make_actor: Callable[..., Actor], rt: Runtime
) -> None:
    """Two reviewers recording a peer-to-peer's outcome at once: the first stands, the second is a 409."""
    provider, reviewer, colleague = make_actor("provider"), make_actor("reviewer"), make_actor("reviewer")
    view, _ = _pended(client, provider)
    p2p = client.post(
        f"/api/v1/requests/{view['id']}/peer-to-peer", json={"note": "call"}, headers=provider.headers
    ).json()

    def record(actor: Actor, outcome: str) -> Callable[[Session], Any]:
        return lambda s: workflow.record_peer_to_peer_outcome(
            s, rt, principal=actor.principal, request_id=view["id"], p2p_id=p2p["id"], outcome=outcome
        )

    refused = _race(rt, record(reviewer, "no_show"), record(colleague, "affirmed_on_discussion"))
    assert isinstance(refused, Conflict), refused
    wf = client.get(f"/api/v1/requests/{view['id']}/workflow", headers=provider.headers).json()
    assert wf["peer_to_peer"][0]["outcome"] == "no_show"
    assert client.get(f"/api/v1/requests/{view['id']}", headers=provider.headers).json()["status"] == "pended"


def test_past_due_under_deemed_approval_the_workflow_is_closed_and_nothing_flips(
    client: TestClient, make_actor: Callable[..., Actor], rt: Runtime, clock: FixedClock
) -> None:
    """After the due time (asa-reform deems) a request for information, a new peer-to-peer and an affirmation on
    discussion are 409s; the request reads deemed affirmed and an open peer-to-peer can still be closed."""
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    view, criterion_id = _pended(client, provider)
    p2p = client.post(
        f"/api/v1/requests/{view['id']}/peer-to-peer", json={"note": "call"}, headers=provider.headers
    ).json()
    clock.set(dt.datetime.fromisoformat(view["due_at"].replace("Z", "+00:00")) + dt.timedelta(minutes=1))
    url = f"/api/v1/requests/{view['id']}"
    asked = client.post(
        f"{url}/information-requests", json={"criterion_ids": [criterion_id]}, headers=reviewer.headers
    )
    assert asked.status_code == 409 and "deemed_affirmed" in asked.json()["error"]["message"]
    on_discussion = client.post(
        f"{url}/peer-to-peer/{p2p['id']}/outcome",
        json={"outcome": "affirmed_on_discussion"},
        headers=reviewer.headers,
    )
    assert on_discussion.status_code == 409, on_discussion.text
    closed = client.post(
        f"{url}/peer-to-peer/{p2p['id']}/outcome", json={"outcome": "no_show"}, headers=reviewer.headers
    )
    assert closed.status_code == 200, closed.text
    again = client.post(f"{url}/peer-to-peer", json={"note": "call"}, headers=provider.headers)
    assert again.status_code == 409, again.text
    final = client.get(url, headers=provider.headers).json()
    assert final["status"] == "deemed_affirmed"
    assert not [d for d in final["decisions"] if d["kind"].startswith("clinician_")]


def test_a_peer_to_peer_cannot_be_booked_once_the_request_is_withdrawn(
    client: TestClient, make_actor: Callable[..., Actor], rt: Runtime
) -> None:
    """Withdrawing ends the discussion: an open peer-to-peer can no longer be scheduled (409) but can be closed."""
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    view, _ = _pended(client, provider)
    url = f"/api/v1/requests/{view['id']}"
    p2p = client.post(f"{url}/peer-to-peer", json={"note": "call"}, headers=provider.headers).json()
    assert (
        client.post(f"{url}/withdraw", json={"reason": "not needed"}, headers=provider.headers).status_code
        == 200
    )
    audits = _counts(rt, view["id"])[0]
    for actor in (reviewer, provider):
        r = client.post(
            f"{url}/peer-to-peer/{p2p['id']}/schedule",
            json={"scheduled_for": "2030-01-01T15:00:00Z"},
            headers=actor.headers,
        )
        assert r.status_code == 409 and "withdrawn" in r.json()["error"]["message"], r.text
    assert _counts(rt, view["id"])[0] == audits
    wf = client.get(f"{url}/workflow", headers=provider.headers).json()
    assert wf["peer_to_peer"][0]["scheduled_for"] is None
    closed = client.post(
        f"{url}/peer-to-peer/{p2p['id']}/outcome", json={"outcome": "no_show"}, headers=reviewer.headers
    )
    assert closed.status_code == 200 and closed.json()["status"] == "completed"
