"""Web sign-in: the API key in an HttpOnly cookie, CSRF tokens derived from it, and page dependencies."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from markupsafe import Markup, escape
from starlette.datastructures import FormData

from wiserpa.auth.models import Role
from wiserpa.auth.service import Principal, authenticate
from wiserpa.http import AuthFailureLimiter, SessionDep, TooManyFailures

COOKIE = "wiserpa_key"
CSRF_FIELD = "csrf_token"


class LoginRequired(Exception):
    """No valid web session: the page answers with a redirect to the login form."""

    def __init__(self, next_path: str = "/") -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PageForbidden(Exception):
    """Signed in, but this page is not for the caller's role (rendered as a 403 page)."""


class CsrfRejected(Exception):
    """A POST form without the right CSRF token (rendered as a 403 page, nothing done)."""


def csrf_token(key: str, form: str) -> str:
    """The token for one form: an HMAC keyed by the user's API key (every worker computes the same)."""
    # No server secret is needed: an attacker who could compute this already holds the key itself.
    return hmac.new(key.encode(), f"wiserpa-csrf:{form}".encode(), hashlib.sha256).hexdigest()


def csrf_field(request: Request, form: str) -> Markup:
    """The hidden input carrying the CSRF token for `form` (empty when not signed in)."""
    key = request.cookies.get(COOKIE)
    if not key:
        return Markup("")
    token = escape(csrf_token(key, form))
    return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{token}">')


def same_origin(request: Request) -> bool:
    """Whether a POST came from this site: browsers send Origin on POST; when present it must be ours."""
    # Defence in depth beside the token; the only check on the sign-in form, which has no token yet.
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", request.url.netloc)


def csrf_form(form: str) -> Callable[[Request], Awaitable[FormData]]:
    """Dependency factory: read the POSTed form and check its CSRF token for `form`; returns the form data."""

    async def dependency(request: Request) -> FormData:
        data = await request.form()
        key = request.cookies.get(COOKIE)
        sent = data.get(CSRF_FIELD)
        if (
            not key
            or not isinstance(sent, str)
            or not hmac.compare_digest(sent, csrf_token(key, form))
            or not same_origin(request)
        ):
            raise CsrfRejected(form)
        return data

    return dependency


def safe_next(value: str | None) -> str:
    """A local path to return to after login (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _next_path(request: Request) -> str:
    path = request.url.path
    return f"{path}?{request.url.query}" if request.url.query else path


def optional_principal(request: Request, session: SessionDep) -> Principal | None:
    """The signed-in user, or None; a stale cookie counts as signed out."""
    key = request.cookies.get(COOKIE)
    if not key:
        return None
    limiter: AuthFailureLimiter = request.app.state.auth_limiter
    client = request.client.host if request.client else "unknown"
    if limiter.blocked(client):
        raise TooManyFailures()
    principal = authenticate(session, key, now=request.app.state.runtime.clock.now())
    if principal is None:
        limiter.failed(client)
        return None
    request.state.principal = principal
    return principal


def web_principal(
    request: Request, principal: Annotated[Principal | None, Depends(optional_principal)]
) -> Principal:
    """The signed-in user; otherwise the page redirects to the login form and comes back afterwards."""
    if principal is None:
        raise LoginRequired(_next_path(request))
    return principal


def page_roles(*roles: Role) -> Callable[..., Principal]:
    """Dependency factory: a signed-in user holding one of `roles`."""

    def dependency(principal: Annotated[Principal, Depends(web_principal)]) -> Principal:
        if principal.role not in roles:
            raise PageForbidden(f"This page is for: {', '.join(r.value for r in roles)}.")
        return principal

    return dependency


WebPrincipal = Annotated[Principal, Depends(web_principal)]
MaybePrincipal = Annotated[Principal | None, Depends(optional_principal)]
