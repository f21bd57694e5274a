"""REST routes for missed deadlines and the penalty ledger; the background sweep rides on this router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query

from wiserpa.deadlines import service
from wiserpa.http import PrincipalDep, RuntimeDep, SessionDep
from wiserpa.runtime import Runtime

Month = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM (month of the due date)")]
Participant = Annotated[str | None, Query(max_length=100)]
State = Annotated[str | None, Query(min_length=2, max_length=2)]


@asynccontextmanager
async def sweeper(app: FastAPI) -> AsyncIterator[None]:
    """Run the deadline sweep in a background thread while the app serves (interval 0 = off)."""
    rt: Runtime = app.state.runtime
    worker = service.SweepWorker(rt, rt.settings.sweep_interval_seconds)
    worker.start()
    app.state.sweeper = worker
    try:
        yield
    finally:
        worker.stop()


# FastAPI merges a router's lifespan into the app's when the router is included.
router = APIRouter(prefix="/api/v1", tags=["deadlines"], lifespan=sweeper)


@router.get("/deadlines/misses")
def misses(
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    participant: Participant = None,
    state: State = None,
    month: Month = None,
    resolution: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Every missed review timeline (reviewers: your state), with lateness, forwarding delay and price."""
    rows, total = service.list_misses(
        session,
        rt,
        principal=principal,
        participant=participant,
        state=state,
        month=month,
        resolution=resolution,
        limit=limit,
        offset=offset,
    )
    now = rt.clock.now()
    return {
        "items": [service.miss_view(rt, m, now) for m in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.get("/penalties")
def penalties(
    session: SessionDep,
    rt: RuntimeDep,
    principal: PrincipalDep,
    participant: Participant = None,
    state: State = None,
    month: Month = None,
) -> dict[str, Any]:
    """The penalty ledger per participant and month, priced by the profile in force."""
    lines = service.penalty_ledger(
        session, rt, principal=principal, participant=participant, state=state, month=month
    )
    p = rt.profile.penalties
    return {
        "profile": {"id": rt.profile.id, "version": rt.profile.version},
        "enforced": p.enforced,
        "items": lines,
        "total_usd": round(sum(line["amount_usd"] for line in lines), 2),
    }
