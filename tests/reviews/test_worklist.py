"""The worklist service: the light form the simulator uses gives the same page as the full one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.factories import body
from wiserpa.audit.models import AuditEntry
from wiserpa.policy.examples import VIOLATIONS
from wiserpa.reviews import service as reviews
from wiserpa.runtime import Runtime
from wiserpa.store.base import run_on_driver


def test_worklist_without_details_gives_the_same_page(
    client: TestClient, make_actor: Callable[..., Any], rt: Runtime
) -> None:
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    for category in ("vertebral_augmentation", "epidural_steroid_injection"):
        fact, bad, _ = VIOLATIONS[category]
        data = body(category)
        data["clinical_facts"][fact] = bad
        assert (
            client.post("/api/v1/requests", json=data, headers=provider.headers).json()["status"] == "pended"
        )

    def page(details: bool, limit: int = 10) -> tuple[list[int], int | None, dict[str, Any]]:
        with rt.sessions() as session:
            got = reviews.worklist(session, rt, principal=reviewer.principal, limit=limit, details=details)
            if not details:  # only the ids are read
                assert all(type(r) is reviews.WorklistEntry for r in got.items)
            audited = session.scalars(
                select(AuditEntry).where(AuditEntry.action == "worklist.read").order_by(AuditEntry.id.desc())
            ).first()
            assert audited is not None
            entry = {
                k: getattr(audited, k) for k in ("actor", "object_type", "object_id", "outcome", "details")
            }
            session.rollback()
            return [r.id for r in got.items], got.total, entry

    full = page(details=True)
    assert len(full[0]) == full[1] == 2 and full[2]["details"] == {"ids": full[0]}
    assert page(details=False) == full
    # The backlog figure: a count with a one-item page.
    assert page(details=False, limit=1)[:2] == (full[0][:1], 2)


def test_worklist_reads_on_the_driver_give_what_sqlalchemy_gives(
    client: TestClient, make_actor: Callable[..., Any], rt: Runtime
) -> None:
    """The count and the id page go straight to SQLite's driver: the same rows as SQLAlchemy's execution, for each
    caller's statements, with a category or without, and times before and after the due time."""
    provider, oh_provider = make_actor("provider"), make_actor("provider", state="OH")
    for who, state in ((provider, "TX"), (provider, "TX"), (oh_provider, "OH")):
        for category in ("vertebral_augmentation", "epidural_steroid_injection"):
            fact, bad, _ = VIOLATIONS[category]
            data = body(category, state=state)
            data["clinical_facts"][fact] = bad
            assert client.post("/api/v1/requests", json=data, headers=who.headers).status_code == 201
    principals = [make_actor(role).principal for role in ("reviewer", "oversight", "admin")]
    now = rt.clock.now()
    checked = found = 0
    with rt.sessions() as session:
        connection = session.connection()
        for principal in principals:
            for category in (None, "epidural_steroid_injection"):
                for at in (now, now + dt.timedelta(days=30)):
                    for limit, offset in ((50, 0), (1, 1)):
                        params = {"now": at, "category": category, "limit": limit, "offset": offset}
                        # The count and the id page (the ORM page is read through the session).
                        count_all, _, id_page = reviews._worklist_statements(principal, bool(category))
                        for statement in (count_all, id_page):
                            expected = [tuple(r) for r in connection.execute(statement, params)]
                            got = [tuple(r) for r in run_on_driver(connection, statement, params).rows]
                            assert got == expected
                            checked += 1
                            found += bool(expected and expected[0] != (0,))
        session.rollback()
    assert checked == 3 * 2 * 2 * 2 * 2 and found >= checked // 3  # not only empty worklists
