"""`submit_claims`: a batch matched against authorizations read once; each claim succeeds or fails alone."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import inspect

from tests.claims.helpers import AFTER_DOS, authorize, claim, line, mbi
from tests.factories import DOS
from wiserpa.claims import service as claims
from wiserpa.claims.models import Claim, PrepaymentReview
from wiserpa.claims.schemas import SubmitClaimIn
from wiserpa.errors import Invalid
from wiserpa.policy.clock import FixedClock
from wiserpa.policy.validation import make_valid_npi
from wiserpa.runtime import Runtime


def _items(actor: Any, bodies: list[dict[str, Any]]) -> list[claims.ClaimSubmission]:
    return [claims.ClaimSubmission(actor.principal, SubmitClaimIn.model_validate(b), b) for b in bodies]


def test_a_batch_matches_like_single_claims_and_a_refused_claim_writes_nothing(
    client: TestClient, make_actor: Any, clock: FixedClock, rt: Runtime
) -> None:
    provider = make_actor("provider")
    auth = authorize(client, provider.headers)
    clock.set(AFTER_DOS)
    bodies = [
        claim([line("62323", utn=auth["utn"])]),  # payable by its UTN
        claim([line("62323", utn="ZZA00000000001")]),  # no such UTN: refused, field named
        claim([line("01938")], seed=1),  # anesthesia: follows the procedure's authorization, no UTN
        claim([line("62323")], seed=2),  # another beneficiary, no authorization: two claims share one review
        claim([line("62323")], seed=2, claim_type="institutional"),
    ]
    with rt.sessions() as s:
        results = claims.submit_claims(s, rt, _items(provider, bodies))
        s.commit()
    refused = results[1]
    assert isinstance(refused, Invalid) and {f.field for f in refused.fields} == {"lines[0].utn"}
    stored = [r for r in results if isinstance(r, Claim)]
    assert len(stored) == 4
    outcomes = [(ln.outcome, ln.matched_by) for c in stored for ln in c.lines]
    assert outcomes[:2] == [("payable", "utn"), ("payable", "beneficiary_date_catalog")]
    assert [o for o, _ in outcomes[2:]] == ["suspended", "suspended"]
    reviews = {ln.prepayment_review_id for c in stored[2:] for ln in c.lines}
    assert len(reviews) == 1 and None not in reviews  # the second joined the review the first opened
    # The same services billed one by one over HTTP give the same outcomes (by another billing provider: from
    # the same one they would be exact duplicates, refused with 409).
    for b, expected in zip([bodies[0], bodies[2]], outcomes[:2], strict=True):
        again = {**b, "billing_provider": {"npi": make_valid_npi(990)}}
        got = client.post("/api/v1/claims", json=again, headers=provider.headers).json()["lines"][0]
        assert (got["outcome"], got["matched_by"]) == expected


def test_the_catalog_context_of_a_line_is_cached_and_is_the_catalogs_answer(rt: Runtime) -> None:
    """`_catalog_context` answers as `requires_pa` does, once per distinct line context."""
    catalog = rt.catalog
    args = ("TX", DOS, "22", "original_medicare", None, (), ("M54.16",))
    primary = claims._catalog_context(catalog, "62323", *args, ())
    answer = catalog.requires_pa(code="62323", state="TX", date_of_service=DOS, place_of_service="22")
    assert primary == ("primary", None, answer.category, None)
    assert claims._catalog_context(catalog, "01938", *args, ("62323",))[:3] == ("associated", "anesthesia",
                                                                                  answer.category)  # fmt: skip
    assert claims._catalog_context(catalog, "99213", *args, ())[0] == "other"
    before = claims._catalog_context.cache_info().hits
    assert claims._catalog_context(catalog, "62323", *args, ()) == primary
    assert claims._catalog_context.cache_info().hits == before + 1


def test_an_opened_review_is_stored_and_read_back_as_the_orm_would(rt: Runtime, clock: FixedClock) -> None:
    """`_open_review` stores the review with one insert; `_episode_reviews` reads it as the ORM statement does."""
    clock.set(AFTER_DOS)
    now = clock.now()
    opened = {"mbi": mbi(3), "state": "TX", "participant": "x", "dos": DOS, "now": now}
    with rt.sessions() as s:
        first = claims._open_review(s, rt, category="epidural_steroid_injection", **opened)
        second = claims._open_review(s, rt, category="cervical_fusion", **opened)
        assert inspect(first).persistent and first.id < second.id
        # The session's own objects come back as they are, as an ORM load hands them back.
        assert claims._episode_reviews(s, mbi(3), DOS) == [first, second]
        first.status = "under_review"  # a later change flushes as usual
        s.commit()
    with rt.sessions() as s:
        read = claims._episode_reviews(s, mbi(3), DOS)
        assert all(inspect(r).persistent for r in read)
        assert claims._episode_reviews(s, mbi(3), DOS) == read  # now in the session: the same objects
        loaded = [_columns(r) for r in read]
    with rt.sessions() as s:
        expected = [_columns(r) for r in s.scalars(claims._EPISODE_REVIEWS, {"mbi": mbi(3), "dos": DOS})]
        assert claims._episode_reviews(s, mbi(4), DOS) == []
    assert loaded == expected and [r["status"] for r in loaded] == ["under_review", "awaiting_documentation"]


def _columns(review: PrepaymentReview) -> dict[str, Any]:
    return {c.key: getattr(review, c.key) for c in inspect(PrepaymentReview).column_attrs}
