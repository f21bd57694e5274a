"""Authorization matrix: every route × role × ownership, with the status each must get.

The table is the specification. A route the application serves that is missing from EXPECTED fails
`test_every_route_is_in_the_matrix`, so each new endpoint must state who may call it. To add one:

1. add `(METHOD, path template): row(...)` to EXPECTED with the status for each of the seven callers;
2. if it needs more than a bare call, add a `Call` to CALLS (query string, body, a fresh request in a given
   state, a path parameter value in PATH_VALUES).

Callers: anonymous, a provider of the organization that submitted the request ("own") and of another one,
a reviewer of the request's state (TX) and of another state (OH), oversight, admin. Every caller sends its key
both as a Bearer header and as the web-session cookie, so API routes and HTML pages are judged alike.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Actor, build_runtime
from tests.factories import body
from wiserpa.app import create_app
from wiserpa.observability import JsonFormatter, iter_routes
from wiserpa.policy.clock import FixedClock
from wiserpa.policy.validation import make_valid_mbi
from wiserpa.runtime import Runtime

ROLES = (
    "anonymous",
    "provider_own",
    "provider_other",
    "reviewer_own",
    "reviewer_other",
    "oversight",
    "admin",
)
Expected = int | frozenset[int]


def row(
    anonymous: Expected,
    provider_own: Expected,
    provider_other: Expected,
    reviewer_own: Expected,
    reviewer_other: Expected,
    oversight: Expected,
    admin: Expected,
) -> dict[str, Expected]:
    """One route's expected status per caller, in ROLES order."""
    return dict(
        zip(
            ROLES,
            (anonymous, provider_own, provider_other, reviewer_own, reviewer_other, oversight, admin),
            strict=True,
        )
    )


def public(status: int = 200) -> dict[str, Expected]:
    """A route anyone may call, with or without a key."""
    return row(*(status,) * 7)


def either(*codes: int) -> frozenset[int]:
    """Several acceptable statuses (e.g. a page that renders or redirects)."""
    return frozenset(codes)


# The specification. 401 = no/invalid key, 403 = wrong role, 404 = outside your scope (not revealed).
EXPECTED: dict[tuple[str, str], dict[str, Expected]] = {
    # --- operations and documentation: public, no PHI (checked below)
    ("GET", "/healthz"): public(),
    ("GET", "/readyz"): public(),
    ("GET", "/metrics"): public(),
    ("GET", "/openapi.json"): public(),
    ("GET", "/docs"): public(),
    ("GET", "/docs/oauth2-redirect"): public(),
    ("GET", "/redoc"): public(),
    ("GET", "/static"): public(),
    # --- policy reference data: public (it is the published policy, no PHI)
    ("GET", "/api/v1/catalog"): public(),
    ("GET", "/api/v1/catalog/lookup"): public(),
    ("GET", "/api/v1/requirements"): public(),
    # --- requests
    ("POST", "/api/v1/requests"): row(401, 201, 201, 403, 403, 403, 403),
    ("GET", "/api/v1/requests"): row(401, 200, 200, 200, 200, 200, 200),
    ("GET", "/api/v1/requests/{request_id}"): row(401, 200, 404, 200, 404, 200, 200),
    ("POST", "/api/v1/requests/{request_id}/withdraw"): row(401, 200, 404, 403, 404, 403, 403),
    ("POST", "/api/v1/requests/{request_id}/resubmit"): row(401, 201, 404, 403, 404, 403, 403),
    # --- reviews
    ("GET", "/api/v1/reviews/worklist"): row(401, 403, 403, 200, 200, 200, 200),
    ("POST", "/api/v1/requests/{request_id}/decision"): row(401, 403, 403, 200, 404, 403, 403),
    # --- web pages (cookie session; anonymous callers are sent to /login, forms are CSRF-checked)
    ("GET", "/"): public(),
    ("GET", "/login"): public(),
    ("POST", "/login"): row(401, 303, 303, 303, 303, 303, 303),
    ("POST", "/logout"): public(403),  # no CSRF token: refused for everyone
}


@dataclass(frozen=True)
class Ctx:
    """What a call may need: the request under test and the callers."""

    request_id: int
    actors: dict[str, Actor | None]
    role: str


@dataclass(frozen=True)
class Call:
    """How to call a route: query, JSON or form body, and whether it needs a fresh request in some state."""

    query: dict[str, Any] = field(default_factory=dict)
    json: Callable[[Ctx], Any] | None = None
    form: Callable[[Ctx], dict[str, str]] | None = None
    fresh: str | None = None  # "pended" or "withdrawn": a new request of provider_own per call


def _login_form(ctx: Ctx) -> dict[str, str]:
    actor = ctx.actors[ctx.role]
    return {"api_key": actor.key if actor else "wpa_000000000000_not-a-key", "next": "/"}


LOOKUP = {"code": "64483", "state": "TX", "date_of_service": "2026-03-20"}
CALLS: dict[tuple[str, str], Call] = {
    ("GET", "/api/v1/catalog/lookup"): Call(query=LOOKUP),
    ("GET", "/api/v1/requirements"): Call(query=LOOKUP),
    ("POST", "/api/v1/requests"): Call(json=lambda ctx: body(seed=ROLES.index(ctx.role) + 50)),
    ("POST", "/api/v1/requests/{request_id}/withdraw"): Call(json=lambda _: {"reason": "x"}, fresh="pended"),
    ("POST", "/api/v1/requests/{request_id}/resubmit"): Call(
        json=lambda _: {"notes": "added records"}, fresh="withdrawn"
    ),
    ("POST", "/api/v1/requests/{request_id}/decision"): Call(
        json=lambda _: {"decision": "affirm"}, fresh="pended"
    ),
    ("POST", "/login"): Call(form=_login_form),
}
# Concrete values for path templates; {request_id} comes from the request under test.
PATH_VALUES: dict[str, str] = {"/static": "/static/wiserpa.css"}


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture
def rt(sqlite_url: str, clock: FixedClock) -> Iterator[Runtime]:
    """The matrix is about the application's rules, not the backend: SQLite only, to stay fast."""
    runtime = build_runtime(sqlite_url, clock)
    yield runtime
    runtime.engine.dispose()


@pytest.fixture
def actors(make_actor: Callable[..., Actor]) -> dict[str, Actor | None]:
    """One caller per role/ownership."""
    return {
        "anonymous": None,
        "provider_own": make_actor("provider"),
        "provider_other": make_actor("provider"),
        "reviewer_own": make_actor("reviewer", state="TX"),
        "reviewer_other": make_actor("reviewer", state="OH"),
        "oversight": make_actor("oversight"),
        "admin": make_actor("admin"),
    }


@pytest.fixture
def app_client(rt: Runtime) -> Iterator[TestClient]:
    """A client that does not follow redirects (a 303 to /login is an answer) and never raises."""
    rt.settings.auth_failure_limit = 10_000  # the matrix makes many anonymous calls on purpose
    with TestClient(create_app(rt), follow_redirects=False, raise_server_exceptions=False) as c:
        yield c


def _auth(actor: Actor | None) -> tuple[dict[str, str], dict[str, str]]:
    if actor is None:
        return {}, {}
    return actor.headers, {"wiserpa_key": actor.key}


def _new_request(client: TestClient, owner: Actor, state: str, seed: int) -> int:
    r = client.post("/api/v1/requests", json=body(case="unmet", seed=seed), headers=owner.headers)
    assert r.status_code == 201, r.text
    rid = int(r.json()["id"])
    assert r.json()["status"] == "pended", r.json()["status"]
    if state == "withdrawn":
        w = client.post(f"/api/v1/requests/{rid}/withdraw", json={}, headers=owner.headers)
        assert w.status_code == 200, w.text
    return rid


def _call(client: TestClient, method: str, path: str, ctx: Ctx) -> int:
    spec = CALLS.get((method, path), Call())
    url = PATH_VALUES.get(path, path).replace("{request_id}", str(ctx.request_id))
    unresolved = re.findall(r"{(\w+)}", url)
    assert not unresolved, f"{method} {path}: add a value for {unresolved} to PATH_VALUES or CALLS"
    headers, cookies = _auth(ctx.actors[ctx.role])
    client.cookies.clear()
    for k, v in cookies.items():
        client.cookies.set(k, v)
    kwargs: dict[str, Any] = {"params": spec.query, "headers": headers}
    if spec.json is not None:
        kwargs["json"] = spec.json(ctx)
    if spec.form is not None:
        kwargs["data"] = spec.form(ctx)
    return client.request(method, url, **kwargs).status_code


def _app_routes(client: TestClient) -> set[tuple[str, str]]:
    return {(r.method, r.path) for r in iter_routes(client.app)}  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ tests


def test_every_route_is_in_the_matrix(app_client: TestClient) -> None:
    """A new endpoint must state who may call it: add it to EXPECTED in this file."""
    missing = sorted(_app_routes(app_client) - EXPECTED.keys())
    assert not missing, "routes missing from the authorization matrix (add them to EXPECTED):\n" + "\n".join(
        f"  {m} {p}" for m, p in missing
    )


def test_matrix_has_no_stale_rows(app_client: TestClient) -> None:
    """Rows for routes that no longer exist are removed, so the table stays the truth."""
    stale = sorted(EXPECTED.keys() - _app_routes(app_client))
    assert not stale, f"rows for routes the app does not serve: {stale}"


def test_authorization_matrix(app_client: TestClient, actors: dict[str, Actor | None]) -> None:
    """Every route × caller answers with the status the table gives (all mismatches reported at once)."""
    owner = actors["provider_own"]
    assert owner is not None
    shared = _new_request(app_client, owner, "pended", seed=1)
    served = _app_routes(app_client)
    mismatches: list[str] = []
    calls = 0
    for (method, path), expected_row in sorted(EXPECTED.items()):
        if (method, path) not in served:
            continue
        spec = CALLS.get((method, path), Call())
        for n, role in enumerate(ROLES):
            rid = _new_request(app_client, owner, spec.fresh, seed=200 + n) if spec.fresh else shared
            got = _call(app_client, method, path, Ctx(rid, actors, role))
            calls += 1
            want = expected_row[role]
            ok = got in want if isinstance(want, frozenset) else got == want
            if not ok:
                mismatches.append(f"{method} {path} as {role}: got {got}, expected {want}")
    print(f"authorization matrix: {calls} calls over {len(EXPECTED)} routes × {len(ROLES)} callers")
    assert not mismatches, "\n".join(mismatches)


# ------------------------------------------------------------------------------------------------ PHI


def _public_paths(client: TestClient) -> list[str]:
    paths = ["/healthz", "/readyz", "/metrics", "/openapi.json"]
    paths += [
        r.path
        for r in iter_routes(client.app)  # type: ignore[arg-type]
        if r.method == "GET"
        and r.path.startswith("/public")
        and "{" not in r.path
    ]
    return paths


def test_public_endpoints_show_no_phi(app_client: TestClient, actors: dict[str, Actor | None]) -> None:
    """Anonymous endpoints never carry a beneficiary's identifiers or a person's name."""
    owner = actors["provider_own"]
    assert owner is not None
    mbi = make_valid_mbi(777_001)
    submission = body(case="unmet", seed=9)
    submission["beneficiary"] = {**submission["beneficiary"], "mbi": mbi}
    r = app_client.post("/api/v1/requests", json=submission, headers=owner.headers)
    assert r.status_code == 201, r.text
    names = [str(v) for k, v in submission["beneficiary"].items() if "name" in k and v]
    secrets_ = [mbi, owner.key, *names]
    client_cookies_cleared = app_client
    client_cookies_cleared.cookies.clear()
    for path in _public_paths(app_client):
        resp = app_client.get(path)
        assert resp.status_code == 200, (path, resp.status_code)
        text = resp.text
        for value in secrets_:
            assert value not in text, f"{path} shows {value!r}"
        if path != "/openapi.json":  # the schema documents field names; the others must not carry them
            lowered = text.lower()
            for word in ("mbi", "beneficiary", "first_name", "last_name", "date_of_birth"):
                assert word not in lowered, f"{path} mentions {word!r}"


# ------------------------------------------------------------------------------------------------ keys


def test_keys_are_hashed_at_rest(rt: Runtime, actors: dict[str, Actor | None]) -> None:
    """No table holds a raw key or its secret part; the stored digest is SHA-256 of the secret."""
    from sqlalchemy import text

    actor = actors["admin"]
    assert actor is not None
    secret = actor.key.split("_", 2)[2]
    with rt.engine.connect() as conn:
        tables = [r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))]
        for table in tables:
            for values in conn.execute(text(f'SELECT * FROM "{table}"')):
                blob = " ".join(str(v) for v in values)
                assert actor.key not in blob and secret not in blob, f"raw key found in {table}"
        digests = {r[0] for r in conn.execute(text("SELECT secret_sha256 FROM api_keys"))}
    assert hashlib.sha256(secret.encode()).hexdigest() in digests


def test_key_comparison_is_constant_time(
    rt: Runtime, actors: dict[str, Actor | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """authenticate() compares digests with hmac.compare_digest, for known and unknown prefixes alike."""
    from wiserpa.auth import service as auth

    assert (
        "=="
        not in re.sub(r"#.*", "", inspect.getsource(auth.authenticate))
        .replace("len(parts) != 3", "")
        .split("compare_digest")[0]
        .split("row is None")[-1]
    )
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    actor = actors["admin"]
    assert actor is not None
    prefix = actor.key.split("_")[1]
    with rt.sessions() as session:
        assert auth.authenticate(session, actor.key) is not None
        assert auth.authenticate(session, f"wpa_{prefix}_wrong-secret-wrong-secret") is None
        assert auth.authenticate(session, "wpa_ffffffffffff_unknown-prefix-secret") is None
    assert len(calls) == 3, "every key check, even for an unknown prefix, goes through compare_digest"


def test_revoked_key_is_refused(app_client: TestClient, rt: Runtime, actors: dict[str, Actor | None]) -> None:
    """Revoking a key (wiserpa keys revoke PREFIX) takes effect on the next request."""
    from wiserpa.auth.service import revoke_key

    actor = actors["oversight"]
    assert actor is not None
    assert app_client.get("/api/v1/requests", headers=actor.headers).status_code == 200
    with rt.sessions() as session:
        assert revoke_key(session, prefix=actor.key.split("_")[1], now=rt.clock.now())
        session.commit()
    assert app_client.get("/api/v1/requests", headers=actor.headers).status_code == 401


def test_authentication_failures_are_rate_limited(rt: Runtime, actors: dict[str, Actor | None]) -> None:
    """After `auth_failure_limit` bad keys from one client, even a good key gets 429 for a while."""
    rt.settings.auth_failure_limit = 5
    actor = actors["oversight"]
    assert actor is not None
    with TestClient(create_app(rt)) as c:
        codes = [
            c.get(
                "/api/v1/requests", headers={"Authorization": f"Bearer wpa_abcdefabcdef_guess{i:04d}"}
            ).status_code
            for i in range(5)
        ]
        assert codes == [401] * 5
        assert c.get("/api/v1/requests", headers={"Authorization": "Bearer wpa_x_y"}).status_code == 429
        assert c.get("/api/v1/requests", headers=actor.headers).status_code == 429


# ------------------------------------------------------------------------------------------------ logs


def test_logs_never_carry_keys_mbis_or_authorization(
    app_client: TestClient, actors: dict[str, Actor | None], caplog: pytest.LogCaptureFixture
) -> None:
    """A full request cycle logged at DEBUG: no API key, Authorization value, cookie or MBI in any line."""
    provider, reviewer = actors["provider_own"], actors["reviewer_own"]
    assert provider is not None and reviewer is not None
    mbi = make_valid_mbi(777_002)
    submission = body(case="unmet", seed=11)
    submission["beneficiary"] = {**submission["beneficiary"], "mbi": mbi}
    caplog.set_level(logging.DEBUG)
    app_client.cookies.clear()
    r = app_client.post(
        "/api/v1/requests", json=submission, headers={**provider.headers, "Idempotency-Key": "k1"}
    )
    assert r.status_code == 201
    rid = r.json()["id"]
    app_client.get(f"/api/v1/requests?mbi={mbi}", headers=provider.headers)
    app_client.get(f"/api/v1/requests/{rid}", headers=provider.headers, cookies={"wiserpa_key": provider.key})
    app_client.post(f"/api/v1/requests/{rid}/decision", json={"decision": "affirm"}, headers=reviewer.headers)
    app_client.get("/api/v1/requests", headers={"Authorization": f"Bearer {provider.key}x"})  # a failure
    app_client.post("/api/v1/requests", content=b"{not json", headers=provider.headers)  # a 4xx
    assert caplog.records, "expected the access log to record the cycle"
    # The test client's own httpx logger prints the URL it calls; it is not part of the server.
    records = [rec for rec in caplog.records if not rec.name.startswith(("httpx", "httpcore"))]
    formatter = JsonFormatter()
    lines = [formatter.format(rec) for rec in records]
    raw = [repr(rec.__dict__) for rec in records]
    forbidden = [provider.key, reviewer.key, provider.key.split("_", 2)[2], mbi, f"Bearer {provider.key}"]
    for text in lines + raw:
        for value in forbidden:
            assert value not in text, f"log line carries a secret: {text[:200]}"
    assert any('"route": "/api/v1/requests/{request_id}"' in line for line in lines)
