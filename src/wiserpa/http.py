"""Shared HTTP plumbing: the runtime, sessions, authentication, errors and body limits."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wiserpa.auth.models import Role
from wiserpa.auth.service import Principal, authenticate
from wiserpa.errors import ApiError, FieldError, Forbidden, Invalid, field_path
from wiserpa.fhir.outcome import Issue, IssueCode, operation_outcome
from wiserpa.ids import MAX_ID, parse_id
from wiserpa.runtime import Runtime
from wiserpa.store.idempotency import IdempotencyConflict, Outcome, fingerprint, run_once


def get_runtime(request: Request) -> Runtime:
    """The application's runtime."""
    rt: Runtime = request.app.state.runtime
    return rt


async def get_session(rt: Annotated[Runtime, Depends(get_runtime)]) -> AsyncIterator[Session]:
    """A database session for one HTTP request; services commit, anything uncommitted is rolled back.

    Async on purpose: a sync generator dependency costs two worker-thread hops per request (enter and
    exit), the largest fixed cost of a route. Creating a session touches no database, and closing one
    after its unit of work committed only returns a connection to the pool, so neither blocks the loop.
    """
    session = rt.sessions()
    try:
        yield session
    finally:
        session.close()


class SlidingWindow:
    """Each client's recent events within a window, for rate limits; clients whose events have all aged out are
    forgotten, so a server that meets many addresses does not keep one entry per address for ever.

    Monotonic time only paces abuse; it never enters a decision or a record.
    """

    def __init__(self, window_seconds: float, now: Callable[[], float] = time.monotonic) -> None:
        self.window = window_seconds
        self._now = now
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()  # request handlers run on several threads
        self._purge_at = _PURGE_FLOOR

    def count(self, client: str) -> int:
        """The client's events within the window."""
        with self._lock:
            q = self._events.get(client)
            if q is None:
                return 0
            cutoff = self._now() - self.window
            while q and q[0] < cutoff:
                q.popleft()
            if not q:
                del self._events[client]
            return len(q)

    def add(self, client: str) -> None:
        """Record one event of the client, now."""
        with self._lock:
            now = self._now()
            self._events.setdefault(client, deque()).append(now)
            if len(self._events) >= self._purge_at:
                # Clients that never came back: drop those whose latest event has aged out. Purging when the
                # table doubles keeps the cost per event constant.
                cutoff = now - self.window
                for stale in [c for c, q in self._events.items() if q[-1] < cutoff]:
                    del self._events[stale]
                self._purge_at = max(_PURGE_FLOOR, 2 * len(self._events))

    def __len__(self) -> int:
        return len(self._events)


_PURGE_FLOOR = 1024  # clients a window holds before it first looks for ones to forget


class AuthFailureLimiter:
    """Sliding-window count of failed authentications per client, to slow down key guessing."""

    def __init__(self, limit: int, window_seconds: float = 60.0) -> None:
        self.limit = limit
        self.failures = SlidingWindow(window_seconds)

    def blocked(self, client: str) -> bool:
        """True while the client has too many recent failures."""
        return self.failures.count(client) >= self.limit

    def failed(self, client: str) -> None:
        """Count one failure."""
        self.failures.add(client)


class Unauthorized(ApiError):
    """Missing or invalid credentials."""

    def __init__(self, message: str = "a valid API key is required (Authorization: Bearer <key>)") -> None:
        super().__init__(message, [], 401, "unauthorized")


class TooManyFailures(ApiError):
    """Too many failed authentications from this client."""

    def __init__(self) -> None:
        super().__init__("too many failed authentications; wait a minute", [], 429, "rate_limited")


def _token(request: Request, authorization: str | None) -> str | None:
    if authorization:
        scheme, _, value = authorization.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None
    return request.cookies.get("wiserpa_key")


def get_principal(
    request: Request,
    session: Annotated[Session, Depends(get_session)],
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    """Authenticate the caller by API key (header or web-session cookie)."""
    limiter: AuthFailureLimiter = request.app.state.auth_limiter
    client = request.client.host if request.client else "unknown"
    if limiter.blocked(client):
        raise TooManyFailures()
    token = _token(request, authorization)
    principal = authenticate(session, token, now=request.app.state.runtime.clock.now()) if token else None
    if principal is None:
        limiter.failed(client)
        raise Unauthorized()
    request.state.principal = principal
    return principal


def require_roles(*roles: Role) -> Any:
    """Dependency factory: the caller must hold one of `roles`."""

    def dependency(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role not in roles:
            raise Forbidden(f"this needs one of the roles: {', '.join(r.value for r in roles)}")
        return principal

    return dependency


async def raw_json(request: Request) -> Any:
    """The JSON body exactly as sent (kept beside parsed columns); malformed JSON is a 422, not a crash."""
    try:
        return await request.json()
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise Invalid("the body is not valid JSON", [FieldError("body", "send a JSON document")]) from exc


# Ids are 64-bit in both databases; a larger number can name nothing, so it is refused before any query.
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
RawBody = Annotated[Any, Depends(raw_json)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
IfMatch = Annotated[str | None, Header(alias="If-Match")]


# One entity tag of an If-Match list (RFC 9110 8.8.3): optionally weak (W/), a quoted run of visible characters
# other than the quote, then a comma or the end. Header text arrives decoded as Latin-1.
_LISTED_TAG = re.compile(r'[ \t]*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"[ \t]*(?:,|\Z)')
_IF_MATCH_HELP = 'use * or quoted entity tags from ETag, such as "3"'


def if_match_version(if_match: str | None) -> frozenset[int] | None:
    """What an If-Match header asks for (RFC 9110 13.1.1): None when it is absent or `*` (any current version),
    else the versions its entity tags name. ETags are the row version; If-Match compares strongly, so a weak tag,
    or a tag that is not ours, names none. A value that is neither is a 400 naming the header."""
    value = (if_match or "").strip()
    if not value or value == "*":
        return None
    versions: set[int] = set()
    position = 0
    while position < len(value):
        tag = _LISTED_TAG.match(value, position)
        if tag is None:
            raise ApiError(f"If-Match: {_IF_MATCH_HELP}", [FieldError("If-Match", _IF_MATCH_HELP)])
        version = None if tag.group(1) else parse_id(tag.group(2))
        if version is not None:
            versions.add(version)
        position = tag.end()
    return frozenset(versions)


def once(session: Session, rt: Runtime, *, scope: str, key: str | None, raw: Any, work: Any) -> Outcome:
    """Run a POST's unit of work once per Idempotency-Key within `scope` (whose keys these are), and commit it."""
    return run_once(
        session,
        scope=scope,
        key=key,
        fingerprint_=fingerprint("POST", scope, raw),
        now=rt.clock.now(),
        work=work,
    )


def respond(outcome: Outcome, *, location: str | None = None) -> JSONResponse:
    """Send a stored or fresh outcome: marks replays, sets Location on creation and the ETag from `version`."""
    headers: dict[str, str] = {}
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    if location and outcome.status_code == 201:
        headers["Location"] = location
    body = outcome.body
    if isinstance(body, dict) and isinstance(body.get("version"), int):
        headers["ETag"] = f'"{body["version"]}"'
    return JSONResponse(body, status_code=outcome.status_code, headers=headers)


SessionDep = Annotated[Session, Depends(get_session)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]


def _needs_key(request: Request) -> bool:
    """True when the matched route authenticates its caller (get_principal somewhere in its dependencies)."""
    route = request.scope.get("route")
    stack = [getattr(route, "dependant", None)]
    while stack:
        dependant = stack.pop()
        if dependant is None:
            continue
        if dependant.call is get_principal:
            return True
        stack.extend(dependant.dependencies)
    return False


# The OperationOutcome issue type for each status an ApiError can carry (R4 IssueType).
_ISSUE_TYPES: dict[int, IssueCode] = {401: "login", 403: "forbidden", 404: "not-found", 409: "conflict"}


def _is_fhir(request: Request) -> bool:
    return request.url.path == "/fhir" or request.url.path.startswith("/fhir/")


def _error_response(request: Request, body: dict[str, Any], status: int) -> JSONResponse:
    """The REST error body, or for a FHIR client (a /fhir path) the same error as an OperationOutcome."""
    if not _is_fhir(request):
        return JSONResponse(body, status_code=status)
    error = body["error"]
    code = _ISSUE_TYPES.get(status, "invalid")
    issues = [Issue("error", code, f"{f['field']}: {f['message']}", [f["field"]]) for f in error["fields"]]
    outcome = operation_outcome(issues or [Issue("error", code, error["message"])])
    return JSONResponse(outcome, status_code=status, media_type="application/fhir+json")


def install_error_handlers(app: FastAPI) -> None:
    """Every expected error becomes a clear JSON 4xx naming the field (an OperationOutcome under /fhir)."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error_response(request, exc.to_dict(), exc.status_code)

    @app.exception_handler(IdempotencyConflict)
    async def _idem(request: Request, exc: IdempotencyConflict) -> JSONResponse:
        body = {
            "error": {
                "code": "idempotency_conflict",
                "message": str(exc),
                "fields": [{"field": "Idempotency-Key", "message": str(exc)}],
            }
        }
        return _error_response(request, body, 409)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        if _needs_key(request) and _token(request, request.headers.get("authorization")) is None:
            # FastAPI parses a malformed body before any dependency runs; answer "who are you?" first.
            return _error_response(request, Unauthorized().to_dict(), 401)
        fields = []
        for err in exc.errors():
            msg = str(err.get("msg", "invalid"))
            msg = msg.removeprefix("Value error, ")
            fields.append({"field": field_path(tuple(err.get("loc", ()))), "message": msg})
        message = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5]) or "invalid request"
        return _error_response(
            request, {"error": {"code": "invalid", "message": message, "fields": fields}}, 422
        )


class BodyLimitMiddleware:
    """Refuse bodies over the limit with 413 before they reach a route (declared or streamed)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = True
                if too_big:
                    await _send_413(scope, send, self.max_bytes)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except BodyTooLarge:
            await _send_413(scope, send, self.max_bytes)


class BodyTooLarge(Exception):
    """Raised mid-stream when a body passes the limit."""


async def _send_413(scope: Scope, send: Send, limit: int) -> None:
    message = f"request body over {limit} bytes"
    if str(scope.get("path", "")).startswith("/fhir"):
        # FHIR clients get their own error shape (PAS spec-39): an OperationOutcome naming the body.
        issue = Issue("error", "too-costly", f"{message}: at most {limit} bytes", ["Bundle"])
        content_type, payload = b"application/fhir+json", operation_outcome([issue])
    else:
        content_type = b"application/json"
        payload = {
            "error": {
                "code": "too_large",
                "message": message,
                "fields": [{"field": "body", "message": f"at most {limit} bytes"}],
            }
        }
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
