"""Observability: JSON logs with request ids, Prometheus metrics, and the route table every suite walks.

Install with `install_observability(app)` after every other middleware, so the request-id/metrics
middleware is the outermost one and also sees 413s and unhandled errors.

Logs never carry secrets or PHI: the access line names the route *template* (never the raw path or query
string, which may hold an MBI filter), and the formatter redacts anything shaped like an API key, a bearer
token or an MBI that a careless message might contain.

Metrics work with one process or several: set `PROMETHEUS_MULTIPROC_DIR` to an empty, writable directory
before starting `wiserpa serve --workers N` and each worker writes its counters there; `/metrics` merges
them. The request gauges (open requests by due bucket, deadline misses, sweep lag) are computed from SQL
at scrape time, so every worker reports the same figures whichever one answers.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import os
import re
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from fastapi import FastAPI

    from wiserpa.runtime import Runtime

log = logging.getLogger("wiserpa")
access_log = logging.getLogger("wiserpa.access")

REQUEST_ID_HEADER = "X-Request-ID"
# A client-supplied id is honoured only when it is short and plain, so it cannot inject into log lines.
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "wiserpa_request_id", default=None
)

# ------------------------------------------------------------------------------------------------ redaction

_MBI_LETTER = "AC-HJKMNP-RT-Y"  # CMS leaves out S, L, O, I, B, Z
_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"wpa_[0-9a-f]{6,32}_[A-Za-z0-9_\-]{8,}"), "[api-key]"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}"), r"\1 [redacted]"),
    (re.compile(r"(?i)(wiserpa_key=)[^;\s\"']+"), r"\1[redacted]"),
    (
        re.compile(
            rf"(?<![A-Za-z0-9])[1-9][{_MBI_LETTER}][{_MBI_LETTER}0-9][0-9][{_MBI_LETTER}]"
            rf"[{_MBI_LETTER}0-9][0-9][{_MBI_LETTER}]{{2}}[0-9]{{2}}(?![A-Za-z0-9])",
            re.IGNORECASE,
        ),
        "[mbi]",
    ),
)


def redact(text: str) -> str:
    """Remove API keys, bearer tokens, session cookies and MBIs from a string."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


# Extra attributes worth keeping on a JSON line; anything else a caller attaches is ignored (least data).
_EXTRA_FIELDS = (
    "method",
    "route",
    "status",
    "duration_ms",
    "client",
    "user_id",
    "role",
    "outcome",
    "event",
    "request_id",
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and a few whitelisted fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Render a record as redacted JSON."""
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        rid = getattr(record, "request_id", None) or request_id_var.get()
        if rid:
            out["request_id"] = rid
        for name in _EXTRA_FIELDS:
            if name != "request_id" and hasattr(record, name):
                value = getattr(record, name)
                out[name] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            out["exc"] = redact("".join(traceback.format_exception(*record.exc_info))[-4000:])
        return json.dumps(out, default=str)


_HANDLER_MARK = "_wiserpa_json_handler"


def configure_logging(*, json_lines: bool = True, level: str | None = None) -> None:
    """Attach one stderr handler to the `wiserpa` logger (idempotent; level from WISERPA_LOG_LEVEL)."""
    level = (level or os.environ.get("WISERPA_LOG_LEVEL") or "INFO").upper()
    log.setLevel(level)
    if any(getattr(h, _HANDLER_MARK, False) for h in log.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s %(message)s")
    )
    setattr(handler, _HANDLER_MARK, True)
    log.addHandler(handler)


# ------------------------------------------------------------------------------------------------ metrics

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Decision latency spans minutes to days (clock start to decision).
_DECISION_BUCKETS = (1, 60, 3600, 6 * 3600, 24 * 3600, 48 * 3600, 72 * 3600, 7 * 86400, 14 * 86400)

# Process-level metrics live in a private registry; in multiprocess mode they are written to files instead
# and merged at scrape time.
_REGISTRY = CollectorRegistry(auto_describe=True)
HTTP_REQUESTS = Counter(
    "wiserpa_http_requests_total",
    "HTTP requests by method, route template and status code",
    ["method", "route", "status"],
    registry=_REGISTRY,
)
HTTP_LATENCY = Histogram(
    "wiserpa_http_request_duration_seconds",
    "HTTP request latency by method and route template",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
    registry=_REGISTRY,
)
DECISIONS = Counter(
    "wiserpa_decisions_total",
    "Decisions made by this service, by outcome (affirmed, pended, non_affirmed, deemed_affirmed, ...)",
    ["outcome"],
    registry=_REGISTRY,
)
DECISION_LATENCY = Histogram(
    "wiserpa_decision_latency_seconds",
    "Time from the clock start to the decision, by outcome",
    ["outcome"],
    buckets=_DECISION_BUCKETS,
    registry=_REGISTRY,
)


def count_decision(outcome: str, latency_seconds: float | None = None) -> None:
    """Count one decision by outcome (call after the decision is made; cheap and never raises)."""
    try:
        label = str(outcome)[:40]
        DECISIONS.labels(outcome=label).inc()
        if latency_seconds is not None and latency_seconds >= 0:
            DECISION_LATENCY.labels(outcome=label).observe(latency_seconds)
    except Exception:  # metrics must never break a decision
        log.debug("count_decision failed", exc_info=True)


DUE_BUCKETS = ("overdue", "0-24h", "24-72h", "72h+")


class RequestStateCollector(Collector):
    """Gauges computed from SQL at scrape time: the same figures whichever worker answers."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Open requests by due bucket, deadline misses by state, sweep lag, outcomes by status."""
        from sqlalchemy import case, func, literal, or_, select

        from wiserpa.requests.models import PaRequest
        from wiserpa.requests.status import OPEN
        from wiserpa.store.db import read_session

        now = self.rt.clock.now()
        open_ = [s.value for s in OPEN]
        ty = PaRequest.due_at.type

        def at(delta_hours: float) -> Any:
            return literal(now + dt.timedelta(hours=delta_hours), ty)

        up = GaugeMetricFamily("wiserpa_metrics_database_up", "1 when the scrape could read the database")
        try:
            with read_session(self.rt.sessions) as session:
                buckets = session.execute(
                    select(
                        func.count().filter(PaRequest.due_at <= at(0)),
                        func.count().filter(PaRequest.due_at > at(0), PaRequest.due_at <= at(24)),
                        func.count().filter(PaRequest.due_at > at(24), PaRequest.due_at <= at(72)),
                        func.count().filter(PaRequest.due_at > at(72)),
                        func.min(PaRequest.due_at).filter(
                            PaRequest.due_at <= at(0), PaRequest.deems_on_due.is_(True)
                        ),
                    ).where(PaRequest.status.in_(open_))
                ).one()
                missed = case(
                    (PaRequest.decision_kind == "deemed", 1),
                    (PaRequest.status.in_(open_) & (PaRequest.due_at <= at(0)), 1),
                    (
                        (PaRequest.decision_kind == "clinician") & (PaRequest.decided_at >= PaRequest.due_at),
                        1,
                    ),
                    else_=0,
                )
                misses = session.execute(
                    select(PaRequest.state, func.sum(missed))
                    .where(
                        or_(
                            PaRequest.decision_kind.in_(["deemed", "clinician"]),
                            PaRequest.status.in_(open_),
                        )
                    )
                    .group_by(PaRequest.state)
                ).all()
                by_status = session.execute(
                    select(PaRequest.status, func.count()).group_by(PaRequest.status)
                ).all()
        except Exception:  # a scrape must answer even when the database does not
            log.warning("metrics scrape could not read the database", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        g = GaugeMetricFamily(
            "wiserpa_open_requests", "Undecided stored requests by time left until due", labels=["due_bucket"]
        )
        for name, value in zip(DUE_BUCKETS, buckets[:4], strict=True):
            g.add_metric([name], float(value or 0))
        yield g
        m = GaugeMetricFamily(
            "wiserpa_deadline_misses",
            "Requests whose timeline was missed (deemed, decided late, or open past due), by state",
            labels=["state"],
        )
        for state, count in misses:
            m.add_metric([state], float(count or 0))
        yield m
        oldest = buckets[4]
        if isinstance(oldest, str):  # SQLite aggregates may come back as text
            oldest = dt.datetime.fromisoformat(oldest)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=dt.UTC)
        lag = GaugeMetricFamily(
            "wiserpa_sweep_lag_seconds",
            "Age of the oldest request that is due (deemed on read) but not yet materialized by the sweep",
        )
        lag.add_metric([], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
        yield lag
        s = GaugeMetricFamily("wiserpa_requests", "Stored requests by stored status", labels=["status"])
        for status, count in by_status:
            s.add_metric([status], float(count))
        yield s


def metrics_payload(rt: Runtime) -> bytes:
    """The Prometheus text exposition: process metrics (merged across workers) plus the SQL gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        process_part = generate_latest(merged)
    else:
        process_part = generate_latest(_REGISTRY)
    sql_registry = CollectorRegistry(auto_describe=False)
    sql_registry.register(RequestStateCollector(rt))
    return process_part + generate_latest(sql_registry)


# ------------------------------------------------------------------------------------------------ middleware


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def route_template(scope: Scope, fixed_paths: frozenset[str] = frozenset()) -> str:
    """The matched route's path template, or a fixed label for unmatched paths (bounded cardinality)."""
    route = scope.get("route")
    path = getattr(route, "path", None) or getattr(route, "path_format", None)
    if isinstance(path, str):
        return scope.get("root_path", "") + path
    raw = scope.get("path", "")
    if raw in fixed_paths:  # plain Starlette routes (/openapi.json, /docs) do not set scope["route"]
        return str(raw)
    for prefix in fixed_paths:  # mounts such as /static: the prefix only, never the file name
        if prefix != "/" and raw.startswith(prefix + "/"):
            return prefix
    return "unmatched"


class ObservabilityMiddleware:
    """Request id in and out, one access log line, and the HTTP metrics, for every request."""

    def __init__(self, app: ASGIApp, fixed_paths: Callable[[], frozenset[str]] | None = None) -> None:
        self.app = app
        self._fixed_source = fixed_paths
        self._fixed: frozenset[str] | None = None

    def _fixed_paths(self) -> frozenset[str]:
        if self._fixed is None:
            self._fixed = self._fixed_source() if self._fixed_source else frozenset()
        return self._fixed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wrap one ASGI request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = _header(scope, b"x-request-id")
        rid = supplied if supplied and _REQUEST_ID_OK.match(supplied) else uuid.uuid4().hex
        token = request_id_var.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        status = 500
        started = time.perf_counter()  # latency only; never enters a record

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            status = 500
            log.error("unhandled error", exc_info=True, extra={"event": "error"})
            raise
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope, self._fixed_paths())
            method = scope.get("method", "?")
            try:
                HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
                HTTP_LATENCY.labels(method=method, route=route).observe(elapsed)
            except Exception:  # pragma: no cover - metrics must never break a response
                log.debug("metrics update failed", exc_info=True)
            principal = scope.get("state", {}).get("principal")
            access_log.info(
                "%s %s %s",
                method,
                route,
                status,
                extra={
                    "event": "http",
                    "request_id": rid,
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "user_id": getattr(principal, "user_id", None),
                    "role": getattr(getattr(principal, "role", None), "value", None),
                },
            )
            request_id_var.reset(token)


def install_observability(app: FastAPI) -> None:
    """Add the logging/metrics middleware (outermost) and the `/metrics` route to the app."""
    rt: Runtime = app.state.runtime
    configure_logging(json_lines=getattr(rt.settings, "log_json", True))

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    def metrics(request: Request) -> Response:
        """Prometheus metrics (aggregates only: no identifiers, no PHI)."""
        return Response(metrics_payload(request.app.state.runtime), media_type=CONTENT_TYPE_LATEST)

    def fixed_paths() -> frozenset[str]:
        return frozenset(r.path for r in iter_routes(app) if "{" not in r.path)

    app.add_middleware(ObservabilityMiddleware, fixed_paths=fixed_paths)


# ------------------------------------------------------------------------------------------------ routes


@dataclass(frozen=True)
class RouteInfo:
    """One HTTP operation the application serves."""

    method: str
    path: str
    name: str
    in_schema: bool


def iter_routes(app: FastAPI) -> Iterable[RouteInfo]:
    """Every (method, path template) the app serves, included routers flattened; HEAD is left out."""
    try:
        from fastapi.routing import iter_route_contexts

        contexts: Iterable[Any] = iter_route_contexts(app.routes)
    except ImportError:  # older FastAPI: routes are already flat
        contexts = app.routes
    seen: set[tuple[str, str]] = set()
    for rc in contexts:
        path = getattr(rc, "path", None)
        methods = getattr(rc, "methods", None) or {"GET"}
        if not isinstance(path, str):
            continue
        original = getattr(rc, "original_route", rc)
        in_schema = bool(getattr(original, "include_in_schema", True))
        for method in sorted(methods):
            if method == "HEAD" or (method, path) in seen:
                continue
            seen.add((method, path))
            yield RouteInfo(method, path, str(getattr(rc, "name", "")), in_schema)
