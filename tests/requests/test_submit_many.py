"""`submit_many`: items decided in order, each seeing the ones before it, each succeeding or failing alone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from tests.factories import DOS, body
from wiserpa.audit import service as audit
from wiserpa.audit.models import AuditEntry
from wiserpa.errors import Invalid, NotFound
from wiserpa.requests import service as requests
from wiserpa.requests.models import PaRequest
from wiserpa.requests.schemas import SubmitRequestIn
from wiserpa.runtime import Runtime


def _esi_sessions(count: int) -> list[dict[str, Any]]:
    """One beneficiary's lumbar epidural injections a month apart: the frequency limit allows four a year."""
    bodies = []
    for k in range(count):
        b = body("epidural_steroid_injection", dos=DOS + dt.timedelta(days=30 * k), seed=1)
        b["clinical_facts"]["spinal_region"] = "lumbar"
        bodies.append(b)
    return bodies


def _submissions(actor: Any, bodies: list[dict[str, Any]]) -> list[requests.Submission]:
    return [requests.Submission(actor.principal, SubmitRequestIn.model_validate(b), b) for b in bodies]


def test_a_batch_stores_what_one_by_one_submission_does(rt: Runtime, make_actor: Callable[..., Any]) -> None:
    one_by_one, batched = make_actor("provider"), make_actor("provider")
    bodies = _esi_sessions(5)
    with rt.sessions() as s:
        singles = [requests.submit(s, rt, principal=one_by_one.principal, data=i.data, raw=i.raw)
                   for i in _submissions(one_by_one, bodies)]  # fmt: skip
        s.commit()
    bodies = [{**b, "beneficiary": {"mbi": "1EG4TE5MK73"}} for b in bodies]  # a second patient, same history
    with rt.sessions() as s:
        batch = requests.submit_many(s, rt, _submissions(batched, bodies))
        s.commit()
    assert all(isinstance(r, PaRequest) for r in batch)
    statuses = [r.status for r in singles]
    # The fifth session in a year breaks the frequency limit: it is pended, not affirmed, in both.
    assert statuses[:4] == ["affirmed"] * 4 and statuses[4] == "pended"
    assert [r.status for r in batch if isinstance(r, PaRequest)] == statuses
    with rt.sessions() as s:
        assert audit.verify(s).ok


def test_a_refused_item_writes_nothing_and_the_others_are_stored(
    rt: Runtime, make_actor: Callable[..., Any]
) -> None:
    provider = make_actor("provider")
    good = body("vertebral_augmentation", seed=3)
    bad = body("vertebral_augmentation", seed=4, emergency=True)  # excluded from WISeR: refused, field named
    with rt.sessions() as s:
        before = s.scalar(select(func.count()).select_from(PaRequest))
        results = requests.submit_many(s, rt, _submissions(provider, [good, bad, good]))
        s.commit()
        after = s.scalar(select(func.count()).select_from(PaRequest))
    assert isinstance(results[0], PaRequest) and isinstance(results[2], PaRequest)
    assert isinstance(results[1], Invalid) and {f.field for f in results[1].fields} == {"emergency"}
    assert after == (before or 0) + 2
    assert results[0].id + 1 == results[2].id  # the refused item took no id


def test_the_history_read_gives_what_the_columns_hold(rt: Runtime, make_actor: Callable[..., Any]) -> None:
    # `_history_rows` reads on the driver and converts with the columns' own result processors: its rows must
    # hold what a Core read of the same columns gives (dates, aware instants, decoded facts, flags).
    provider = make_actor("provider")
    with rt.sessions() as s:
        stored = [
            r
            for r in requests.submit_many(s, rt, _submissions(provider, _esi_sessions(2)))
            if isinstance(r, PaRequest)
        ]
        s.commit()
    mbi, category = stored[0].beneficiary_mbi, stored[0].category
    with rt.sessions() as s:
        rows = requests._history_rows(
            s, {(mbi, category), (mbi, "no_such_category"), ("1EG4TE5MK74", category)}
        )
        t = requests._REQUESTS
        core = s.execute(
            select(t.c.id, t.c.date_of_service, t.c.category, t.c.policy_id, t.c.clinical_facts, t.c.status,
                   t.c.deems_on_due, t.c.due_at).where(t.c.beneficiary_mbi == mbi).order_by(t.c.id)
        ).all()  # fmt: skip
    assert rows[mbi, "no_such_category"] == [] and rows["1EG4TE5MK74", category] == []
    got = sorted(rows[mbi, category], key=lambda r: r.id)
    assert [(r.id, r.date_of_service, r.category, r.policy_id, r.facts, r.status, r.deems_on_due, r.due_at)
            for r in got] == [tuple(row) for row in core]  # fmt: skip
    assert [r.id for r in got] == [r.id for r in stored]
    assert all(type(r.date_of_service) is dt.date and r.due_at.tzinfo is dt.UTC for r in got)
    assert all(type(r.deems_on_due) is bool and isinstance(r.facts, dict) for r in got)


def test_resubmitting_reads_the_original_as_the_orm_would(
    rt: Runtime, make_actor: Callable[..., Any]
) -> None:
    # `_original` adopts a Core read of a request that is not in the session; the caller's own request is
    # resubmitted from it, another organization's is a 404 with its refusal audited.
    owner, stranger = make_actor("provider"), make_actor("provider")
    with rt.sessions() as s:
        (first,) = requests.submit_many(s, rt, _submissions(owner, [body("vertebral_augmentation", seed=5)]))
        assert isinstance(first, PaRequest)
        requests.withdraw(s, rt, principal=owner.principal, request_id=first.id, reason="wrong side")
        s.commit()
    with rt.sessions() as s:
        (refused,) = requests.resubmit_many(s, rt, [requests.Resubmission(stranger.principal, first.id, {})])
        assert isinstance(refused, NotFound)
        refusals = s.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "request.resubmit", AuditEntry.outcome == "not_found"
            )
        ).all()
        assert [e.object_id for e in refusals] == [str(first.id)]
    with rt.sessions() as s:
        (again,) = requests.resubmit_many(s, rt, [requests.Resubmission(owner.principal, first.id, {})])
        assert isinstance(again, PaRequest) and again.predecessor_id == first.id
        original = s.get(PaRequest, first.id)
        assert original is not None and original.status == "withdrawn"
        assert [d.kind for d in original.decisions] == ["auto_affirm", "withdrawn"]  # loaded on access
        s.commit()


def test_lines_and_decisions_get_the_ids_they_are_stored_under(
    rt: Runtime, make_actor: Callable[..., Any]
) -> None:
    # `_child_ids` reserves the lines' and decisions' ids before they are built (on PostgreSQL a batch of one
    # leaves them to the insert): either way each object holds the id of its row.
    provider = make_actor("provider")
    for size in (1, 3):
        bodies = [body("vertebral_augmentation", seed=10 * size + k) for k in range(size)]
        with rt.sessions() as s:
            made = [
                r
                for r in requests.submit_many(s, rt, _submissions(provider, bodies))
                if isinstance(r, PaRequest)
            ]
            s.commit()
            held = {r.id: ([ln.id for ln in r.lines], [d.id for d in r.decisions]) for r in made}
        assert len(made) == size
        with rt.sessions() as s:
            for request_id, (line_ids, decision_ids) in held.items():
                stored = s.get(PaRequest, request_id)
                assert stored is not None and None not in line_ids + decision_ids
                assert ([ln.id for ln in stored.lines], [d.id for d in stored.decisions]) == (
                    line_ids,
                    decision_ids,
                )
