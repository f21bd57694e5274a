"""The clinician decision and the worklist at the service level, on both databases: what they write, how few
statements they need, and that the objects in memory stay true to the rows (after a rollback too)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, insert, select
from sqlalchemy.orm.exc import StaleDataError

from tests.factories import body
from wiserpa.audit import service as audit
from wiserpa.audit.models import AuditEntry
from wiserpa.deadlines.models import DeadlineMiss
from wiserpa.policy.examples import VIOLATIONS
from wiserpa.requests import service as requests
from wiserpa.requests.models import Decision, PaRequest
from wiserpa.reviews import service as reviews
from wiserpa.runtime import Runtime
from wiserpa.store.base import run_on_driver


def _pended(
    client: TestClient, provider: Any, category: str = "vertebral_augmentation", *, state: str = "TX"
) -> tuple[int, str]:
    fact, bad, criterion_id = VIOLATIONS[category]
    data = body(category, state=state)
    data["clinical_facts"][fact] = bad
    view = client.post("/api/v1/requests", json=data, headers=provider.headers).json()
    assert view["status"] == "pended", view
    return int(view["id"]), criterion_id


@contextmanager
def _statements(rt: Runtime) -> Iterator[list[str]]:
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(rt.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(rt.engine, "before_cursor_execute", note)


def test_decide_writes_outcome_decision_and_audit_in_few_statements(
    client: TestClient, make_actor: Callable[..., Any], rt: Runtime
) -> None:
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    rid, criterion_id = _pended(client, provider)
    now = rt.clock.now()
    with rt.sessions() as s:
        with _statements(rt) as seen:
            result = reviews.decide(
                s, rt, principal=reviewer.principal, request_id=rid, outcome="non_affirm",
                reasons=[criterion_id], note="Imaging does not show the fracture.",
            )  # fmt: skip
            s.commit()
        request = result.request
        assert result.applied and request.status == "non_affirmed" and request.version == 2
        assert request.decision_kind == "clinician" and request.decided_at == now and not s.dirty
        # Lines and decisions are left to load on access; the request is written once, with one statement.
        assert not any("request_lines" in q or q.startswith("SELECT decisions") for q in seen), seen
        assert sum(q.startswith("UPDATE pa_requests") for q in seen) == 1
        assert sum(q.startswith("INSERT INTO decisions") for q in seen) == 1
        # A request that did not come through FHIR has no subscriber to notify: no subscription is read.
        assert not any("fhir_subscriptions" in q for q in seen), seen
        assert len(seen) <= 7, seen
        # The row is read once, locked on PostgreSQL (SQLite's writer lock is already held).
        reads = [q for q in seen if q.startswith("SELECT") and "FROM pa_requests" in q]
        assert len(reads) == 1, seen
        assert reads[0].endswith("FOR UPDATE") == (rt.engine.dialect.name == "postgresql"), reads
        # Read on access after the decision, the collection holds the new row.
        assert [d.kind for d in request.decisions] == ["pend", "clinician_non_affirm"]
        assert [ln.code for ln in request.lines]
    with rt.sessions() as s:
        stored = s.get(PaRequest, rid)
        assert stored is not None
        assert (stored.status, stored.version, stored.decided_at) == ("non_affirmed", 2, now)
        decision = s.scalars(
            select(Decision).where(Decision.request_id == rid, Decision.kind != "pend")
        ).one()
        assert decision.kind == "clinician_non_affirm" and decision.effective and decision.dedupe == ""
        assert decision.decided_at == now and decision.resulting_status == "non_affirmed"
        assert (
            decision.reviewer_npi == reviewer.principal.npi
            and decision.actor_user_id == reviewer.principal.user_id
        )
        assert (decision.profile_id, decision.profile_version) == (stored.profile_id, stored.profile_version)
        assert decision.criteria_results == stored.criteria_results
        assert decision.facts_used == stored.clinical_facts
        assert [r["criterion_id"] for r in decision.reasons] == [criterion_id]
        assert decision.reasons[0]["citation"] and decision.note == "Imaging does not show the fracture."
        entry = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).one()
        assert (entry.action, entry.object_id, entry.outcome) == ("request.decide", str(rid), "non_affirmed")
        assert entry.details == {"reasons": [criterion_id], "late": False}
        assert audit.verify(s).ok


def test_decide_on_a_request_read_with_its_decisions_keeps_them_whole(
    client: TestClient, make_actor: Callable[..., Any], rt: Runtime
) -> None:
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    rid, _ = _pended(client, provider)
    with rt.sessions() as s:
        loaded = s.get(PaRequest, rid)
        assert loaded is not None and [d.kind for d in loaded.decisions] == ["pend"]
        with _statements(rt) as seen:
            result = reviews.decide(s, rt, principal=reviewer.principal, request_id=rid, outcome="affirm")
            assert result.request is loaded and [d.kind for d in loaded.decisions] == [
                "pend",
                "clinician_affirm",
            ]
            s.commit()
        # The decision row is written once and the request is not written a second time by the flush.
        assert sum(q.startswith("INSERT INTO decisions") for q in seen) == 1
        assert sum(q.startswith("UPDATE pa_requests") for q in seen) == 1
        assert loaded.version == 2 and loaded.valid_until is not None
    with rt.sessions() as s:
        stored = s.get(PaRequest, rid)
        assert stored is not None and (stored.status, stored.version) == ("affirmed", 2)
        assert stored.valid_until == loaded.valid_until
        assert [d.kind for d in stored.decisions] == ["pend", "clinician_affirm"]


def test_a_rolled_back_decision_leaves_nothing_in_memory_either(
    client: TestClient, make_actor: Callable[..., Any], rt: Runtime
) -> None:
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    rid, criterion_id = _pended(client, provider)
    with rt.sessions() as s:
        with pytest.raises(RuntimeError), s.begin_nested():  # the simulator's shape: a savepoint per call
            reviews.decide(s, rt, principal=reviewer.principal, request_id=rid, outcome="affirm")
            raise RuntimeError("interrupted after the decision")
        request = s.get(PaRequest, rid)
        assert request is not None and (request.status, request.version) == ("pended", 1)
        assert request.valid_until is None and [d.kind for d in request.decisions] == ["pend"]
        with s.begin_nested():
            result = reviews.decide(
                s, rt, principal=reviewer.principal, request_id=rid, outcome="non_affirm", reasons=[criterion_id]
            )  # fmt: skip
        s.commit()
        assert (result.request.status, result.request.version) == ("non_affirmed", 2)
    with rt.sessions() as s:
        kinds = s.scalars(select(Decision.kind).where(Decision.request_id == rid).order_by(Decision.id)).all()
        assert kinds == ["pend", "clinician_non_affirm"]


def test_decide_on_a_stale_copy_is_refused_as_before(
    client: TestClient, make_actor: Callable[..., Any], rt: Runtime
) -> None:
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    rid, _ = _pended(client, provider)
    with rt.sessions() as stale:
        copy = stale.get(PaRequest, rid)
        assert copy is not None
        stale.commit()  # objects outlive the transaction (expire_on_commit=False)
        with rt.sessions() as other:
            reviews.decide(other, rt, principal=reviewer.principal, request_id=rid, outcome="affirm")
            other.commit()
        # The version check catches the copy read before the other decision, as the ORM's flush would.
        with pytest.raises(StaleDataError):
            reviews.decide(stale, rt, principal=reviewer.principal, request_id=rid, outcome="affirm")
        stale.rollback()
        assert copy.status == "affirmed"  # the rollback expired it: read again


def test_late_decision_is_recorded_and_ignored(
    client: TestClient, make_actor: Callable[..., Any], rt: Runtime
) -> None:
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    first, _ = _pended(client, provider)
    second, _ = _pended(client, provider, "epidural_steroid_injection")
    rt.clock.set(rt.clock.now() + dt.timedelta(days=30))  # type: ignore[attr-defined]
    with rt.sessions() as s:
        # Deemed by this very call (the deemed row comes first), then after a sweep stored it.
        result = reviews.decide(s, rt, principal=reviewer.principal, request_id=first, outcome="affirm")
        assert not result.applied and result.request.status == "deemed_affirmed"
        s.commit()
        assert requests.materialize_deemed(s, rt, s.get(PaRequest, second), now=rt.clock.now())  # type: ignore[arg-type]
        s.commit()
    with rt.sessions() as s:
        result = reviews.decide(s, rt, principal=reviewer.principal, request_id=second, outcome="affirm")
        assert not result.applied
        s.commit()
    with rt.sessions() as s:
        for rid in (first, second):
            rows = s.scalars(select(Decision).where(Decision.request_id == rid).order_by(Decision.id)).all()
            assert [(d.kind, d.effective) for d in rows][1:] == [("deemed", True), ("late_affirm", False)]
            assert rows[2].reviewer_npi == reviewer.principal.npi and rows[2].profile_id
        outcomes = s.scalars(
            select(AuditEntry.outcome).where(AuditEntry.action == "request.decide").order_by(AuditEntry.id)
        ).all()
        assert outcomes == ["late_ignored", "late_ignored"]


def test_a_decision_past_due_deems_the_request_first_with_core_statements(
    client: TestClient, make_actor: Callable[..., Any], rt: Runtime
) -> None:
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    rid, _ = _pended(client, provider)
    rt.clock.set(rt.clock.now() + dt.timedelta(days=30))  # type: ignore[attr-defined]
    now = rt.clock.now()
    with rt.sessions() as s:
        with _statements(rt) as seen:
            result = reviews.decide(s, rt, principal=reviewer.principal, request_id=rid, outcome="affirm")
            s.commit()
        request = result.request
        assert not result.applied and not s.dirty
        assert (request.status, request.decision_kind, request.decided_at) == (
            "deemed_affirmed",
            "deemed",
            request.due_at,
        )
        assert request.version == 2 and request.valid_until == requests.validity_end(
            rt, request, request.due_at
        )
        # The request is written once and its decisions are not read: both new rows are plain inserts.
        assert sum(q.startswith("UPDATE pa_requests") for q in seen) == 1
        assert sum(q.startswith("INSERT INTO decisions") for q in seen) == 2
        assert not any(q.startswith("SELECT decisions") for q in seen), seen
        assert [d.kind for d in request.decisions] == ["pend", "deemed", "late_affirm"]
    with rt.sessions() as s:
        stored = s.get(PaRequest, rid)
        assert stored is not None
        assert (stored.status, stored.version, stored.decided_at) == ("deemed_affirmed", 2, stored.due_at)
        deemed = s.scalars(
            select(Decision).where(Decision.request_id == rid, Decision.kind == "deemed")
        ).one()
        assert (deemed.dedupe, deemed.effective, deemed.resulting_status) == (
            "deemed",
            True,
            "deemed_affirmed",
        )
        assert deemed.decided_at == stored.due_at and deemed.actor_user_id is None and deemed.reasons == []
        assert (deemed.profile_id, deemed.profile_version) == (stored.profile_id, stored.profile_version)
        assert deemed.criteria_results == stored.criteria_results and deemed.facts_used == {}
        assert deemed.note and "deemed affirmed" in deemed.note
        miss = s.get(DeadlineMiss, rid)
        assert miss is not None and (miss.resolution, miss.resolved_at) == ("deemed", stored.due_at)
        entries = s.scalars(
            select(AuditEntry).where(AuditEntry.object_id == str(rid)).order_by(AuditEntry.id.desc()).limit(2)
        ).all()
        assert [(e.action, e.outcome) for e in reversed(entries)] == [
            ("request.deemed", "deemed_affirmed"),
            ("request.decide", "late_ignored"),
        ]
        assert entries[1].at == now and audit.verify(s).ok


def test_a_rolled_back_deemed_approval_leaves_the_request_as_it_was(
    client: TestClient, make_actor: Callable[..., Any], rt: Runtime
) -> None:
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    rid, _ = _pended(client, provider)
    rt.clock.set(rt.clock.now() + dt.timedelta(days=30))  # type: ignore[attr-defined]
    with rt.sessions() as s:
        with pytest.raises(RuntimeError), s.begin_nested():  # the simulator's shape: a savepoint per call
            result = reviews.decide(s, rt, principal=reviewer.principal, request_id=rid, outcome="affirm")
            raise RuntimeError("interrupted after the decision")
        # The rollback expired the object: read again, it is the row as it was.
        assert (result.request.status, result.request.version, result.request.decision_kind) == (
            "pended",
            1,
            None,
        )
        assert [d.kind for d in result.request.decisions] == ["pend"]
        assert s.get(DeadlineMiss, rid) is None
        again = reviews.decide(s, rt, principal=reviewer.principal, request_id=rid, outcome="affirm")
        assert again.request is result.request and (again.request.status, again.request.version) == (
            "deemed_affirmed",
            2,
        )
        s.commit()


def test_worklist_scope_category_paging_and_time(
    client: TestClient, make_actor: Callable[..., Any], rt: Runtime
) -> None:
    provider, oh_provider = make_actor("provider"), make_actor("provider", state="OH")
    tx, oh = make_actor("reviewer"), make_actor("reviewer", state="OH")
    tx_ids = [
        _pended(client, provider, c)[0] for c in ("vertebral_augmentation", "epidural_steroid_injection")
    ]
    oh_id, _ = _pended(client, oh_provider, state="OH")

    def page(principal: Any, **kw: Any) -> tuple[list[int], int]:
        with rt.sessions() as s:
            got = reviews.worklist(s, rt, principal=principal, details=False, **kw)
            s.commit()
            return [r.id for r in got.items], got.total

    assert page(tx.principal) == (tx_ids, 2) and page(oh.principal) == ([oh_id], 1)
    assert page(tx.principal, category="epidural_steroid_injection") == (tx_ids[1:], 1)
    assert page(tx.principal, limit=1) == (tx_ids[:1], 2) and page(tx.principal, limit=1, offset=1) == (
        tx_ids[1:],
        2,
    )
    # Past due under deemed approval: affirmed by time, no longer work.
    rt.clock.set(rt.clock.now() + dt.timedelta(days=30))  # type: ignore[attr-defined]
    assert page(tx.principal) == ([], 0)


def test_the_same_late_decision_twice_is_a_conflict_not_a_500(
    client: TestClient, make_actor: Callable[..., Any], rt: Runtime
) -> None:
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    rid, _ = _pended(client, provider)
    rt.clock.set(rt.clock.now() + dt.timedelta(days=30))  # type: ignore[attr-defined]
    url = f"/api/v1/requests/{rid}/decision"
    first = client.post(url, json={"decision": "affirm"}, headers=reviewer.headers)
    assert first.status_code == 200 and first.json()["status"] == "deemed_affirmed"
    again = client.post(url, json={"decision": "affirm"}, headers=reviewer.headers)
    assert again.status_code == 409 and "already recorded" in again.text
    with rt.sessions() as s:
        kinds = s.scalars(select(Decision.kind).where(Decision.request_id == rid).order_by(Decision.id)).all()
        assert kinds[-2:] == ["deemed", "late_affirm"]


def test_worklist_without_count_returns_the_same_items(
    client: TestClient, make_actor: Callable[..., Any], rt: Runtime
) -> None:
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    for category in ("vertebral_augmentation", "epidural_steroid_injection"):
        _pended(client, provider, category)
    with rt.sessions() as s:
        counted = reviews.worklist(s, rt, principal=reviewer.principal, limit=1)
        light = reviews.worklist(s, rt, principal=reviewer.principal, limit=1, details=False, count=False)
        assert counted.total == 2 and light.total is None
        assert [r.id for r in light.items] == [r.id for r in counted.items]


def test_the_driver_level_read_update_and_insert_match_core(
    client: TestClient, make_actor: Callable[..., Any], rt: Runtime
) -> None:
    # The decision reads its row, writes its changes and inserts its decision through store.base.driver_execute
    # (straight to sqlite3 when nothing listens, as here): the values read and the text stored must be what the
    # Core statements they replace read and store.
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    driver_id, _ = _pended(client, provider)
    core_id, _ = _pended(client, provider)
    now = rt.clock.now()
    changes = {
        "status": "affirmed",
        "decision_kind": "clinician",
        "decided_at": now,
        "updated_at": now,
        "valid_until": (now + dt.timedelta(days=120)).date(),
    }
    with rt.sessions() as s:
        connection = s.connection()
        core_row = connection.execute(reviews._LOCK_ROW, {"id": driver_id}).one()
        driver_row = run_on_driver(connection, reviews._LOCK_ROW, {"id": driver_id}).first()
        assert driver_row is not None
        assert [repr(v) for v in driver_row] == [repr(v) for v in core_row]
        assert run_on_driver(connection, reviews._LOCK_ROW, {"id": 10**9}).first() is None
        request = reviews._lock_request(s, driver_id)
        assert request is not None and request.criteria_results == core_row.criteria_results
        row = reviews._decision_row(
            reviewer.principal, request, kind="clinician_affirm", status="affirmed", effective=True, now=now,
            reasons=[], note="checked",
        )  # fmt: skip
        requests.store_changes(s, request, changes)
        requests.add_decision(s, request, row)
        assert request.version == 2 and not s.dirty
        connection.execute(requests._UPDATE_REQUEST, {"_id": core_id, "_version": 1, **changes, "version": 2})
        connection.execute(insert(Decision), {**row, "request_id": core_id})
        s.commit()
    columns = ", ".join([*changes, "version"])
    decision_columns = ", ".join(c.name for c in Decision.__table__.c if c.name not in ("id", "request_id"))
    with rt.engine.connect() as c:
        stored = {
            rid: c.exec_driver_sql(f"SELECT {columns} FROM pa_requests WHERE id = {rid}").one()
            for rid in (driver_id, core_id)
        }
        assert stored[driver_id] == stored[core_id]
        decisions = {
            rid: c.exec_driver_sql(
                f"SELECT {decision_columns} FROM decisions WHERE request_id = {rid} AND kind = 'clinician_affirm'"
            ).one()
            for rid in (driver_id, core_id)
        }
        assert decisions[driver_id] == decisions[core_id]
    with rt.sessions() as s:
        # A versioned write against a version the row no longer has is refused, as the ORM's flush would refuse it.
        stale = s.get(PaRequest, driver_id)
        assert stale is not None
        s.connection().execute(requests._UPDATE_REQUEST, {"_id": driver_id, "_version": 2, "version": 3})
        with pytest.raises(StaleDataError):
            requests.store_changes(s, stale, {"status": "non_affirmed"})


def test_a_decision_on_a_held_request_locks_its_row_and_rolls_back_whole(
    client: TestClient, make_actor: Callable[..., Any], rt: Runtime
) -> None:
    # A request the session holds with every column and its decisions loaded (the p2p outcome reads it so, the
    # simulator's sweep leaves deemed ones so): decide locks the row without reading it again, inserts its
    # decision at once, and a rolled-back savepoint leaves the object as the row is.
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    rid, _ = _pended(client, provider)
    with rt.sessions() as s:
        loaded = s.get(PaRequest, rid)
        assert loaded is not None and [d.kind for d in loaded.decisions] == ["pend"]
        collection = loaded.decisions
        with pytest.raises(RuntimeError), s.begin_nested():
            with _statements(rt) as seen:
                result = reviews.decide(s, rt, principal=reviewer.principal, request_id=rid, outcome="affirm")
            assert loaded.decisions is collection  # the new row joins the loaded list itself
            assert result.request is loaded and [d.kind for d in loaded.decisions] == [
                "pend",
                "clinician_affirm",
            ]
            assert not s.dirty and not s.new
            raise RuntimeError("interrupted after the decision")
        reads = [q for q in seen if q.startswith("SELECT") and "FROM pa_requests" in q]
        assert len(reads) == 1 and reads[0].endswith("FOR UPDATE") == (rt.engine.dialect.name == "postgresql")
        assert (loaded.status, loaded.version) == ("pended", 1)
        assert [d.kind for d in loaded.decisions] == ["pend"]
        # Deemed first, then recorded late: both decisions reach the loaded collection, in order.
        rt.clock.set(rt.clock.now() + dt.timedelta(days=30))  # type: ignore[attr-defined]
        late = reviews.decide(s, rt, principal=reviewer.principal, request_id=rid, outcome="affirm")
        assert late.request is loaded and not late.applied
        assert [d.kind for d in loaded.decisions] == ["pend", "deemed", "late_affirm"]
        s.commit()
    with rt.sessions() as s:
        kinds = s.scalars(select(Decision.kind).where(Decision.request_id == rid).order_by(Decision.id)).all()
        assert kinds == ["pend", "deemed", "late_affirm"]
        stored = s.get(PaRequest, rid)
        assert stored is not None and (stored.status, stored.version) == ("deemed_affirmed", 2)
