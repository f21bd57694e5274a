"""Under wiser-2026 nothing is deemed: the request stays pended, the miss stays open and grows, unenforced."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from wiserpa.deadlines.service import sweep


@pytest.fixture
def profile_name() -> str:
    """The model as run."""
    return "wiser-2026"


def test_no_deemed_approval_and_anesthesia_stays_pended(
    client: TestClient, rt, clock, submit_pended, make_actor
) -> None:
    view = submit_pended()
    due = dt.datetime.fromisoformat(view["due_at"].replace("Z", "+00:00"))
    clock.set(due + dt.timedelta(days=3))
    read = client.get(f"/api/v1/requests/{view['id']}", headers=view["_headers"]).json()
    assert read["status"] == "pended" and read["overdue"] is True
    assert [ln["status"] for ln in read["lines"] if ln["code"] == "01992"] == ["pended"]

    with rt.sessions() as s:
        result = sweep(s, rt)
    assert (result.deemed, result.misses_recorded) == (0, 1)
    with rt.sessions() as s:
        assert sweep(s, rt).misses_recorded == 0  # recorded once

    oversight = make_actor("oversight")
    miss = client.get("/api/v1/deadlines/misses", headers=oversight.headers).json()["items"][0]
    assert miss["resolution"] == "still_open" and miss["late_seconds"] == 3 * 86400
    assert miss["penalty_enforced"] is False

    clock.advance(dt.timedelta(days=2))  # still undecided: lateness keeps growing
    miss = client.get("/api/v1/deadlines/misses", headers=oversight.headers).json()["items"][0]
    assert miss["late_seconds"] == 5 * 86400 and miss["days_late"] == 5
    assert miss["penalty_usd"] == 500 + 5 * 100

    ledger = client.get("/api/v1/penalties", headers=oversight.headers).json()
    assert ledger["enforced"] is False
    assert ledger["items"][0]["status"] == "recorded_only"
    assert ledger["items"][0]["amount_usd"] == 1000

    # A clinician finally decides, 5 days and 1 hour late: the miss is resolved with that lateness.
    clock.advance(dt.timedelta(hours=1))
    reviewer = make_actor("reviewer")
    r = client.post(
        f"/api/v1/requests/{view['id']}/decision", json={"decision": "affirm"}, headers=reviewer.headers
    )
    assert r.status_code == 200 and r.json()["status"] == "affirmed"
    miss = client.get("/api/v1/deadlines/misses", headers=oversight.headers).json()["items"][0]
    assert miss["resolution"] == "clinician_decision"
    assert miss["late_seconds"] == 5 * 86400 + 3600 and miss["days_late"] == 6
    clock.advance(dt.timedelta(days=10))  # resolved: no longer grows
    again = client.get("/api/v1/deadlines/misses", headers=oversight.headers).json()["items"][0]
    assert again["late_seconds"] == miss["late_seconds"]


def test_the_sweep_settles_an_overdue_request_once_and_leaves_its_version_alone(
    client: TestClient, rt, clock, submit_pended
) -> None:
    from sqlalchemy import select

    from wiserpa.requests.models import PaRequest

    view = submit_pended()
    due = dt.datetime.fromisoformat(view["due_at"].replace("Z", "+00:00"))
    clock.set(due + dt.timedelta(days=1))
    with rt.sessions() as s:
        assert sweep(s, rt).misses_recorded == 1
    with rt.sessions() as s:
        settled, version = s.execute(
            select(PaRequest.sweep_settled, PaRequest.version).where(PaRequest.id == view["id"])
        ).one()
    # Nothing more for the sweep to do while it stays open (no deemed approval under wiser-2026), and a sweep's
    # bookkeeping is not a change of the request: its version (the ETag clients send back) is the same.
    assert settled is True and version == view["version"]
    clock.advance(dt.timedelta(days=5))
    with rt.sessions() as s:
        result = sweep(s, rt)
    assert (result.misses_recorded, result.batches) == (0, 0)  # nothing left to do for it
    read = client.get(f"/api/v1/requests/{view['id']}", headers=view["_headers"]).json()
    assert read["status"] == "pended" and read["overdue"] is True


def test_a_sweep_batch_settles_its_overdue_requests_with_one_update(rt, clock, submit_pended) -> None:
    from sqlalchemy import event, select

    from wiserpa.requests.models import PaRequest

    views = [submit_pended() for _ in range(3)]
    clock.set(
        max(dt.datetime.fromisoformat(v["due_at"].replace("Z", "+00:00")) for v in views)
        + dt.timedelta(days=1)
    )
    settles: list[str] = []

    def seen(_conn, _cursor, statement, *_rest) -> None:  # type: ignore[no-untyped-def]
        if statement.startswith("UPDATE pa_requests SET sweep_settled"):
            settles.append(statement)

    event.listen(rt.engine, "before_cursor_execute", seen)
    try:
        with rt.sessions() as s:
            assert sweep(s, rt).misses_recorded == 3
    finally:
        event.remove(rt.engine, "before_cursor_execute", seen)
    assert len(settles) == 1
    with rt.sessions() as s:
        rows = s.execute(select(PaRequest.sweep_settled, PaRequest.version)).all()
    assert sorted(rows) == [(True, 1)] * 3


def test_resolving_an_open_miss_is_undone_with_its_savepoint(rt, clock, submit_pended) -> None:
    from wiserpa.deadlines.models import DeadlineMiss
    from wiserpa.deadlines.service import record_miss
    from wiserpa.requests.models import PaRequest

    view = submit_pended()
    due = dt.datetime.fromisoformat(view["due_at"].replace("Z", "+00:00"))
    clock.set(due + dt.timedelta(days=2))
    with rt.sessions() as s:
        assert sweep(s, rt).misses_recorded == 1
    with rt.sessions() as s:
        request = s.get(PaRequest, view["id"])
        assert request is not None
        savepoint = s.begin_nested()
        request.status, request.decided_at = "affirmed", clock.now()
        miss = record_miss(s, rt, request, now=clock.now(), via="clinician_decision")
        assert miss is not None and miss.resolution == "clinician_decision"  # written by a Core UPDATE
        savepoint.rollback()
        # The rollback takes the resolution back in memory as in the database: the miss is open again.
        assert miss.resolution == "still_open"
        assert s.get(DeadlineMiss, view["id"]).resolution == "still_open"  # type: ignore[union-attr]
        s.commit()
    with rt.sessions() as s:
        assert s.get(DeadlineMiss, view["id"]).resolution == "still_open"  # type: ignore[union-attr]


def test_a_clinician_decision_at_the_due_instant_is_a_miss_on_the_metrics_page(
    client: TestClient, clock, submit_pended, make_actor
) -> None:
    """The due instant itself is late (as everywhere else): /metrics counts that decision as a miss."""
    view = submit_pended()
    clock.set(dt.datetime.fromisoformat(view["due_at"].replace("Z", "+00:00")))
    reviewer = make_actor("reviewer")
    r = client.post(
        f"/api/v1/requests/{view['id']}/decision", json={"decision": "affirm"}, headers=reviewer.headers
    )
    assert r.status_code == 200 and r.json()["status"] == "affirmed"
    assert 'wiserpa_deadline_misses{state="TX"} 1.0' in client.get("/metrics").text


def test_a_sweep_batch_inserts_its_misses_with_one_statement(rt, clock, submit_pended) -> None:
    from sqlalchemy import event, select

    from wiserpa.deadlines.models import DeadlineMiss

    views = [submit_pended() for _ in range(3)]
    clock.set(
        max(dt.datetime.fromisoformat(v["due_at"].replace("Z", "+00:00")) for v in views)
        + dt.timedelta(days=1)
    )
    inserts: list[str] = []

    def seen(_conn, _cursor, statement, *_rest) -> None:  # type: ignore[no-untyped-def]
        if statement.startswith("INSERT INTO deadline_misses"):
            inserts.append(statement)

    event.listen(rt.engine, "before_cursor_execute", seen)
    try:
        with rt.sessions() as s:
            assert sweep(s, rt, batch=2).misses_recorded == 3  # two batches: two inserts
    finally:
        event.remove(rt.engine, "before_cursor_execute", seen)
    assert len(inserts) == 2
    with rt.sessions() as s:
        misses = s.scalars(select(DeadlineMiss).order_by(DeadlineMiss.request_id)).all()
        assert [m.request_id for m in misses] == sorted(v["id"] for v in views)
        for miss in misses:
            assert (miss.resolution, miss.detected_by, miss.resolved_at) == ("still_open", "sweep", None)
            assert miss.detected_at == clock.now() and miss.late_seconds == int(
                (clock.now() - miss.due_at).total_seconds()
            )


def test_a_late_decision_resolves_the_swept_miss_with_one_statement(rt, clock, submit_pended) -> None:
    from sqlalchemy import event

    from wiserpa.deadlines.models import DeadlineMiss
    from wiserpa.deadlines.service import record_miss
    from wiserpa.requests.models import PaRequest

    views = [submit_pended() for _ in range(2)]
    clock.set(
        max(dt.datetime.fromisoformat(v["due_at"].replace("Z", "+00:00")) for v in views)
        + dt.timedelta(days=2)
    )
    with rt.sessions() as s:
        assert sweep(s, rt).misses_recorded == 2
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_rest) -> None:  # type: ignore[no-untyped-def]
        if "deadline_misses" in statement:
            statements.append(statement.split()[0])

    with rt.sessions() as s:
        held = s.get(DeadlineMiss, views[1]["id"])  # held by the session, expired by the commit
        assert held is not None
        s.commit()
        event.listen(rt.engine, "before_cursor_execute", seen)
        try:
            for view in views:
                request = s.get(PaRequest, view["id"])
                assert request is not None
                request.status, request.decided_at = "affirmed", clock.now()
                miss = record_miss(s, rt, request, now=clock.now(), via="clinician_decision")
                assert miss is not None and miss.resolution == "clinician_decision"
                assert miss.resolved_at == clock.now() and miss.detected_by == "sweep"
                assert miss.late_seconds == int((clock.now() - miss.due_at).total_seconds())
            assert miss is held  # the held object, brought up to date from the row the update read back
        finally:
            event.remove(rt.engine, "before_cursor_execute", seen)
        assert statements == ["UPDATE", "UPDATE"]  # no read of the misses
        s.rollback()
    with rt.sessions() as s:
        for view in views:
            assert s.get(DeadlineMiss, view["id"]).resolution == "still_open"  # type: ignore[union-attr]
