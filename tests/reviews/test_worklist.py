"""The worklist service: the light form the simulator uses gives the same page as the full one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

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

    def page(details: bool) -> tuple[list[int], int, list[list[str]], list[int]]:
        with rt.sessions() as session:
            got = reviews.worklist(session, rt, principal=reviewer.principal, limit=10, details=details)
            # Without details, lines and decisions still load, on access.
            lines = [[ln.code for ln in r.lines] for r in got.items]
            decisions = [len(r.decisions) for r in got.items]
            session.rollback()
            return [r.id for r in got.items], got.total, lines, decisions

    full = page(details=True)
    assert len(full[0]) == full[1] == 2
    assert page(details=False) == full
