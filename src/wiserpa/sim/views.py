"""The oversight pages for stored simulation runs (`wiserpa simulate --store`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from wiserpa.auth.models import Role
from wiserpa.auth.service import Principal
from wiserpa.errors import NotFound
from wiserpa.http import IdPath, SessionDep
from wiserpa.sim import outputs
from wiserpa.web.auth import page_roles
from wiserpa.web.views import page_router, register_nav, render

router = page_router()
register_nav(
    "Simulations",
    "/oversight/simulations",
    "A year of WISeR under each policy profile, through the real engine.",
    roles=(Role.OVERSIGHT, Role.ADMIN),
    order=80,
)
OversightPrincipal = Annotated[Principal, Depends(page_roles(Role.OVERSIGHT, Role.ADMIN))]


@router.get("/oversight/simulations", response_class=HTMLResponse)
def simulations(request: Request, principal: OversightPrincipal, session: SessionDep) -> HTMLResponse:
    """Stored simulation runs, newest first."""
    return render(request, "sim/list.html", principal=principal, runs=outputs.list_runs(session))


@router.get("/oversight/simulations/{run_id}", response_class=HTMLResponse)
def simulation(
    request: Request, run_id: IdPath, principal: OversightPrincipal, session: SessionDep
) -> HTMLResponse:
    """One stored run: the side-by-side table, outcomes, calibration and charts."""
    run = outputs.load_run(session, run_id)
    if run is None:
        raise NotFound(f"simulation run {run_id} not found")
    data = run.summary
    return render(
        request,
        "sim/run.html",
        principal=principal,
        run=run,
        data=data,
        rows=outputs.rows(data),
        charts=run.charts,
    )
