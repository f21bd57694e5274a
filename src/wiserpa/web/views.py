"""The web foundation: templates, `render`, the role-aware nav, login/logout, home, and HTML error pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from wiserpa.auth.models import Role
from wiserpa.auth.service import Principal, authenticate
from wiserpa.errors import ApiError
from wiserpa.http import AuthFailureLimiter, SessionDep
from wiserpa.runtime import Runtime
from wiserpa.web.auth import (
    COOKIE,
    CsrfRejected,
    LoginRequired,
    MaybePrincipal,
    PageForbidden,
    csrf_field,
    csrf_form,
    safe_next,
    same_origin,
)

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
NOTICE_COOKIE = "wiserpa_notice"

# Pages are HTML for people: a strict policy with no inline script or style, no framing, no sniffing.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


# ---------------------------------------------------------------------------------------------- nav


@dataclass(frozen=True)
class NavItem:
    """A link in the top navigation and on the home page; `roles` None means everyone, signed in or not."""

    label: str
    href: str
    description: str
    roles: frozenset[Role] | None = None
    order: int = 100


NAV: list[NavItem] = []


def register_nav(
    label: str, href: str, description: str, *, roles: tuple[Role, ...] | None = None, order: int = 100
) -> None:
    """Add a link to the nav and the home page (call at import time of your page module)."""
    if any(item.href == href for item in NAV):
        return  # re-imports (tests build many apps) must not duplicate links
    NAV.append(NavItem(label, href, description, frozenset(roles) if roles else None, order))
    NAV.sort(key=lambda item: item.order)


def nav_for(principal: Principal | None) -> list[NavItem]:
    """The links this user (or an anonymous visitor) may follow."""
    return [
        item for item in NAV if item.roles is None or (principal is not None and principal.role in item.roles)
    ]


# ---------------------------------------------------------------------------------------------- render


def _when(value: dt.datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.astimezone(dt.UTC).strftime("%a %d %b %Y, %H:%M UTC")


def _iso(value: dt.datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def remaining_text(due: dt.datetime | str | None, now: dt.datetime) -> str:
    """'3 h 20 min left' or 'overdue by 1 d 2 h', as the server sees it now."""
    if due is None:
        return ""
    if isinstance(due, str):
        due = dt.datetime.fromisoformat(due.replace("Z", "+00:00"))
    seconds = int((due - now).total_seconds())
    left = seconds >= 0
    s = abs(seconds)
    days, rem = divmod(s, 86400)
    hours, rem = divmod(rem, 3600)
    minutes = rem // 60
    if days:
        text = f"{days} d {hours} h"
    elif hours:
        text = f"{hours} h {minutes} min"
    else:
        text = f"{minutes} min"
    return f"{text} left" if left else f"overdue by {text}"


def countdown(due: dt.datetime | str | None, now: dt.datetime) -> Markup:
    """A <time> element that reads correctly without JS; wiserpa.js keeps it ticking."""
    if due is None:
        return Markup("—")
    text = remaining_text(due, now)
    cls = "countdown overdue" if text.startswith("overdue") else "countdown"
    return Markup(
        f'<time class="{cls}" datetime="{escape(_iso(due))}" title="{escape(_when(due))}">'
        f"{escape(text)}</time>"
    )


TEMPLATES.env.filters["when"] = _when
TEMPLATES.env.filters["iso"] = _iso
TEMPLATES.env.filters["label"] = lambda s: str(s or "").replace("_", " ")


def runtime_of(request: Request) -> Runtime:
    """The application's runtime (for page code that has no RuntimeDep)."""
    rt: Runtime = request.app.state.runtime
    return rt


def render(request: Request, template: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    """Render a page with the shared context: principal, nav, csrf(form), countdown(due), now, notice."""
    rt = runtime_of(request)
    now = rt.clock.now()
    principal: Principal | None = ctx.pop("principal", None) or getattr(request.state, "principal", None)
    notice = request.cookies.get(NOTICE_COOKIE)
    context: dict[str, Any] = {
        "principal": principal,
        "nav": nav_for(principal),
        "now": now,
        "csrf": lambda form: csrf_field(request, form),
        "countdown": lambda due: countdown(due, now),
        "notice": unquote(notice)[:300] if notice else None,
        "profile": rt.profile,
        **ctx,
    }
    response = TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    if notice:
        response.delete_cookie(NOTICE_COOKIE, path="/")
    return response


def redirect(url: str, *, notice: str | None = None) -> RedirectResponse:
    """A 303 to `url` (POST → GET), optionally carrying a one-time notice shown on the next page."""
    response = RedirectResponse(url, status_code=303)
    if notice:
        response.set_cookie(NOTICE_COOKIE, quote(notice[:300]), max_age=60, httponly=True, samesite="strict")
    return response


def error_page(request: Request, status_code: int, title: str, message: str) -> HTMLResponse:
    """An HTML error page (the API keeps its JSON errors)."""
    return render(request, "error.html", status_code=status_code, title=title, message=message)


# ---------------------------------------------------------------------------------------------- routing


class PageRoute(APIRoute):
    """Route class for HTML pages: login redirects and API errors become pages instead of JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap the handler so a page never answers with a JSON error body."""
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired as exc:
                return redirect(f"/login?next={quote(exc.next_path, safe='/')}")
            except PageForbidden as exc:
                return error_page(request, 403, "Not available to your role", str(exc))
            except CsrfRejected:
                return error_page(
                    request,
                    403,
                    "Form expired",
                    "The form was not accepted (missing or stale security "
                    "token). Go back, reload the page and submit again.",
                )
            except ApiError as exc:
                titles = {404: "Not found", 403: "Not allowed", 409: "Conflict", 429: "Slow down"}
                return error_page(request, exc.status_code, titles.get(exc.status_code, "Error"), exc.message)
            except RequestValidationError as exc:
                # A bad query parameter or path segment (`?status=bogus`, `?offset=-1`): a page naming it, not the
                # API's JSON error body.
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in err.get('loc', ())[1:]) or 'address'}: {err.get('msg', 'invalid')}"
                    for err in exc.errors()
                )
                return error_page(request, 422, "Invalid address", problems or "The address is not valid.")

        return page_handler


def page_router(**kwargs: Any) -> APIRouter:
    """An APIRouter for HTML pages (hidden from the OpenAPI schema, HTML errors)."""
    return APIRouter(route_class=PageRoute, include_in_schema=False, **kwargs)


router = page_router()


@router.get("/", response_class=HTMLResponse)
def home(request: Request, principal: MaybePrincipal) -> HTMLResponse:
    """What this user can do here, by role."""
    return render(request, "home.html", principal=principal, links=nav_for(principal))


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, principal: MaybePrincipal, next: str | None = None) -> HTMLResponse:
    """The sign-in form: paste an API key."""
    return render(request, "login.html", principal=principal, next=safe_next(next), error=None)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    session: SessionDep,
    api_key: str = Form("", max_length=200),
    next: str = Form("/", max_length=500),
) -> Response:
    """Check the key and keep it in an HttpOnly, SameSite=Strict cookie."""
    if not same_origin(request):
        # Login CSRF: another site must not sign a visitor in under its own key (whatever the visitor then
        # typed into the forms — patients' MBIs included — would land in that site's organization).
        return error_page(request, 403, "Sign-in refused", "Sign in from this site's own sign-in form.")
    limiter: AuthFailureLimiter = request.app.state.auth_limiter
    client = request.client.host if request.client else "unknown"
    if limiter.blocked(client):
        return render(
            request,
            "login.html",
            status_code=429,
            next=safe_next(next),
            error="Too many failed attempts. Wait a minute and try again.",
        )
    key = api_key.strip()
    principal = authenticate(session, key, now=request.app.state.runtime.clock.now()) if key else None
    if principal is None:
        limiter.failed(client)
        return render(
            request,
            "login.html",
            status_code=401,
            next=safe_next(next),
            error="That API key was not recognized (or has been revoked).",
        )
    response = redirect(safe_next(next), notice=f"Signed in as {principal.name} ({principal.role.value}).")
    response.set_cookie(
        COOKIE,
        key,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
        max_age=12 * 3600,
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Forget the key cookie (CSRF-checked so another site cannot sign you out)."""
    await csrf_form("logout")(request)
    response = redirect("/", notice="Signed out.")
    response.delete_cookie(COOKIE, path="/")
    return response


def install(app: FastAPI) -> None:
    """Mount the static files and every web page router on the app."""
    from wiserpa.web import provider, reviewer

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(router)
    app.include_router(provider.router)
    app.include_router(reviewer.router)
