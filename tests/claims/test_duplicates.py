"""Medicare's exact-duplicate edit: a service billed twice is refused (409), not paid and counted twice."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.claims.helpers import AFTER_DOS, authorize, claim, count, line, post_claim
from tests.factories import DOS
from wiserpa.claims.models import Claim, ClaimLine
from wiserpa.policy.clock import FixedClock
from wiserpa.policy.validation import make_valid_npi


def _stats_lines(client: TestClient, headers: dict[str, str]) -> int:
    stats = client.get("/api/v1/claims/stats", headers=headers)
    assert stats.status_code == 200, stats.text
    return sum(row["lines"] for row in stats.json()["items"])


def test_the_same_service_billed_again_is_a_409_naming_the_line_and_writes_nothing(
    client: TestClient, clock: FixedClock, make_actor: Callable[..., Any], rt: Any
) -> None:
    """Without an Idempotency-Key a second identical claim used to be paid and counted a second time."""
    provider, oversight = make_actor("provider"), make_actor("oversight")
    authorize(client, provider.headers, case="complete")
    clock.set(AFTER_DOS)
    data = claim([line("62323"), line("01992", modifiers=["AA"])])
    first = post_claim(client, provider.headers, data)
    assert first.status_code == 201 and [ln["outcome"] for ln in first.json()["lines"]] == ["payable"] * 2
    before = (count(rt, Claim), count(rt, ClaimLine), _stats_lines(client, oversight.headers))

    again = post_claim(client, provider.headers, data)
    assert again.status_code == 409, again.text
    fields = again.json()["error"]["fields"]
    assert [f["field"] for f in fields] == ["lines[0]", "lines[1]"]
    assert f"claim {first.json()['id']}" in fields[0]["message"]
    assert (count(rt, Claim), count(rt, ClaimLine), _stats_lines(client, oversight.headers)) == before


def test_a_repeat_procedure_another_day_or_modifier_or_biller_is_not_a_duplicate(
    client: TestClient, clock: FixedClock, make_actor: Callable[..., Any]
) -> None:
    """Only the exact same service is refused; a difference in any part of the key is billed as usual."""
    provider = make_actor("provider")
    clock.set(AFTER_DOS)
    assert post_claim(client, provider.headers, claim([line("62323")])).status_code == 201
    for different in (
        claim([line("62323", modifiers=["76"])]),  # repeat procedure, same physician
        claim([line("62323", modifiers=["RT"])]),
        claim([line("62323", dos=DOS - dt.timedelta(days=1))]),
        {**claim([line("62323")]), "billing_provider": {"npi": make_valid_npi(999)}},  # another biller
        claim([line("62323")], seed=3),  # another beneficiary
        claim([line("62323")], claim_type="institutional"),  # the facility's claim for the same procedure
    ):
        r = post_claim(client, provider.headers, different)
        assert r.status_code == 201, (different, r.text)


def test_a_line_repeated_on_one_claim_is_refused_unless_marked_a_repeat(
    client: TestClient, clock: FixedClock, make_actor: Callable[..., Any], rt: Any
) -> None:
    """Two identical lines on one claim: the second is the duplicate (units bill more of one service)."""
    provider = make_actor("provider")
    clock.set(AFTER_DOS)
    twice = post_claim(client, provider.headers, claim([line("62323"), line("62323")]))
    assert twice.status_code == 409
    assert [f["field"] for f in twice.json()["error"]["fields"]] == ["lines[1]"]
    assert count(rt, Claim) == 0
    repeat = post_claim(client, provider.headers, claim([line("62323"), line("62323", modifiers=["77"])]))
    assert repeat.status_code == 201, repeat.text


def test_a_retry_with_its_idempotency_key_still_replays_the_first_answer(
    client: TestClient, clock: FixedClock, make_actor: Callable[..., Any], rt: Any
) -> None:
    """The duplicate edit does not turn a safe retry into a conflict."""
    provider = make_actor("provider")
    clock.set(AFTER_DOS)
    headers = {**provider.headers, "Idempotency-Key": "bill-once"}
    first = post_claim(client, headers, claim([line("62323")]))
    second = post_claim(client, headers, claim([line("62323")]))
    assert first.status_code == second.status_code == 201 and second.json() == first.json()
    assert count(rt, Claim) == 1
