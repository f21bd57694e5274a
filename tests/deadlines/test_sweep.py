"""The sweep: exactly once with several sweepers, after a crash, and against a racing clinician decision."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.deadlines.conftest import insert_open
from wiserpa.audit.models import AuditEntry
from wiserpa.audit.service import verify
from wiserpa.deadlines.models import DeadlineMiss
from wiserpa.deadlines.service import SweepWorker, sweep
from wiserpa.requests import service as requests_service
from wiserpa.requests.models import Decision, PaRequest
from wiserpa.runtime import Runtime


def _counts(rt: Runtime) -> dict[str, int]:
    with rt.sessions() as s:
        return {
            "deemed_rows": s.scalar(
                select(func.count()).select_from(PaRequest).where(PaRequest.status == "deemed_affirmed")
            )
            or 0,
            "deemed_decisions": s.scalar(
                select(func.count()).select_from(Decision).where(Decision.kind == "deemed")
            )
            or 0,
            "deemed_audit": s.scalar(
                select(func.count(func.distinct(AuditEntry.object_id))).where(
                    AuditEntry.action == "request.deemed"
                )
            )
            or 0,
            "deemed_audit_rows": s.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "request.deemed")
            )
            or 0,
            "misses": s.scalar(select(func.count()).select_from(DeadlineMiss)) or 0,
        }


def test_sweep_deems_only_what_is_due_and_is_idempotent(rt: Runtime, clock) -> None:
    now = clock.now()
    due = insert_open(rt, 12, due_at=now - dt.timedelta(seconds=1))
    insert_open(rt, 5, due_at=now)  # exactly at the due instant: due
    insert_open(rt, 7, due_at=now + dt.timedelta(seconds=1))  # not yet
    with rt.sessions() as s:
        result = sweep(s, rt, batch=5)
    assert (result.deemed, result.misses_recorded) == (17, 17)
    with rt.sessions() as s:
        again = sweep(s, rt, batch=5)
    assert (again.deemed, again.misses_recorded) == (0, 0)
    c = _counts(rt)
    assert c == {
        "deemed_rows": 17,
        "deemed_decisions": 17,
        "deemed_audit": 17,
        "deemed_audit_rows": 17,
        "misses": 17,
    }
    with rt.sessions() as s:
        miss = s.get(DeadlineMiss, due[0])
        assert miss is not None
        assert (miss.resolution, miss.detected_by, miss.late_seconds) == ("deemed", "sweep", 0)
        assert miss.month == "2026-03"
        assert verify(s).ok


def test_two_sweepers_at_once_deem_each_request_exactly_once(rt: Runtime, clock) -> None:
    n = 120
    insert_open(rt, n, due_at=clock.now() - dt.timedelta(minutes=5))
    results = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run() -> None:
        try:
            with rt.sessions() as s:
                start.wait()
                results.append(sweep(s, rt, batch=7))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sum(r.deemed for r in results) == n
    assert sum(r.misses_recorded for r in results) == n
    assert _counts(rt) == {
        "deemed_rows": n,
        "deemed_decisions": n,
        "deemed_audit": n,
        "deemed_audit_rows": n,
        "misses": n,
    }
    with rt.sessions() as s:
        assert verify(s).ok


def test_sweep_killed_mid_batch_then_restarted_loses_nothing_doubles_nothing(
    rt: Runtime, clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 25
    insert_open(rt, n, due_at=clock.now() - dt.timedelta(hours=1))
    real = requests_service.materialize_deemed
    calls = {"n": 0}

    def dying(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 14:  # the fourth request of the second batch of ten
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(requests_service, "materialize_deemed", dying)
    with rt.sessions() as s, pytest.raises(RuntimeError, match="killed"):
        sweep(s, rt, batch=10)
    c = _counts(rt)
    assert c["deemed_rows"] == c["deemed_decisions"] == c["deemed_audit_rows"] == c["misses"] == 10

    monkeypatch.setattr(requests_service, "materialize_deemed", real)
    with rt.sessions() as s:
        result = sweep(s, rt, batch=10)
    assert result.deemed == n - 10
    assert _counts(rt) == {
        "deemed_rows": n,
        "deemed_decisions": n,
        "deemed_audit": n,
        "deemed_audit_rows": n,
        "misses": n,
    }


def test_clinician_decision_racing_the_sweep_has_one_outcome(
    client: TestClient, rt: Runtime, clock, submit_pended, make_actor
) -> None:
    reviewer = make_actor("reviewer")
    views = [submit_pended() for _ in range(3)]
    clock.set(dt.datetime.fromisoformat(views[0]["due_at"].replace("Z", "+00:00")) + dt.timedelta(minutes=1))
    answers = []
    start = threading.Barrier(2)

    def decide() -> None:
        start.wait()
        for v in views:
            answers.append(
                client.post(
                    f"/api/v1/requests/{v['id']}/decision",
                    json={"decision": "affirm"},
                    headers=reviewer.headers,
                )
            )

    def run_sweep() -> None:
        with rt.sessions() as s:
            start.wait()
            sweep(s, rt, batch=1)

    threads = [threading.Thread(target=decide), threading.Thread(target=run_sweep)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
    assert all(a.json()["decision_applied"] is False for a in answers)
    for v in views:
        final = client.get(f"/api/v1/requests/{v['id']}", headers=v["_headers"]).json()
        assert final["status"] == "deemed_affirmed"
        kinds = [d["kind"] for d in final["decisions"]]
        assert kinds.count("deemed") == 1 and kinds.count("late_affirm") == 1
    assert _counts(rt)["deemed_audit_rows"] == 3 and _counts(rt)["misses"] == 3


def test_decision_before_the_due_time_is_not_a_miss(
    client: TestClient, rt, clock, submit_pended, make_actor
) -> None:
    reviewer = make_actor("reviewer")
    view = submit_pended()
    clock.advance(dt.timedelta(hours=71, minutes=59, seconds=59))
    r = client.post(
        f"/api/v1/requests/{view['id']}/decision", json={"decision": "affirm"}, headers=reviewer.headers
    )
    assert r.json()["decision_applied"] is True
    clock.advance(dt.timedelta(days=5))
    with rt.sessions() as s:
        assert sweep(s, rt).misses_recorded == 0
    assert _counts(rt)["misses"] == 0


def test_withdrawal_after_the_due_time_under_deemed_approval_keeps_the_deemed_miss(
    client: TestClient, rt, clock, submit_pended
) -> None:
    view = submit_pended()
    clock.advance(dt.timedelta(hours=80))
    r = client.post(
        f"/api/v1/requests/{view['id']}/withdraw", json={"reason": "moved"}, headers=view["_headers"]
    )
    assert r.status_code == 200, r.text
    with rt.sessions() as s:
        miss = s.get(DeadlineMiss, view["id"])
        assert miss is not None and miss.resolution == "deemed" and miss.detected_by == "deemed"


def test_background_worker_sweeps(rt: Runtime, clock) -> None:
    insert_open(rt, 3, due_at=clock.now())
    worker = SweepWorker(rt, 0.05)
    worker.start()
    try:
        for _ in range(200):
            if _counts(rt)["deemed_rows"] == 3:
                break
            threading.Event().wait(0.05)
    finally:
        worker.stop()
    assert _counts(rt)["deemed_rows"] == 3


def test_the_background_worker_also_deems_missed_prepayment_reviews(rt) -> None:  # type: ignore[no-untyped-def]
    """One periodic job runs every time-driven rule: request deadlines and pre-payment review clocks."""
    from unittest import mock

    from wiserpa.deadlines.service import SweepWorker

    with mock.patch("wiserpa.claims.service.sweep_prepayment_reviews", return_value=2) as reviews:
        SweepWorker(rt, 0).run_once()
    assert reviews.call_count == 1
