"""The FastAPI application: one factory, every interface mounted on the same runtime."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from sqlalchemy import text

from wiserpa import __version__
from wiserpa.config import Settings
from wiserpa.http import AuthFailureLimiter, BodyLimitMiddleware, install_error_handlers
from wiserpa.runtime import Runtime

DESCRIPTION = """Prior authorization for Medicare's WISeR model, with the physicians' safeguards built in.

Authenticate with `Authorization: Bearer <api key>`. Errors are JSON `{"error": {"code", "message", "fields"}}`
naming each field at fault. `Idempotency-Key` makes POST retries safe.
"""


def create_app(runtime: Runtime | None = None, settings: Settings | None = None) -> FastAPI:
    """Build the application around a runtime (built from settings when not given)."""
    rt = runtime or Runtime.build(settings or Settings())
    app = FastAPI(title="wiserpa", version=__version__, description=DESCRIPTION)
    app.state.runtime = rt
    app.state.auth_limiter = AuthFailureLimiter(rt.settings.auth_failure_limit)
    install_error_handlers(app)

    from wiserpa.policy import views as policy_views
    from wiserpa.requests import views as request_views
    from wiserpa.reviews import views as review_views

    app.include_router(request_views.router)
    app.include_router(review_views.router)
    app.include_router(policy_views.router)

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
    return app
