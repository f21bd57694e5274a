"""Evaluating the packaged criteria: every category and MAC variant, frequency windows, overrides."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from wiserpa.policy.criteria import (
    CriteriaLoadError,
    CriterionResult,
    HistoryItem,
    PolicyCriteria,
    Truth,
    coerce_facts,
    evaluate,
    load_criteria,
    requirements,
    validate_facts,
    window_start,
)
from wiserpa.policy.examples import COMPLETE_FACTS, VIOLATIONS, complete_facts

DOS = dt.date(2026, 3, 2)
LIB = load_criteria()
POLICY_CASES = [
    pytest.param(policy, category, id=f"{category}-{policy.policy_id}")
    for policy in LIB.policies.values()
    for category in policy.categories
]


def run(
    policy: PolicyCriteria,
    category: str,
    facts: dict[str, Any],
    history: list[HistoryItem] | None = None,
    dos: dt.date = DOS,
) -> dict[str, CriterionResult]:
    assert validate_facts(policy, facts) == []
    results = evaluate(
        policy, coerce_facts(policy, facts), date_of_service=dos, category=category, history=history or []
    )
    return {r.criterion_id: r for r in results}


@pytest.mark.parametrize(("policy", "category"), POLICY_CASES)
def test_complete_request_meets_everything(policy: PolicyCriteria, category: str) -> None:
    results = run(policy, category, complete_facts(category))
    assert results, "no criteria evaluated"
    assert {cid: r.result for cid, r in results.items() if r.result is not Truth.MET} == {}
    assert all(r.missing_facts == () for r in results.values())


@pytest.mark.parametrize(("policy", "category"), POLICY_CASES)
def test_violation_is_unmet(policy: PolicyCriteria, category: str) -> None:
    fact, bad, criterion_id = VIOLATIONS[category]
    results = run(policy, category, {**complete_facts(category), fact: bad})
    assert results[criterion_id].result is Truth.UNMET
    assert [cid for cid, r in results.items() if r.result is not Truth.MET] == [criterion_id]


@pytest.mark.parametrize(("policy", "category"), POLICY_CASES)
def test_removed_fact_is_unknown_and_named(policy: PolicyCriteria, category: str) -> None:
    fact, _, criterion_id = VIOLATIONS[category]
    facts = complete_facts(category)
    del facts[fact]
    result = run(policy, category, facts)[criterion_id]
    assert result.result is Truth.UNKNOWN
    assert fact in result.missing_facts


@pytest.mark.parametrize(("policy", "category"), POLICY_CASES)
def test_removing_any_fact_never_produces_unmet(policy: PolicyCriteria, category: str) -> None:
    """Missing information can make a criterion unknown, never failed (Kleene monotonicity end to end)."""
    for fact in COMPLETE_FACTS[category]:
        facts = complete_facts(category)
        del facts[fact]
        for cid, r in run(policy, category, facts).items():
            assert r.result is not Truth.UNMET, (fact, cid)
            if r.result is Truth.UNKNOWN:
                assert fact in r.missing_facts, (fact, cid)


def test_to_dict_is_plain_json() -> None:
    policy = LIB.for_policy("L39240")
    assert policy is not None
    facts = complete_facts("epidural_steroid_injection")
    del facts["pain_duration_weeks"]
    r = run(policy, "epidural_steroid_injection", facts)["esi.pain_duration"]
    assert r.to_dict() == {
        "criterion_id": "esi.pain_duration",
        "kind": "criterion",
        "result": "unknown",
        "statement": r.statement,
        "citation": {"policy": "L39240", "section": r.citation.section},
        "missing_facts": ["pain_duration_weeks"],
        "confidence": "confirmed",
        "satisfies_hint": r.satisfies_hint,
    }


# --------------------------------------------------------------------------------------------- applies_when


def test_pva_hospitalized_and_outpatient_paths() -> None:
    policy = LIB.for_policy("L34228")
    assert policy is not None
    out = run(policy, "vertebral_augmentation", complete_facts("vertebral_augmentation"))
    assert "pva.pain_hospitalized" not in out and out["pva.pain_outpatient"].result is Truth.MET
    inpatient = {**complete_facts("vertebral_augmentation"), "hospitalized": True, "pain_nrs": 9}
    res = run(policy, "vertebral_augmentation", inpatient)
    assert "pva.pain_outpatient" not in res and res["pva.pain_hospitalized"].result is Truth.MET
    res = run(policy, "vertebral_augmentation", {**inpatient, "pain_nrs": 7})
    assert res["pva.pain_hospitalized"].result is Truth.UNMET
    # Outpatient: stable pain needs two secondary findings.
    stable = {**complete_facts("vertebral_augmentation"), "pain_trend": "stable"}
    assert run(policy, "vertebral_augmentation", stable)["pva.pain_outpatient"].result is Truth.MET
    one = {**stable, "height_loss_progressing": False, "rdq_score": 10}
    assert run(policy, "vertebral_augmentation", one)["pva.pain_outpatient"].result is Truth.UNMET


def test_pva_unknown_hospitalization_is_unknown_not_unmet() -> None:
    policy = LIB.for_policy("L34228")
    assert policy is not None
    facts = complete_facts("vertebral_augmentation")
    del facts["hospitalized"]
    res = run(policy, "vertebral_augmentation", facts)
    assert res["pva.pain_hospitalized"].result is Truth.UNKNOWN  # NRS 7 < 8, but it may not apply
    assert res["pva.pain_outpatient"].result is Truth.MET


def test_cervical_fusion_alternative_indications() -> None:
    policy = LIB.for_policy("L39793")
    assert policy is not None
    base = complete_facts("cervical_fusion")
    myelo = {
        **base,
        "fusion_indication": "myelopathy",
        "myelopathy_symptomatic": True,
        "imaging_cord_compression": True,
    }
    res = run(policy, "cervical_fusion", myelo)
    assert set(res) == {"cfusion.indication", "cfusion.canal_stenosis"}
    assert all(r.result is Truth.MET for r in res.values())
    stab = {
        **base,
        "fusion_indication": "stabilization",
        "structural_indication": "none",
        "translation_mm": 4.0,
    }
    assert run(policy, "cervical_fusion", stab)["cfusion.stabilization"].result is Truth.MET
    waived = {
        **base,
        "conservative_care_waived": True,
        "arm_pain_weeks": 2,
        "progressive_neuro_deficit": True,
    }
    res = run(policy, "cervical_fusion", waived)
    assert "cfusion.conservative_care" not in res
    assert res["cfusion.conservative_exceptions"].result is Truth.MET
    axial = run(policy, "cervical_fusion", {**base, "fusion_indication": "axial_neck_pain"})
    assert axial["cfusion.indication"].result is Truth.UNMET


def test_esi_repeat_rules_apply_only_to_repeats() -> None:
    policy = LIB.for_policy("L39240")
    assert policy is not None
    repeat = {
        **complete_facts("epidural_steroid_injection"),
        "prior_esi_same_region": True,
        "prior_relief_percent": 60,
        "prior_relief_duration_weeks": 14,
        "same_scale_used": True,
    }
    res = run(policy, "epidural_steroid_injection", repeat)
    assert res["esi.repeat_requires_benefit"].result is Truth.MET
    assert res["esi.repeat_requires_benefit"].confidence == "unconfirmed"
    res = run(policy, "epidural_steroid_injection", {**repeat, "prior_relief_percent": 30})
    assert res["esi.repeat_requires_benefit"].result is Truth.UNMET


def test_esi_herpes_zoster_needs_no_duration() -> None:
    policy = LIB.for_policy("L39240")
    assert policy is not None
    facts = {**complete_facts("epidural_steroid_injection"), "esi_indication": "acute_herpes_zoster"}
    del facts["pain_duration_weeks"]
    del facts["conservative_care_weeks"]
    res = run(policy, "epidural_steroid_injection", facts)
    assert res["esi.pain_duration"].result is Truth.MET
    assert res["esi.conservative_care"].result is Truth.MET


# ----------------------------------------------------------------------------------------- frequency limits


def esi_item(
    days_before: int, region: str | None = "lumbar", status: str = "affirmed", **kw: Any
) -> HistoryItem:
    facts = {} if region is None else {"spinal_region": region}
    return HistoryItem(
        date_of_service=DOS - dt.timedelta(days=days_before),
        category=kw.get("category", "epidural_steroid_injection"),
        policy_id=kw.get("policy_id", "L39240"),
        facts=facts,
        status=status,
    )


def esi_freq(history: list[HistoryItem], facts: dict[str, Any] | None = None) -> CriterionResult:
    policy = LIB.for_policy("L39240")
    assert policy is not None
    return run(
        policy, "epidural_steroid_injection", facts or complete_facts("epidural_steroid_injection"), history
    )["esi.freq.sessions_per_region"]


def test_window_definition() -> None:
    assert window_start(DOS, 365) == DOS - dt.timedelta(days=364)
    assert window_start(DOS, 1) == DOS


def test_esi_three_prior_sessions_allowed_four_not() -> None:
    three = [esi_item(30), esi_item(120), esi_item(200)]
    assert esi_freq(three).result is Truth.MET
    assert esi_freq([*three, esi_item(300)]).result is Truth.UNMET


def test_esi_rolling_365_day_boundary() -> None:
    three = [esi_item(30), esi_item(120), esi_item(200)]
    # A session 364 days earlier is inside the rolling 365-day window (which includes the date of service) ...
    assert esi_freq([*three, esi_item(364)]).result is Truth.UNMET
    # ... one exactly 365 days earlier has dropped out.
    assert esi_freq([*three, esi_item(365)]).result is Truth.MET


def test_esi_frequency_counts_only_matching_items() -> None:
    three = [esi_item(30), esi_item(120), esi_item(200)]
    others = [
        esi_item(10, region="cervical"),
        esi_item(11, status="non_affirmed"),
        esi_item(12, status="pended"),
        esi_item(13, category="vertebral_augmentation"),
        esi_item(14, policy_id="L36920"),
        esi_item(-5),  # after the date of service: not a prior service
    ]
    assert esi_freq([*three, *others]).result is Truth.MET
    for status in ("exempt_affirmed", "gold_card_affirmed", "deemed_affirmed"):
        assert esi_freq([*three, esi_item(40, status=status)]).result is Truth.UNMET
    # A same-day earlier service counts.
    assert esi_freq([*three, esi_item(0)]).result is Truth.UNMET


def test_esi_frequency_unknowns() -> None:
    facts = complete_facts("epidural_steroid_injection")
    del facts["spinal_region"]
    r = esi_freq([], facts)
    assert r.result is Truth.UNKNOWN and r.missing_facts == ("spinal_region",)
    three = [esi_item(30), esi_item(120), esi_item(200)]
    # A prior item without a region might be the same region: unknown only when it could tip the count.
    assert esi_freq([*three, esi_item(50, region=None)]).result is Truth.UNKNOWN
    assert esi_freq([esi_item(30), esi_item(50, region=None)]).result is Truth.MET


def test_skin_substitute_applications_per_wound() -> None:
    policy = LIB.for_policy("L35041")
    assert policy is not None
    facts = complete_facts("skin_substitutes")

    def item(days: int, wound: str = "left-plantar-1") -> HistoryItem:
        return HistoryItem(
            DOS - dt.timedelta(days=days), "skin_substitutes", "L35041", {"wound_id": wound}, "affirmed"
        )

    nine = [item(d) for d in range(7, 70, 7)]
    assert len(nine) == 9
    res = run(policy, "skin_substitutes", facts, [*nine, item(3, "right-heel")])
    assert res["skin.freq.applications"].result is Truth.MET
    assert (
        run(policy, "skin_substitutes", facts, [*nine, item(83)])["skin.freq.applications"].result
        is Truth.UNMET
    )
    assert (
        run(policy, "skin_substitutes", facts, [*nine, item(84)])["skin.freq.applications"].result
        is Truth.MET
    )


# ------------------------------------------------------------------------------------------------ overrides


def test_override_changes_threshold_everywhere() -> None:
    facts = {**complete_facts("epidural_steroid_injection"), "pain_duration_weeks": 5}
    lib = LIB.with_overrides({"esi.pain_duration": {"min_weeks": 6}})
    for pid in ("L39240", "L36920", "L39015"):
        before, after = LIB.for_policy(pid), lib.for_policy(pid)
        assert before is not None and after is not None
        assert run(before, "epidural_steroid_injection", facts)["esi.pain_duration"].result is Truth.MET
        assert run(after, "epidural_steroid_injection", facts)["esi.pain_duration"].result is Truth.UNMET
    assert LIB.for_policy("L39240") is not lib.for_policy("L39240")  # the original is untouched


def test_override_one_policy_and_frequency_limit() -> None:
    lib = LIB.with_overrides(
        {"L39240:esi.pain_duration": {"min_weeks": 6}, "esi.freq.sessions_per_region": {"max_count": 6}}
    )
    facts = {**complete_facts("epidural_steroid_injection"), "pain_duration_weeks": 5}
    l39240, l36920 = lib.for_policy("L39240"), lib.for_policy("L36920")
    assert l39240 is not None and l36920 is not None
    assert run(l39240, "epidural_steroid_injection", facts)["esi.pain_duration"].result is Truth.UNMET
    assert run(l36920, "epidural_steroid_injection", facts)["esi.pain_duration"].result is Truth.MET
    five = [esi_item(d) for d in (10, 20, 30, 40, 50)]
    assert (
        run(l39240, "epidural_steroid_injection", facts, five)["esi.freq.sessions_per_region"].result
        is Truth.MET
    )


def test_override_list_param() -> None:
    lib = LIB.with_overrides(
        {"L34228:pva.fracture_etiology": {"covered_etiologies": ["osteoporotic", "myeloma"]}}
    )
    policy = lib.for_policy("L34228")
    assert policy is not None
    facts = {**complete_facts("vertebral_augmentation"), "fracture_etiology": "myeloma"}
    assert run(policy, "vertebral_augmentation", facts)["pva.fracture_etiology"].result is Truth.MET


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"esi.no_such": {"min_weeks": 6}}, "no such criterion"),
        ({"esi.pain_duration": {"min_days": 6}}, "no parameter"),
        ({"esi.pain_duration": {"min_weeks": "6"}}, "expected a number"),
        ({"esi.pain_duration": {"min_weeks": True}}, "expected a number"),
        ({"esi.freq.sessions_per_region": {"max_count": 0}}, "positive integer"),
        ({"esi.freq.sessions_per_region": {"statuses": 1}}, "no parameter"),
        ({"L34228:pva.fracture_etiology": {"covered_etiologies": ["alien"]}}, "not among the values"),
        ({"L34228:pva.fracture_etiology": {"covered_etiologies": [1]}}, "wrong type"),
        ({"L00000:esi.pain_duration": {"min_weeks": 6}}, "no such criterion"),
    ],
)
def test_override_refusals(overrides: dict[str, dict[str, Any]], needle: str) -> None:
    with pytest.raises(CriteriaLoadError, match=needle):
        LIB.with_overrides(overrides)


# -------------------------------------------------------------------------------------- facts and checklist


def test_validate_facts_paths_and_messages() -> None:
    policy = LIB.for_policy("L39240")
    assert policy is not None
    problems = dict(
        validate_facts(
            policy,
            {
                "pain_duration_weeks": True,
                "levels_this_session": 1.5,
                "bilateral": "no",
                "approach": "sideways",
                "prior_relief_percent": 150,
                "favourite_colour": "blue",
                "baseline_scale_score": float("nan"),
                "spinal_region": None,
            },
        )
    )
    assert set(problems) == {
        "clinical_facts.pain_duration_weeks",
        "clinical_facts.levels_this_session",
        "clinical_facts.bilateral",
        "clinical_facts.approach",
        "clinical_facts.prior_relief_percent",
        "clinical_facts.favourite_colour",
        "clinical_facts.baseline_scale_score",
    }
    assert "number" in problems["clinical_facts.pain_duration_weeks"]
    assert "at most 100" in problems["clinical_facts.prior_relief_percent"]


def test_dates_and_codes_are_coerced() -> None:
    from wiserpa.policy.criteria import _check_fact
    from wiserpa.policy.rules import FactSpec

    spec = FactSpec("onset", "date")
    assert _check_fact(spec, "2026-01-05") is None
    assert _check_fact(spec, dt.date(2026, 1, 5)) is None
    assert _check_fact(spec, "05/01/2026") is not None
    assert _check_fact(spec, dt.datetime(2026, 1, 5, 3)) is not None
    assert _check_fact(FactSpec("dx", "codes"), ["M54.16"]) is None
    assert _check_fact(FactSpec("dx", "codes"), "M54.16") is not None


def test_requirements_checklist_is_derived_from_the_file() -> None:
    policy = LIB.for_policy("L39240")
    assert policy is not None
    checklist = requirements(policy)
    facts = {item["name"]: item for item in checklist if item["kind"] == "fact"}
    assert set(facts) == set(policy.facts)
    duration = facts["pain_duration_weeks"]
    assert duration["field"] == "clinical_facts.pain_duration_weeks"
    assert duration["unit"] == "weeks" and duration["type"] == "number"
    assert {c["criterion_id"] for c in duration["citations"]} == {"esi.pain_duration"}
    assert all(c["policy"] == "L39240" for item in checklist for c in item["citations"])
    assert facts["spinal_region"]["citations"][0]["criterion_id"] == "esi.freq.sessions_per_region"
    docs = [item for item in checklist if item["kind"] == "document"]
    assert len(docs) == len(policy.documentation) > 0
    for item in checklist:
        assert item["citations"], item
