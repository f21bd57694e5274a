"""The worklist service: the light form the simulator uses gives the same page as the full one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import inspect

from tests.factories import body
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

    def page(details: bool) -> tuple[list[int], int, list[list[str]], list[int], list[tuple[Any, ...]]]:
        with rt.sessions() as session:
            got = reviews.worklist(session, rt, principal=reviewer.principal, limit=10, details=details)
            if not details:  # only the id is read with the page
                assert all(inspect(r).unloaded >= {"status", "due_at", "criteria_results"} for r in got.items)
            # Without details, the other columns, lines and decisions still load, on access.
            lines = [[ln.code for ln in r.lines] for r in got.items]
            decisions = [len(r.decisions) for r in got.items]
            columns = [(r.status, r.due_at, r.category, r.criteria_results) for r in got.items]
            session.rollback()
            return [r.id for r in got.items], got.total, lines, decisions, columns

    full = page(details=True)
    assert len(full[0]) == full[1] == 2
    assert page(details=False) == full
