"""Participant pay under WISeR as run (share of averted expenditures) and under the reform (R7).

Two pure formulas over one participant's period totals, shown side by side on the reports:

* ``current_formula`` — the model as announced: participants earn a share of the expenditures they avert
  by non-affirming (S29, S30); overturned denials earn nothing (S29/S30); a quality score moves pay by
  roughly 5–10 % (S46). The share itself is not public, so it is a parameter.
* ``reform_formula`` — what the ASA asks for: pay per review, scaled by timeliness and accuracy, with no
  term that grows with the number of denials.

Every number is a parameter with a documented default; see ``docs/reporting.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "CompensationParams",
    "ParticipantPeriod",
    "PayBreakdown",
    "current_formula",
    "reform_formula",
]


def _check_non_negative(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")


@dataclass(frozen=True)
class ParticipantPeriod:
    """One participant's totals for a reporting period (a month, a quarter, a performance year)."""

    participant: str
    reviews: int  # PA requests and pre-payment reviews decided in the period
    decided_on_time: int
    non_affirmed_lines: int
    # Gross: allowed amounts of all claim lines not paid because of a non-affirmation, *including*
    # those later overturned (the formula subtracts ``overturned_allowed_usd`` itself).
    averted_allowed_usd: float
    overturned_denials: int
    overturned_allowed_usd: float
    audited: int
    audit_agreements: int
    quality_score: float  # CMS quality score scaled to [0, 1]

    def __post_init__(self) -> None:
        """Reject impossible combinations early: every later ratio assumes them."""
        for name in (
            "reviews",
            "decided_on_time",
            "non_affirmed_lines",
            "overturned_denials",
            "audited",
            "audit_agreements",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        _check_non_negative("averted_allowed_usd", self.averted_allowed_usd)
        _check_non_negative("overturned_allowed_usd", self.overturned_allowed_usd)
        if self.decided_on_time > self.reviews:
            raise ValueError("decided_on_time cannot exceed reviews")
        if self.non_affirmed_lines > self.reviews:
            raise ValueError("non_affirmed_lines cannot exceed reviews")
        if self.overturned_denials > self.non_affirmed_lines:
            raise ValueError("overturned_denials cannot exceed non_affirmed_lines")
        if self.audit_agreements > self.audited or self.audited > self.reviews:
            raise ValueError("need audit_agreements <= audited <= reviews")
        if self.overturned_allowed_usd > self.averted_allowed_usd:
            raise ValueError("overturned_allowed_usd is part of averted_allowed_usd and cannot exceed it")
        if not (math.isfinite(self.quality_score) and 0.0 <= self.quality_score <= 1.0):
            raise ValueError("quality_score must be in [0, 1]")


@dataclass(frozen=True)
class CompensationParams:
    """Policy parameters of both formulas; defaults and their sources are listed in docs/reporting.md."""

    # Assumption: CMS pays "a percentage of averted expenditures" (S29, S30) but has not published it.
    share_of_savings: float = 0.10
    # S46: the quality score adjusts pay by "roughly 5–10%"; the upper end is the default.
    quality_adjustment_max: float = 0.10
    # Assumption: a fee in the range of a clinician-reviewed PA determination; the reform's base rate.
    reform_fee_per_review_usd: float = 75.0
    timeliness_weight: float = 0.5
    accuracy_weight: float = 0.5
    # 1.0 = each overturned denial costs as much accuracy as its share of all reviews.
    overturn_penalty_weight: float = 1.0
    # Assumption: with no audits in the period there is no evidence of error, so agreement counts as 1.
    agreement_rate_if_unaudited: float = 1.0

    def __post_init__(self) -> None:
        """Keep both formulas monotone and bounded."""
        for name in (
            "share_of_savings",
            "quality_adjustment_max",
            "reform_fee_per_review_usd",
            "timeliness_weight",
            "accuracy_weight",
            "overturn_penalty_weight",
            "agreement_rate_if_unaudited",
        ):
            _check_non_negative(name, getattr(self, name))
        if self.share_of_savings > 1:
            raise ValueError("share_of_savings is a fraction in [0, 1]")
        if self.quality_adjustment_max >= 1:
            raise ValueError("quality_adjustment_max must be below 1 so pay never turns negative")
        if self.agreement_rate_if_unaudited > 1:
            raise ValueError("agreement_rate_if_unaudited is a fraction in [0, 1]")


@dataclass(frozen=True)
class PayBreakdown:
    """Result of one formula: the total and every intermediate figure, for display next to each other."""

    participant: str
    formula: str  # "current" or "reform"
    total_usd: float
    components: dict[str, float]
    explanation: str


def current_formula(p: ParticipantPeriod, params: CompensationParams | None = None) -> PayBreakdown:
    """WISeR as run: share × (averted − overturned) × quality multiplier in [1 − m, 1 + m]."""
    params = params or CompensationParams()
    m = params.quality_adjustment_max
    net_averted = max(0.0, p.averted_allowed_usd - p.overturned_allowed_usd)
    base = params.share_of_savings * net_averted
    # Linear in the score: 0 -> 1 − m, 0.5 -> 1 (neutral), 1 -> 1 + m; S46 says ±5–10 %.
    multiplier = 1.0 - m + 2.0 * m * p.quality_score
    total = base * multiplier
    components = {
        "averted_allowed_usd": p.averted_allowed_usd,
        "overturned_allowed_usd": p.overturned_allowed_usd,
        "net_averted_usd": net_averted,
        "share_of_savings": params.share_of_savings,
        "base_usd": base,
        "quality_score": p.quality_score,
        "quality_multiplier": multiplier,
        "quality_adjustment_usd": total - base,
    }
    explanation = (
        f"{params.share_of_savings:.1%} of net averted expenditures "
        f"(${p.averted_allowed_usd:,.2f} averted − ${p.overturned_allowed_usd:,.2f} overturned "
        f"= ${net_averted:,.2f}) = ${base:,.2f}, × quality multiplier {multiplier:.3f} "
        f"(score {p.quality_score:.2f}, ±{m:.0%}) = ${total:,.2f}. "
        "Pay grows with every non-affirmed claim that is not overturned."
    )
    return PayBreakdown(p.participant, "current", total, components, explanation)


def reform_formula(p: ParticipantPeriod, params: CompensationParams | None = None) -> PayBreakdown:
    """Reform (R7): reviews × fee × (w_t·on-time rate + w_a·accuracy); no term depends on denial volume."""
    params = params or CompensationParams()
    if p.reviews == 0:
        on_time_rate = 0.0
        overturn_rate = 0.0
    else:
        on_time_rate = p.decided_on_time / p.reviews
        # Overturns per *review*, not per non-affirmation: dividing by denials would let extra
        # unchallenged denials dilute the rate and so raise pay, the incentive R7 removes.
        overturn_rate = p.overturned_denials / p.reviews
    overturn_rate_among_non_affirmations = (
        p.overturned_denials / p.non_affirmed_lines if p.non_affirmed_lines else 0.0
    )
    agreement_rate = p.audit_agreements / p.audited if p.audited else params.agreement_rate_if_unaudited
    accuracy = agreement_rate * max(0.0, 1.0 - params.overturn_penalty_weight * overturn_rate)
    score = params.timeliness_weight * on_time_rate + params.accuracy_weight * accuracy
    base = p.reviews * params.reform_fee_per_review_usd
    total = base * score
    components = {
        "reviews": float(p.reviews),
        "fee_per_review_usd": params.reform_fee_per_review_usd,
        "base_usd": base,
        "on_time_rate": on_time_rate,
        "audit_agreement_rate": agreement_rate,
        "overturn_rate": overturn_rate,
        "overturn_rate_among_non_affirmations": overturn_rate_among_non_affirmations,
        "accuracy": accuracy,
        "timeliness_weight": params.timeliness_weight,
        "accuracy_weight": params.accuracy_weight,
        "performance_score": score,
    }
    explanation = (
        f"{p.reviews} reviews × ${params.reform_fee_per_review_usd:,.2f} = ${base:,.2f}, × "
        f"({params.timeliness_weight:g} × on-time {on_time_rate:.1%} + {params.accuracy_weight:g} × "
        f"accuracy {accuracy:.1%}) = ${total:,.2f}. Accuracy = audit agreement {agreement_rate:.1%} × "
        f"(1 − {params.overturn_penalty_weight:g} × overturned denials per review {overturn_rate:.1%}). "
        "Approving or denying a case correctly pays the same."
    )
    return PayBreakdown(p.participant, "reform", total, components, explanation)
