"""`submit_claims`: a batch matched against authorizations read once; each claim succeeds or fails alone."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.claims.helpers import AFTER_DOS, authorize, claim, line
from wiserpa.claims import service as claims
from wiserpa.claims.models import Claim
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
