"""The decision pipeline: pure, with time, history and policy passed in. Machines may approve, never deny."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wiserpa.policy.criteria import CriteriaLibrary, CriterionResult, HistoryItem, Truth, evaluate
from wiserpa.policy.profiles import PolicyProfile


@dataclass(frozen=True)
class DecisionInput:
    """What the pipeline needs to know about one request."""

    request_key: str  # stable identity used for deterministic audit sampling
    state: str
    category: str
    policy_id: str | None
    date_of_service: dt.date
    diagnosis_codes: tuple[str, ...]
    facts: Mapping[str, Any]
    time_sensitive_attestation: bool = False


@dataclass(frozen=True)
class PipelineResult:
    """The machine's outcome: an affirmation of some kind, or a pend for a clinician."""

    outcome: str  # affirmed | exempt_affirmed | gold_card_affirmed | pended
    reason: str
    criteria_results: list[CriterionResult] = field(default_factory=list)
    exemption: str | None = None
    audit_sampled: bool = False

    @property
    def gaps(self) -> list[CriterionResult]:
        """Criteria not met or not determinable: what a clinician must look at."""
        return [r for r in self.criteria_results if r.result is not Truth.MET]


def matching_exemption(profile: PolicyProfile, diagnosis_codes: Sequence[str]) -> str | None:
    """The name of the first exemption code set that a diagnosis falls in (R1), or None."""
    for name, prefixes in profile.exemptions.code_sets.items():
        for code in diagnosis_codes:
            plain = code.replace(".", "").upper()
            if any(plain.startswith(p.replace(".", "").upper()) for p in prefixes):
                return name
    return None


def sampled_for_audit(request_key: str, rate: float, seed: str) -> bool:
    """Deterministic sampling: the same request and seed always give the same answer."""
    if rate <= 0:
        return False
    digest = hashlib.sha256(f"{seed}:{request_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def decide(
    inp: DecisionInput,
    *,
    criteria: CriteriaLibrary,
    profile: PolicyProfile,
    history: Sequence[HistoryItem],
    gold_carded: bool,
) -> PipelineResult:
    """Run exemption → gold card → coverage criteria; affirm or pend. Never non-affirms."""
    policy = criteria.for_policy(inp.policy_id) if inp.policy_id else None
    results = (
        evaluate(
            policy, inp.facts, date_of_service=inp.date_of_service, category=inp.category, history=history
        )
        if policy is not None
        else []
    )
    ex = profile.exemptions
    if ex.enabled:
        code_set = matching_exemption(profile, inp.diagnosis_codes)
        if code_set is not None and (inp.time_sensitive_attestation or not ex.require_attestation):
            return PipelineResult(
                outcome="exempt_affirmed",
                reason=f"time-sensitive care exemption ({code_set})",
                criteria_results=results,
                exemption=code_set,
                audit_sampled=sampled_for_audit(inp.request_key, ex.audit_sample_rate, profile.id),
            )
    if profile.gold_card.enabled and gold_carded:
        return PipelineResult(
            outcome="gold_card_affirmed",
            reason="the requesting provider holds a gold card for this service",
            criteria_results=results,
        )
    if policy is None:
        # No NCD/LCD governs this service here, so there is nothing beyond it that may be required (R6).
        return PipelineResult(
            outcome="affirmed", reason="no governing NCD/LCD criteria apply", criteria_results=[]
        )
    if all(r.result is Truth.MET for r in results):
        return PipelineResult(
            outcome="affirmed", reason="every coverage criterion is met", criteria_results=results
        )
    unmet = sum(r.result is Truth.UNMET for r in results)
    unknown = sum(r.result is Truth.UNKNOWN for r in results)
    return PipelineResult(
        outcome="pended",
        reason=f"clinician review needed: {unmet} criteria not met, {unknown} not documented",
        criteria_results=results,
    )
