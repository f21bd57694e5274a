"""`submit_claims`: a batch matched against authorizations read once; each claim succeeds or fails alone."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import inspect, select

from tests.claims.helpers import AFTER_DOS, authorize, claim, line, mbi
from tests.factories import DOS
from wiserpa.audit.models import AuditEntry
from wiserpa.claims import service as claims
from wiserpa.claims.models import Claim, ClaimLine, PrepaymentReview
from wiserpa.claims.schemas import SubmitClaimIn
from wiserpa.errors import Invalid
from wiserpa.policy.clock import FixedClock
from wiserpa.policy.validation import make_valid_npi
from wiserpa.runtime import Runtime
from wiserpa.store.base import table_of


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


def test_store_claims_writes_what_submit_claims_writes_without_orm_objects(
    client: TestClient, make_actor: Any, clock: FixedClock, rt: Runtime
) -> None:
    """`store_claims` (ids only) stores the same rows and audit entries as `submit_claims`, refusing the same."""
    provider = make_actor("provider")
    auth = authorize(client, provider.headers)
    clock.set(AFTER_DOS)
    bodies = [
        claim([line("62323", utn=auth["utn"])]),
        claim([line("62323", utn="ZZA00000000001")]),  # refused
        claim([line("01938"), line("62323", modifiers=["76"])], seed=1),
        claim([line("62323")], seed=2),  # opens a review
        claim([line("62323")], seed=2, claim_type="institutional"),  # joins it
    ]
    written = []
    for submit in (claims.submit_claims, claims.store_claims):
        with rt.sessions() as s:
            results: list[Any] = submit(s, rt, _items(provider, bodies))
            assert [type(r).__name__ for r in results[1:2]] == ["Invalid"]
            ids = [r if isinstance(r, int) else r.id for r in results if not isinstance(r, Invalid)]
            if submit is claims.store_claims:
                assert not [o for o in s.identity_map.values() if isinstance(o, Claim | ClaimLine)]
            written.append((ids, _stored(s, ids)))
            s.rollback()
    (ids_orm, orm), (ids_rows, rows) = written
    assert len(ids_rows) == len(ids_orm) == 4 and ids_rows == sorted(ids_rows)
    assert rows == orm
    _, line_rows, entries = rows
    assert len(line_rows) == 5 and [e[0] for e in entries].count("prepayment_review.open") == 1


def _stored(s: Any, ids: list[int]) -> tuple[Any, ...]:
    """The claims' rows, their lines' and the audit entries of a batch, without the ids that differ between runs
    (PostgreSQL's sequences do not roll back)."""
    by_id = {claim_id: n for n, claim_id in enumerate(ids)}
    skip = {"id", "claim_id", "prepayment_review_id"}
    claim_rows = [
        {k: v for k, v in r.items() if k not in skip}
        for r in s.execute(select(table_of(Claim)).where(Claim.id.in_(ids)).order_by(Claim.id)).mappings()
    ]
    line_rows = [
        (
            by_id[r["claim_id"]],
            r["prepayment_review_id"] is None,
            {k: v for k, v in r.items() if k not in skip},
        )
        for r in s.execute(
            select(table_of(ClaimLine)).where(ClaimLine.claim_id.in_(ids)).order_by(ClaimLine.id)
        ).mappings()
    ]
    entries = [
        (e.action, e.object_type, e.outcome, e.details, by_id.get(int(e.object_id)) if e.action == "claim.submit" else None)
        for e in s.scalars(select(AuditEntry).where(AuditEntry.action.in_(("claim.submit", "prepayment_review.open"))).order_by(AuditEntry.id))
    ]  # fmt: skip
    return claim_rows, line_rows, entries


def test_claim_columns_have_no_defaults_of_their_own() -> None:
    """`store_claims` writes every column of its rows itself, which holds while no column has a default."""
    for table in (table_of(Claim), table_of(ClaimLine)):
        assert [c.key for c in table.columns if c.default is not None or c.server_default is not None] == []
