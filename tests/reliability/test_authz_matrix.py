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
    # --- claims, pre-payment reviews, appeals (docs/claims.md): objects of provider_own's organization, in TX
    ("POST", "/api/v1/claims"): row(401, 201, 201, 403, 403, 403, 403),
    ("GET", "/api/v1/claims/stats"): row(401, 403, 403, 200, 200, 200, 200),
    ("GET", "/api/v1/claims/reviews"): row(401, 403, 403, 200, 200, 200, 200),
    ("GET", "/api/v1/claims/reviews/{review_id}"): row(401, 200, 404, 200, 404, 200, 200),
    ("POST", "/api/v1/claims/reviews/{review_id}/documents"): row(401, 200, 404, 403, 403, 403, 403),
    ("POST", "/api/v1/claims/reviews/{review_id}/decision"): row(401, 403, 403, 200, 404, 403, 403),
    ("GET", "/api/v1/claims/{claim_id}"): row(401, 200, 404, 200, 404, 200, 200),
    ("POST", "/api/v1/claims/{claim_id}/lines/{seq}/appeal"): row(401, 200, 404, 403, 403, 403, 403),
    ("POST", "/api/v1/claims/{claim_id}/lines/{seq}/appeal/outcome"): row(401, 403, 403, 403, 403, 200, 200),
    ("POST", "/fhir/Claim"): row(401, 422, 422, 422, 422, 422, 422),  # empty body: refused once authenticated
    # --- deadlines and penalties (docs/safeguards.md)
    ("GET", "/api/v1/deadlines/misses"): row(401, 403, 403, 200, 200, 200, 200),
    ("GET", "/api/v1/penalties"): row(401, 403, 403, 200, 200, 200, 200),
    # --- exemptions (docs/safeguards.md): a fresh exempt request per call
    ("POST", "/api/v1/requests/{request_id}/exemption-audit"): row(401, 403, 403, 201, 404, 201, 403),
    ("GET", "/api/v1/exemptions/report"): row(401, 200, 200, 200, 200, 200, 200),
    # --- gold cards (docs/safeguards.md); no card exists here, so allowed callers get 404 (and an appeal by
    # anyone but the card's provider is a 404 too: goldcard.service.appeal does not reveal a card)
    ("GET", "/api/v1/gold-cards"): row(401, 200, 200, 200, 200, 200, 200),
    ("POST", "/api/v1/gold-cards/{card_id}/sample-review"): row(401, 403, 403, 404, 404, 404, 403),
    ("POST", "/api/v1/gold-cards/{card_id}/appeal"): row(401, 404, 404, 404, 404, 404, 404),
    # decided by oversight (and admin), never by the participant or the provider: refused before any lookup
    ("POST", "/api/v1/gold-cards/{card_id}/appeal/decision"): row(401, 403, 403, 403, 403, 404, 404),
    # --- review workflow (docs/api.md)
    ("GET", "/api/v1/requests/{request_id}/workflow"): row(401, 200, 404, 200, 404, 200, 200),
    ("POST", "/api/v1/requests/{request_id}/information-requests"): row(401, 403, 403, 201, 404, 403, 403),
    ("POST", "/api/v1/requests/{request_id}/information-requests/{information_request_id}/response"): row(
        401, 200, 404, 403, 403, 403, 403
    ),
    ("POST", "/api/v1/requests/{request_id}/peer-to-peer"): row(401, 201, 404, 201, 404, 403, 403),
    ("POST", "/api/v1/requests/{request_id}/peer-to-peer/{p2p_id}/schedule"): row(
        401, 200, 404, 200, 404, 403, 403
    ),
    ("POST", "/api/v1/requests/{request_id}/peer-to-peer/{p2p_id}/outcome"): row(
        401, 403, 403, 200, 404, 403, 403
    ),
    # --- support tickets (docs/support-and-experience.md)
    ("POST", "/api/v1/support/tickets"): row(401, 201, 201, 403, 403, 403, 403),
    ("GET", "/api/v1/support/tickets"): row(401, 200, 200, 200, 200, 200, 200),
    ("GET", "/api/v1/support/tickets/{ticket_id}"): row(401, 200, 404, 200, 404, 200, 200),
    ("POST", "/api/v1/support/tickets/{ticket_id}/messages"): row(401, 200, 404, 200, 404, 403, 403),
    ("POST", "/api/v1/support/tickets/{ticket_id}/resolve"): row(401, 200, 404, 200, 404, 403, 403),
    ("POST", "/api/v1/support/tickets/{ticket_id}/reopen"): row(401, 200, 404, 403, 403, 403, 403),
    ("GET", "/api/v1/support/compliance"): row(401, 403, 403, 200, 200, 200, 200),
    # --- experience reports (docs/support-and-experience.md): participants' staff never read them
    ("GET", "/api/v1/experience/taxonomy"): public(),
    ("POST", "/api/v1/experience/reports"): row(401, 201, 201, 403, 403, 403, 403),
    ("POST", "/api/v1/experience/public-reports"): public(404),  # public intake is off unless configured
    ("GET", "/api/v1/experience/reports"): row(401, 200, 200, 403, 403, 200, 200),
    ("GET", "/api/v1/experience/reports/{report_id}"): row(401, 200, 404, 403, 403, 200, 200),
    ("GET", "/api/v1/experience/patterns"): row(401, 403, 403, 403, 403, 200, 200),
    ("GET", "/api/v1/experience/export.csv"): row(401, 403, 403, 403, 403, 200, 200),
    ("GET", "/api/v1/experience/brief.md"): row(401, 403, 403, 403, 403, 200, 200),
    # --- public reporting (docs/reporting.md): aggregate, suppressed, no PHI
    ("GET", "/api/v1/public/cms0057"): public(),
    ("GET", "/api/v1/public/compensation"): public(),
    ("GET", "/api/v1/public/metrics"): public(),
    ("GET", "/api/v1/public/schema"): public(),
    ("GET", "/public"): public(),
    ("GET", "/public/"): public(),
    ("GET", "/public/cms0057"): public(),
    ("GET", "/public/compensation"): public(),
    ("GET", "/public/data/metrics.csv"): public(),
    ("GET", "/public/data/metrics.json"): public(),
    ("GET", "/public/methodology"): public(),
    ("GET", "/public/participants/{state}"): public(),
    # --- oversight pages
    ("GET", "/oversight/reports"): row(303, 403, 403, 403, 403, 200, 200),
    ("GET", "/oversight/simulations"): row(303, 403, 403, 403, 403, 200, 200),
    ("GET", "/oversight/simulations/{run_id}"): row(303, 403, 403, 403, 403, 404, 404),  # no stored run
    # --- FHIR (docs/fhir-conformance.md); bodies are empty, so authorized callers get 400
    ("GET", "/fhir/metadata"): public(),
    ("GET", "/cds-services"): public(),
    ("POST", "/cds-services/{service_id}"): row(401, 400, 400, 400, 400, 400, 400),
    ("POST", "/fhir/Claim/$submit"): row(401, 400, 400, 403, 403, 403, 403),
    ("POST", "/fhir/Claim/$inquire"): row(401, 400, 400, 400, 400, 400, 400),
    ("POST", "/fhir/Questionnaire/$questionnaire-package"): row(401, 400, 400, 400, 400, 400, 400),
    ("GET", "/fhir/Questionnaire/{qid}"): row(401, 200, 200, 200, 200, 200, 200),
    ("POST", "/fhir/Subscription"): row(401, 400, 400, 403, 403, 403, 403),
    ("GET", "/fhir/Subscription"): row(401, 200, 200, 403, 403, 403, 403),
    ("GET", "/fhir/Subscription/{sub_id}"): row(401, 200, 404, 403, 403, 403, 403),
    ("GET", "/fhir/Subscription/{sub_id}/$status"): row(401, 200, 404, 403, 403, 403, 403),
    ("DELETE", "/fhir/Subscription/{sub_id}"): row(401, 204, 404, 403, 403, 403, 403),
    # --- web pages (docs/web.md): anonymous → 303 to /login, wrong role → 403 page, out of scope → 404;
    # forms are posted without a CSRF token, so every signed-in caller is refused
    ("GET", "/requests"): row(303, 200, 200, 200, 200, 200, 200),
    ("GET", "/requests/new"): row(303, 200, 200, 403, 403, 403, 403),
    ("POST", "/requests/new"): row(303, 403, 403, 403, 403, 403, 403),
    ("GET", "/requests/{request_id}"): row(303, 200, 404, 200, 404, 200, 200),
    ("POST", "/requests/{request_id}/resubmit"): row(303, 403, 403, 403, 403, 403, 403),
    ("POST", "/requests/{request_id}/withdraw"): row(303, 403, 403, 403, 403, 403, 403),
    ("POST", "/requests/{request_id}/information/{info_id}"): row(303, 403, 403, 403, 403, 403, 403),
    ("POST", "/requests/{request_id}/peer-to-peer"): row(303, 403, 403, 403, 403, 403, 403),
    ("GET", "/review"): row(303, 403, 403, 200, 200, 403, 403),
    ("GET", "/review/{request_id}"): row(303, 403, 403, 200, 404, 403, 403),
    ("POST", "/review/{request_id}/decision"): row(303, 403, 403, 403, 403, 403, 403),
    ("POST", "/review/{request_id}/information"): row(303, 403, 403, 403, 403, 403, 403),
    ("POST", "/review/{request_id}/peer-to-peer"): row(303, 403, 403, 403, 403, 403, 403),
    ("GET", "/support"): row(303, 200, 200, 200, 200, 200, 200),
    ("GET", "/support/new"): row(303, 200, 200, 403, 403, 403, 403),
    ("POST", "/support/new"): row(303, 403, 403, 403, 403, 403, 403),
    ("GET", "/support/{ticket_id}"): row(303, 200, 404, 200, 404, 200, 200),
    ("POST", "/support/{ticket_id}/message"): row(303, 403, 403, 403, 403, 403, 403),
    ("POST", "/support/{ticket_id}/resolve"): row(303, 403, 403, 403, 403, 403, 403),
    ("POST", "/support/{ticket_id}/reopen"): row(303, 403, 403, 403, 403, 403, 403),
    ("GET", "/experience/new"): row(303, 200, 200, 403, 403, 403, 403),
    ("POST", "/experience/new"): row(303, 403, 403, 403, 403, 403, 403),
    ("GET", "/experience/patterns"): row(303, 403, 403, 403, 403, 200, 200),
}


@dataclass(frozen=True)
class Env:
    """What a maker of test objects needs: the client, the callers and the clock."""

    client: TestClient
    actors: dict[str, Actor | None]
    clock: FixedClock
    counter: list[int] = field(default_factory=lambda: [0])

    def actor(self, role: str) -> Actor:
        """A caller that is not anonymous."""
        actor = self.actors[role]
        assert actor is not None
        return actor

    def seed(self) -> int:
        """A new seed, so each made object has its own beneficiary."""
        self.counter[0] += 1
        return 300 + self.counter[0]


@dataclass(frozen=True)
class Ctx:
    """What a call may need: the request under test and the callers."""

    request_id: int
    actors: dict[str, Actor | None]
    role: str
    ids: dict[str, str] = field(default_factory=dict)  # path values and data made by Call.make


@dataclass(frozen=True)
class Call:
    """How to call a route: query, JSON or form body, and whether it needs a fresh request in some state."""

    query: dict[str, Any] = field(default_factory=dict)
    json: Callable[[Ctx], Any] | None = None
    form: Callable[[Ctx], dict[str, str]] | None = None
    fresh: str | None = None  # "pended" or "withdrawn": a new request of provider_own per call
    make: Callable[[Env], dict[str, str]] | None = None  # objects the call needs (claim, ticket, ...)
    per_call: bool = False  # make them anew for every caller (the call changes them), else once per test
    billing: bool = False  # call after the date of service (claims bill services already rendered)


def _login_form(ctx: Ctx) -> dict[str, str]:
    actor = ctx.actors[ctx.role]
    return {"api_key": actor.key if actor else "wpa_000000000000_not-a-key", "next": "/"}


def _ok(resp: Any, status: int = 201) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    out: dict[str, Any] = resp.json()
    return out


def _pended(env: Env) -> dict[str, Any]:
    """A pended request of provider_own (TX) with at least one unmet criterion."""
    return _ok(env.client.post("/api/v1/requests", json=body(case="unmet", seed=env.seed()),
                               headers=env.actor("provider_own").headers))  # fmt: skip


def _unmet(view: dict[str, Any]) -> str:
    return str(next(r["criterion_id"] for r in view["criteria_results"] if r["result"] == "unmet"))


def _claim_body(seed: int) -> dict[str, Any]:
    """A claim for the service and beneficiary of body(case="unmet", seed=seed)."""
    from tests.claims.helpers import claim, line

    request = body(case="unmet", seed=seed)
    return claim([line(request["lines"][0]["code"], pos=request["place_of_service"])], seed=seed)


def _post_claim(env: Env, seed: int) -> dict[str, Any]:
    """A claim of provider_own for body(seed=...)'s beneficiary, billed after the date of service."""
    from tests.claims.helpers import AFTER_DOS

    before = env.clock.now()
    env.clock.set(AFTER_DOS)
    try:
        return _ok(env.client.post("/api/v1/claims", json=_claim_body(seed),
                                   headers=env.actor("provider_own").headers))  # fmt: skip
    finally:
        env.clock.set(before)


def make_claim(env: Env) -> dict[str, str]:
    """A claim whose line was denied: its request was non-affirmed by reviewer_own."""
    view = _pended(env)
    seed = env.seed() - 1
    _ok(env.client.post(f"/api/v1/requests/{view['id']}/decision",
                        json={"decision": "non_affirm", "reasons": [_unmet(view)]},
                        headers=env.actor("reviewer_own").headers), 200)  # fmt: skip
    made = _post_claim(env, seed)
    assert made["lines"][0]["outcome"] == "denied", made["lines"][0]
    return {"claim_id": str(made["id"]), "seq": "0"}


def make_appealed_claim(env: Env) -> dict[str, str]:
    """A denied claim line under appeal."""
    from tests.claims.helpers import AFTER_DOS

    ids = make_claim(env)
    before = env.clock.now()
    env.clock.set(AFTER_DOS)
    _ok(env.client.post(f"/api/v1/claims/{ids['claim_id']}/lines/0/appeal", json={"reason": "criteria met"},
                        headers=env.actor("provider_own").headers), 200)  # fmt: skip
    env.clock.set(before)
    return ids


def make_review(env: Env) -> dict[str, str]:
    """A pre-payment review: a claim line billed without an authorization."""
    made = _post_claim(env, env.seed())
    return {"review_id": str(made["lines"][0]["prepayment_review"]["id"])}


def make_documented_review(env: Env) -> dict[str, str]:
    """A pre-payment review whose documentation leaves a criterion unmet: a reviewer decides it."""
    ids = make_review(env)
    facts = body(case="unmet")["clinical_facts"]
    _ok(env.client.post(f"/api/v1/claims/reviews/{ids['review_id']}/documents", json={"clinical_facts": facts},
                        headers=env.actor("provider_own").headers), 200)  # fmt: skip
    return ids


def make_exempt(env: Env) -> dict[str, str]:
    """An exempt request of provider_own, ready for an exemption audit."""
    view = _ok(env.client.post("/api/v1/requests", json=body(case="exempt", seed=env.seed()),
                               headers=env.actor("provider_own").headers))  # fmt: skip
    return {"request_id": str(view["id"])}


def make_information_request(env: Env) -> dict[str, str]:
    """A request for information by reviewer_own on a pended request."""
    view = _pended(env)
    info = _ok(env.client.post(f"/api/v1/requests/{view['id']}/information-requests",
                               json={"criterion_ids": [_unmet(view)]},
                               headers=env.actor("reviewer_own").headers))  # fmt: skip
    return {
        "request_id": str(view["id"]),
        "information_request_id": str(info["id"]),
        "info_id": str(info["id"]),
    }


def make_pended_with_criterion(env: Env) -> dict[str, str]:
    """A pended request and one of its unmet criteria."""
    view = _pended(env)
    return {"request_id": str(view["id"]), "criterion": _unmet(view)}


def make_p2p(env: Env) -> dict[str, str]:
    """A peer-to-peer asked for by provider_own."""
    view = _pended(env)
    p2p = _ok(env.client.post(f"/api/v1/requests/{view['id']}/peer-to-peer", json={"note": "any afternoon"},
                              headers=env.actor("provider_own").headers))  # fmt: skip
    return {"request_id": str(view["id"]), "p2p_id": str(p2p["id"])}


TICKET = {"category": "portal_access", "subject": "Cannot sign in", "description": "Locked out since 9am."}


def make_ticket(env: Env) -> dict[str, str]:
    """A support ticket of provider_own (TX)."""
    t = _ok(
        env.client.post("/api/v1/support/tickets", json=TICKET, headers=env.actor("provider_own").headers)
    )
    return {"ticket_id": str(t["id"])}


def make_resolved_ticket(env: Env) -> dict[str, str]:
    """A resolved support ticket of provider_own."""
    ids = make_ticket(env)
    _ok(env.client.post(f"/api/v1/support/tickets/{ids['ticket_id']}/resolve", json={},
                        headers=env.actor("provider_own").headers), 200)  # fmt: skip
    return ids


REPORT = {
    "state": "TX",
    "service_code": "62323",
    "requested_on": "2026-02-02",
    "decided_on": "2026-02-21",
    "obstacles": ["portal_outage"],
    "impact": "delayed_care",
    "narrative": "The epidural was delayed 19 days; the portal rejected the upload three times.",
}


def make_report(env: Env) -> dict[str, str]:
    """An experience report of provider_own."""
    r = _ok(
        env.client.post("/api/v1/experience/reports", json=REPORT, headers=env.actor("provider_own").headers)
    )
    return {"report_id": str(r["id"])}


def make_subscription(env: Env) -> dict[str, str]:
    """A FHIR Subscription of provider_own."""
    from tests.fhir.test_subscriptions_api import good

    sub = _ok(env.client.post("/fhir/Subscription", json=good(), headers=env.actor("provider_own").headers))
    return {"sub_id": str(sub["id"])}


def make_questionnaire(env: Env) -> dict[str, str]:
    """The id of a published DTR Questionnaire."""
    from wiserpa.fhir.dtr import questionnaire_id

    rt: Runtime = env.client.app.state.runtime  # type: ignore[attr-defined]
    return {"qid": questionnaire_id(next(iter(rt.criteria.policies.values())).policy_id)}


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
    ("POST", "/api/v1/claims"): Call(json=lambda ctx: _claim_body(ROLES.index(ctx.role) + 60), billing=True),
    ("GET", "/api/v1/claims/reviews/{review_id}"): Call(make=make_review),
    ("POST", "/api/v1/claims/reviews/{review_id}/documents"): Call(
        json=lambda _: {"clinical_facts": body()["clinical_facts"]}, make=make_review, per_call=True
    ),
    ("POST", "/api/v1/claims/reviews/{review_id}/decision"): Call(
        json=lambda _: {"decision": "affirm"}, make=make_documented_review, per_call=True
    ),
    ("GET", "/api/v1/claims/{claim_id}"): Call(make=make_claim),
    ("POST", "/api/v1/claims/{claim_id}/lines/{seq}/appeal"): Call(
        json=lambda _: {"reason": "criteria met"}, make=make_claim, per_call=True
    ),
    ("POST", "/api/v1/claims/{claim_id}/lines/{seq}/appeal/outcome"): Call(
        json=lambda _: {"outcome": "overturned", "decided_on": "2026-03-21"},
        make=make_appealed_claim,
        billing=True,
        per_call=True,
    ),
    ("POST", "/api/v1/requests/{request_id}/exemption-audit"): Call(
        json=lambda _: {"appropriate": True}, make=make_exempt, per_call=True
    ),
    ("POST", "/api/v1/gold-cards/{card_id}/sample-review"): Call(
        json=lambda ctx: {"reviewed": [{"request_id": ctx.request_id, "appropriate": True}] * 5}
    ),
    ("POST", "/api/v1/gold-cards/{card_id}/appeal"): Call(json=lambda _: {"reason": "the case met the LCD"}),
    ("POST", "/api/v1/gold-cards/{card_id}/appeal/decision"): Call(
        json=lambda _: {"outcome": "upheld", "note": "the sample review stands"}
    ),
    ("POST", "/api/v1/requests/{request_id}/information-requests"): Call(
        json=lambda ctx: {"criterion_ids": [ctx.ids["criterion"]]},
        make=make_pended_with_criterion,
        per_call=True,
    ),
    ("POST", "/api/v1/requests/{request_id}/information-requests/{information_request_id}/response"): Call(
        json=lambda _: {"note": "imaging attached"}, make=make_information_request, per_call=True
    ),
    ("POST", "/api/v1/requests/{request_id}/peer-to-peer"): Call(
        json=lambda _: {"note": "mornings"}, fresh="pended"
    ),
    ("POST", "/api/v1/requests/{request_id}/peer-to-peer/{p2p_id}/schedule"): Call(
        json=lambda _: {"scheduled_for": "2026-03-05T20:00:00Z"}, make=make_p2p, per_call=True
    ),
    ("POST", "/api/v1/requests/{request_id}/peer-to-peer/{p2p_id}/outcome"): Call(
        json=lambda _: {"outcome": "no_show"}, make=make_p2p, per_call=True
    ),
    ("POST", "/api/v1/support/tickets"): Call(json=lambda _: TICKET),
    ("GET", "/api/v1/support/tickets/{ticket_id}"): Call(make=make_ticket),
    ("POST", "/api/v1/support/tickets/{ticket_id}/messages"): Call(
        json=lambda _: {"body": "any news?"}, make=make_ticket
    ),
    ("POST", "/api/v1/support/tickets/{ticket_id}/resolve"): Call(
        json=lambda _: {}, make=make_ticket, per_call=True
    ),
    ("POST", "/api/v1/support/tickets/{ticket_id}/reopen"): Call(
        json=lambda _: {"reason": "still locked out"}, make=make_resolved_ticket, per_call=True
    ),
    ("POST", "/api/v1/experience/reports"): Call(json=lambda _: REPORT),
    ("POST", "/api/v1/experience/public-reports"): Call(json=lambda _: REPORT),
    ("GET", "/api/v1/experience/reports/{report_id}"): Call(make=make_report),
    ("GET", "/fhir/Questionnaire/{qid}"): Call(make=make_questionnaire),
    ("GET", "/fhir/Subscription/{sub_id}"): Call(make=make_subscription),
    ("GET", "/fhir/Subscription/{sub_id}/$status"): Call(make=make_subscription),
    ("DELETE", "/fhir/Subscription/{sub_id}"): Call(make=make_subscription, per_call=True),
    ("GET", "/support/{ticket_id}"): Call(make=make_ticket),
    ("POST", "/support/{ticket_id}/message"): Call(form=lambda _: {"body": "any news?"}, make=make_ticket),
    ("POST", "/support/{ticket_id}/resolve"): Call(form=lambda _: {}, make=make_ticket),
    ("POST", "/support/{ticket_id}/reopen"): Call(form=lambda _: {"reason": "x"}, make=make_resolved_ticket),
    ("POST", "/requests/{request_id}/information/{info_id}"): Call(
        form=lambda _: {"note": "attached"}, make=make_information_request
    ),
}
# Concrete values for path templates; {request_id} comes from the request under test, other {names} from the
# ids a Call's `make` returns.
PATH_VALUES: dict[str, str] = {
    "/static": "/static/wiserpa.css",
    "/public/participants/{state}": "/public/participants/TX",
    "/api/v1/gold-cards/{card_id}/sample-review": "/api/v1/gold-cards/999999/sample-review",
    "/api/v1/gold-cards/{card_id}/appeal": "/api/v1/gold-cards/999999/appeal",
    "/api/v1/gold-cards/{card_id}/appeal/decision": "/api/v1/gold-cards/999999/appeal/decision",
    "/oversight/simulations/{run_id}": "/oversight/simulations/999999",
    "/cds-services/{service_id}": "/cds-services/order-sign",
}


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
    rt.settings.webhook_allow_private = True  # Subscriptions to a local receiver, without DNS lookups
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
    url = PATH_VALUES.get(path, path)
    for name, value in {"request_id": str(ctx.request_id), **ctx.ids}.items():
        url = url.replace("{" + name + "}", value)
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


def test_authorization_matrix(
    app_client: TestClient, actors: dict[str, Actor | None], clock: FixedClock
) -> None:
    """Every route × caller answers with the status the table gives (all mismatches reported at once)."""
    owner = actors["provider_own"]
    assert owner is not None
    shared = _new_request(app_client, owner, "pended", seed=1)
    served = _app_routes(app_client)
    env = Env(app_client, actors, clock)
    made: dict[Any, dict[str, str]] = {}
    mismatches: list[str] = []
    calls = 0
    for (method, path), expected_row in sorted(EXPECTED.items()):
        if (method, path) not in served:
            continue
        spec = CALLS.get((method, path), Call())
        for n, role in enumerate(ROLES):
            rid = _new_request(app_client, owner, spec.fresh, seed=200 + n) if spec.fresh else shared
            ids: dict[str, str] = {}
            if spec.make is not None:
                if spec.per_call or spec.make not in made:
                    made[spec.make] = spec.make(env)
                ids = made[spec.make]
            if "request_id" in ids:
                rid = int(ids["request_id"])
            before = clock.now()
            if spec.billing:
                from tests.claims.helpers import AFTER_DOS

                clock.set(AFTER_DOS)
            got = _call(app_client, method, path, Ctx(rid, actors, role, ids))
            clock.set(before)
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
        if r.method == "GET" and r.path.startswith(("/public", "/api/v1/public"))
    ]
    return [PATH_VALUES.get(p, p) for p in paths]


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
        assert auth.authenticate(session, actor.key, now=rt.clock.now()) is not None
        assert (
            auth.authenticate(session, f"wpa_{prefix}_wrong-secret-wrong-secret", now=rt.clock.now()) is None
        )
        assert (
            auth.authenticate(session, "wpa_ffffffffffff_unknown-prefix-secret", now=rt.clock.now()) is None
        )
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
