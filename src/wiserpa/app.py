"""The FastAPI application: one factory, every interface mounted on the same runtime."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from sqlalchemy import text

from wiserpa import __version__
from wiserpa.claims import views as claim_views
from wiserpa.config import Settings
from wiserpa.deadlines import views as deadline_views
from wiserpa.exemptions import views as exemption_views
from wiserpa.experience import views as experience_views
from wiserpa.fhir import views as fhir_views
from wiserpa.goldcard import views as goldcard_views
from wiserpa.http import AuthFailureLimiter, BodyLimitMiddleware, install_error_handlers
from wiserpa.observability import install_observability
from wiserpa.policy import views as policy_views
from wiserpa.reporting import views as report_views
from wiserpa.requests import views as request_views
from wiserpa.reviews import views as review_views
from wiserpa.reviews import workflow_views
from wiserpa.runtime import Runtime
from wiserpa.sim import views as sim_views
from wiserpa.support import views as support_views
from wiserpa.web import views as web_views

DESCRIPTION = """Prior authorization for Medicare's WISeR model, with the physicians' safeguards built in.

Authenticate with `Authorization: Bearer <api key>`. Errors are JSON
`{"error": {"code", "message", "fields"}}`
naming each field at fault. `Idempotency-Key` makes POST retries safe.
"""


def create_app(runtime: Runtime | None = None, settings: Settings | None = None) -> FastAPI:
    """Build the application around a runtime (built from settings when not given)."""
    rt = runtime or Runtime.build(settings or Settings())
    app = FastAPI(title="wiserpa", version=__version__, description=DESCRIPTION)
    app.state.runtime = rt
    app.state.auth_limiter = AuthFailureLimiter(rt.settings.auth_failure_limit)
    install_error_handlers(app)

    # REST API (/api/v1): every domain's router, each a thin layer over its service.
    for router in (
        request_views.router,
        review_views.router,
        workflow_views.router,  # information requests, peer-to-peer
        policy_views.router,  # catalog lookup, documentation checklist (public)
        deadline_views.router,  # misses, penalties; its lifespan runs the background sweep
        goldcard_views.router,
        exemption_views.router,
        claim_views.router,  # claims, pre-payment review, appeals; POST /fhir/Claim
        support_views.router,
        experience_views.router,
        report_views.api,  # /api/v1/public/... (no key)
    ):
        app.include_router(router)
    fhir_views.install(app)  # /fhir (PAS, Subscriptions, DTR, metadata), /cds-services (CRD)
    # HTML pages: the web foundation first (login, /static), then each domain's pages on it.
    web_views.install(app)
    for router in (support_views.pages, experience_views.pages, sim_views.router, report_views.pages):
        app.include_router(router)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, Any]:
        """Liveness: the process answers."""
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["operations"])
    def readyz() -> Any:
        """Readiness: the database answers and its schema is current."""
        from fastapi.responses import JSONResponse

        from wiserpa.store.migrate import schema_status

        try:
            with rt.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            status = schema_status(rt.engine)
        except Exception as exc:  # any database failure means not ready
            return JSONResponse({"status": "unavailable", "detail": type(exc).__name__}, status_code=503)
        ok = status.current
        return JSONResponse(
            {
                "status": "ok" if ok else "migrations_pending",
                "database": status.as_dict(),
                "profile": {"id": rt.profile.id, "version": rt.profile.version},
            },
            status_code=200 if ok else 503,
        )

    app.add_middleware(BodyLimitMiddleware, max_bytes=rt.settings.max_body_bytes)
    install_observability(app)  # last: its middleware is outermost (request ids, metrics, access log)
    return app
