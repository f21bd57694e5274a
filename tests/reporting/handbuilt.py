"""The hand-built report data set r1..r8 (see test_metrics.py's docstring), built through the services.

Shared by the metric tests (figures worked out by hand) and the rollup tests (stored blocks == live path).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.conftest import T0
from tests.factories import body
from wiserpa.policy.clock import FixedClock
from wiserpa.policy.examples import COMPLETE_FACTS
from wiserpa.requests import service as requests
from wiserpa.requests.schemas import SubmitRequestIn
from wiserpa.reviews import service as reviews
from wiserpa.reviews import workflow
from wiserpa.runtime import Runtime

H = dt.timedelta(hours=1)


def submit(rt: Runtime, provider: Any, case: str, seed: int, **over: Any) -> int:
    """Submit one factory body as `provider`; the new request's id."""
    raw = body(case=case, seed=seed, **over)
    with rt.sessions() as session:
        req = requests.submit(
            session, rt, principal=provider.principal, data=SubmitRequestIn.model_validate(raw), raw=raw
        )
        session.commit()
        return req.id


def decide(rt: Runtime, reviewer: Any, request_id: int, outcome: str, note: str = "reviewed") -> None:
    """A clinician's decision; a non-affirmation cites the request's first unmet criterion."""
    with rt.sessions() as session:
        reasons: list[str] = []
        if outcome == "non_affirm":
            req = session.get(requests.PaRequest, request_id)
            assert req is not None
            reasons = [r["criterion_id"] for r in req.criteria_results if r.get("result") == "unmet"][:1]
        reviews.decide(
            session,
            rt,
            principal=reviewer.principal,
            request_id=request_id,
            outcome=outcome,
            reasons=reasons,
            note=note,
        )
        session.commit()


def withdraw(rt: Runtime, provider: Any, request_id: int) -> None:
    """The practice withdraws its request."""
    with rt.sessions() as session:
        requests.withdraw(
            session, rt, principal=provider.principal, request_id=request_id, reason="cancelled"
        )
        session.commit()


def build(
    rt: Runtime, clock: FixedClock, provider: Any, reviewer: Any, *, peer_to_peer: bool = False
) -> dict[str, int]:
    """r1..r8, moving the clock; with `peer_to_peer`, the practice also asks for one on r4 at T0+30h."""
    ids = {
        "r1": submit(rt, provider, "complete", 1),
        "r2": submit(rt, provider, "incomplete", 2),
        "r3": submit(rt, provider, "unmet", 3),
        "r4": submit(rt, provider, "incomplete", 4),
        "r5": submit(rt, provider, "complete", 5, urgency="expedited"),
        "r6": submit(rt, provider, "incomplete", 6),
    }
    clock.set(T0 + 1 * H)
    withdraw(rt, provider, ids["r6"])
    clock.set(T0 + 10 * H)
    decide(rt, reviewer, ids["r2"], "affirm", note="documentation complete")
    clock.set(T0 + 20 * H)
    decide(rt, reviewer, ids["r3"], "non_affirm", note="criterion not met")
    clock.set(T0 + 30 * H)
    with rt.sessions() as session:
        r7 = requests.resubmit(
            session,
            rt,
            principal=provider.principal,
            request_id=ids["r3"],
            changes={"clinical_facts": dict(COMPLETE_FACTS["epidural_steroid_injection"])},
        )
        session.commit()
        ids["r7"] = r7.id
    if peer_to_peer:
        with rt.sessions() as session:
            workflow.request_peer_to_peer(session, rt, principal=provider.principal, request_id=ids["r4"])
            session.commit()
    clock.set(T0 + 99 * H)
    ids["r8"] = submit(rt, provider, "incomplete", 8)
    clock.set(T0 + 100 * H)
    return ids
