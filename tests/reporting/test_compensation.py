"""R7 pay formulas: the reform never rewards a wrong denial; the current formula always does."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from wiserpa.reporting.compensation import (
    CompensationParams,
    ParticipantPeriod,
    current_formula,
    reform_formula,
)


@st.composite
def periods(draw: st.DrawFn) -> ParticipantPeriod:
    reviews = draw(st.integers(1, 2000))
    non_affirmed = draw(st.integers(0, reviews))
    overturned = draw(st.integers(0, non_affirmed))
    audited = draw(st.integers(0, reviews))
    averted = draw(st.floats(0, 5_000_000, allow_nan=False))
    return ParticipantPeriod(
        participant="P",
        reviews=reviews,
        decided_on_time=draw(st.integers(0, reviews)),
        non_affirmed_lines=non_affirmed,
        averted_allowed_usd=averted,
        overturned_denials=overturned,
        overturned_allowed_usd=draw(st.floats(0, 1, allow_nan=False)) * averted,
        audited=audited,
        audit_agreements=draw(st.integers(0, audited)),
        quality_score=draw(st.floats(0, 1, allow_nan=False)),
    )


params_st = st.builds(
    CompensationParams,
    share_of_savings=st.floats(0.001, 1),
    quality_adjustment_max=st.floats(0, 0.5),
    reform_fee_per_review_usd=st.floats(1, 500),
    timeliness_weight=st.floats(0, 1),
    accuracy_weight=st.floats(0, 1),
    overturn_penalty_weight=st.floats(0, 3),
)


def flip_correct_affirmation_to_denial(
    p: ParticipantPeriod, *, claim_usd: float, overturned: bool, audited: bool
) -> ParticipantPeriod:
    """One case that was correctly affirmed is denied instead.

    * the case's claim is now not paid: ``claim_usd`` joins the averted dollars;
    * ``overturned``: the provider appeals and wins, so it is also an overturned denial (its dollars leave
      the net savings again);
    * ``audited``: the case was in the audit sample. The audit agreed with the affirmation; it now disagrees
      with the denial, so one agreement is lost (the sample size is unchanged).
    The quality score is left as is: CMS has not tied it to individual cases.
    """
    return dataclasses.replace(
        p,
        non_affirmed_lines=p.non_affirmed_lines + 1,
        averted_allowed_usd=p.averted_allowed_usd + claim_usd,
        overturned_denials=p.overturned_denials + (1 if overturned else 0),
        overturned_allowed_usd=p.overturned_allowed_usd + (claim_usd if overturned else 0.0),
        audit_agreements=p.audit_agreements - (1 if audited else 0),
    )


def can_flip(p: ParticipantPeriod, audited: bool) -> bool:
    """There is an affirmation to flip, and if it was audited, an agreement to lose."""
    return p.non_affirmed_lines < p.reviews and (not audited or p.audit_agreements >= 1)


@given(periods(), params_st, st.floats(1, 100_000), st.booleans(), st.booleans())
def test_reform_never_pays_more_for_a_wrong_denial(
    p: ParticipantPeriod, params: CompensationParams, claim: float, overturned: bool, audited: bool
) -> None:
    # A wrong denial that is neither overturned nor audited is invisible to any formula; the claim
    # here is that once it *is* detected, it can only cost the participant.
    assume(overturned or audited)
    assume(can_flip(p, audited))
    after = flip_correct_affirmation_to_denial(p, claim_usd=claim, overturned=overturned, audited=audited)
    before_pay = reform_formula(p, params).total_usd
    after_pay = reform_formula(after, params).total_usd
    assert after_pay <= before_pay + 1e-9 * max(1.0, before_pay)


@given(periods(), params_st, st.floats(1, 100_000), st.booleans())
def test_current_formula_pays_more_for_a_wrong_denial_that_is_not_overturned(
    p: ParticipantPeriod, params: CompensationParams, claim: float, audited: bool
) -> None:
    assume(can_flip(p, audited))
    after = flip_correct_affirmation_to_denial(p, claim_usd=claim, overturned=False, audited=audited)
    assert current_formula(after, params).total_usd > current_formula(p, params).total_usd


@given(periods(), params_st, st.floats(1, 100_000))
def test_current_formula_ignores_an_overturned_flip(
    p: ParticipantPeriod, params: CompensationParams, claim: float
) -> None:
    assume(can_flip(p, False))
    after = flip_correct_affirmation_to_denial(p, claim_usd=claim, overturned=True, audited=False)
    before = current_formula(p, params).total_usd
    assert current_formula(after, params).total_usd == pytest.approx(before, rel=1e-9, abs=1e-6)


@given(periods(), params_st)
def test_reform_is_independent_of_the_approval_mix(p: ParticipantPeriod, params: CompensationParams) -> None:
    # A correct decision switching between affirmation and (upheld, audit-agreed) denial changes nothing.
    assume(p.non_affirmed_lines < p.reviews)
    more_denials = dataclasses.replace(p, non_affirmed_lines=p.non_affirmed_lines + 1)
    assert reform_formula(more_denials, params).total_usd == reform_formula(p, params).total_usd


def make(**kw: object) -> ParticipantPeriod:
    base: dict[str, object] = dict(
        participant="Cohere Health (TX)",
        reviews=1000,
        decided_on_time=900,
        non_affirmed_lines=200,
        averted_allowed_usd=1_000_000.0,
        overturned_denials=50,
        overturned_allowed_usd=200_000.0,
        audited=100,
        audit_agreements=90,
        quality_score=0.75,
    )
    base.update(kw)
    return ParticipantPeriod(**base)  # type: ignore[arg-type]


def test_current_formula_hand_computed() -> None:
    b = current_formula(make())
    # 10 % of (1,000,000 − 200,000) = 80,000; multiplier 1 − 0.1 + 0.2 × 0.75 = 1.05.
    assert b.components["net_averted_usd"] == 800_000.0
    assert b.components["quality_multiplier"] == pytest.approx(1.05)
    assert b.total_usd == pytest.approx(84_000.0)
    assert b.formula == "current" and "84,000.00" in b.explanation


def test_current_formula_quality_range() -> None:
    low = current_formula(make(quality_score=0.0)).total_usd
    mid = current_formula(make(quality_score=0.5)).total_usd
    high = current_formula(make(quality_score=1.0)).total_usd
    assert (low, mid, high) == pytest.approx((72_000.0, 80_000.0, 88_000.0))


def test_reform_formula_hand_computed() -> None:
    b = reform_formula(make())
    # on-time 0.9; agreement 0.9; overturns per review 0.05; accuracy 0.9 × 0.95 = 0.855;
    # score 0.5 × 0.9 + 0.5 × 0.855 = 0.8775; 1000 × 75 × 0.8775 = 65,812.50.
    assert b.components["accuracy"] == pytest.approx(0.855)
    assert b.components["overturn_rate_among_non_affirmations"] == pytest.approx(0.25)
    assert b.total_usd == pytest.approx(65_812.5)
    assert b.formula == "reform"


def test_reform_zero_reviews_and_no_audits() -> None:
    zero = make(
        reviews=0,
        decided_on_time=0,
        non_affirmed_lines=0,
        overturned_denials=0,
        audited=0,
        audit_agreements=0,
        averted_allowed_usd=0.0,
        overturned_allowed_usd=0.0,
    )
    assert reform_formula(zero).total_usd == 0.0
    unaudited = reform_formula(make(audited=0, audit_agreements=0))
    assert unaudited.components["audit_agreement_rate"] == 1.0
    strict = CompensationParams(agreement_rate_if_unaudited=0.0)
    assert reform_formula(make(audited=0, audit_agreements=0), strict).components["accuracy"] == 0.0


def test_overturn_penalty_is_clamped() -> None:
    b = reform_formula(make(overturned_denials=200), CompensationParams(overturn_penalty_weight=10))
    assert b.components["accuracy"] == 0.0
    assert b.total_usd == pytest.approx(1000 * 75 * 0.5 * 0.9)


@pytest.mark.parametrize(
    "kw",
    [
        {"decided_on_time": 1001},
        {"overturned_denials": 201},
        {"audit_agreements": 101},
        {"overturned_allowed_usd": 2_000_000.0},
        {"quality_score": 1.5},
        {"reviews": -1},
        {"averted_allowed_usd": float("nan")},
    ],
)
def test_period_validation(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        make(**kw)


def test_params_validation() -> None:
    with pytest.raises(ValueError):
        CompensationParams(quality_adjustment_max=1.0)
    with pytest.raises(ValueError):
        CompensationParams(share_of_savings=-0.1)
