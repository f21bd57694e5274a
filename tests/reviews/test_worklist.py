"""The worklist service: the light form the simulator uses gives the same page as the full one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.factories import body
from wiserpa.audit.models import AuditEntry
from wiserpa.policy.examples import VIOLATIONS
from wiserpa.reviews import service as reviews
from wiserpa.runtime import Runtime


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
