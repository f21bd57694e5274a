"""The criteria loader refuses anything that is not cited to the file's own NCD/LCD or not well typed (R6)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from wiserpa.policy.criteria import CriteriaLoadError, load_criteria
from wiserpa.policy.examples import COMPLETE_FACTS

ACTIVE_CATEGORIES = {
    "knee_arthroscopy",
    "trigeminal_neurolysis",
    "spinal_cord_stimulation",
    "vagus_nerve_stimulation",
    "phrenic_nerve_stimulation",
    "penile_prosthesis",
    "incontinence_devices",
    "sacral_nerve_stimulation",
    "epidural_steroid_injection",
    "vertebral_augmentation",
    "cervical_fusion",
    "hypoglossal_nerve_stimulation",
    "skin_substitutes",
}

EXPECTED_POLICIES = {
    "NCD 150.9", "NCD 160.1", "NCD 160.7", "NCD 160.18", "NCD 160.19",
    "NCD 230.4", "NCD 230.10", "NCD 230.18",
    "L39240", "L36920", "L39015", "L34228", "L38201", "L35130", "L39758", "L39741", "L39793",
    "L38307", "L38310", "L38385", "L35041", "L36690",
}  # fmt: skip


def base_doc() -> dict[str, Any]:
    return yaml.safe_load(
        textwrap.dedent(
            """
            policy:
              id: L39240
              kind: LCD
              title: Test ESI
              contractor: Test MAC
              jurisdictions: [JF]
              categories: [epidural_steroid_injection]
              url: https://example.invalid
              attribution_confidence: high
              version: "1"
            facts:
              pain_duration_weeks: {type: number, unit: weeks, label: Pain duration}
              spinal_region: {type: enum, values: [cervical, lumbar], label: Region}
            criteria:
              - id: esi.pain_duration
                statement: Pain for at least 4 weeks.
                citation: {policy: L39240, section: Indications}
                facts: [pain_duration_weeks]
                rule: pain_duration_weeks >= min_weeks
                params: {min_weeks: 4}
                confidence: confirmed
                satisfies_hint: Document 4 weeks of pain.
            frequency_limits:
              - id: esi.freq.sessions
                statement: 4 per region per year.
                citation: {policy: L39240, section: Limitations}
                max_count: 4
                window_days: 365
                match_facts: [spinal_region]
                confidence: confirmed
                satisfies_hint: Wait.
            documentation:
              - text: Baseline scale.
                citation: {policy: L39240, section: Documentation Requirements}
            """
        )
    )


def write(tmp_path: Path, doc: dict[str, Any], name: str = "lcd-L39240.yaml") -> Path:
    (tmp_path / name).write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return tmp_path


def refused(tmp_path: Path, doc: dict[str, Any], *needles: str, name: str = "lcd-L39240.yaml") -> str:
    with pytest.raises(CriteriaLoadError) as info:
        load_criteria(write(tmp_path, doc, name))
    message = str(info.value)
    assert name in message
    for needle in needles:
        assert needle in message, message
    return message


def test_base_doc_loads(tmp_path: Path) -> None:
    lib = load_criteria(write(tmp_path, base_doc()))
    policy = lib.for_policy("L39240")
    assert policy is not None
    assert policy.source_file == "lcd-L39240.yaml"
    assert [c.id for c in policy.criteria] == ["esi.pain_duration"]


def test_missing_citation(tmp_path: Path) -> None:
    doc = base_doc()
    del doc["criteria"][0]["citation"]
    refused(tmp_path, doc, "esi.pain_duration", "no citation")


@pytest.mark.parametrize("policy", ["Cedars rubric", "L3924", "A58993", "NCD", "ncd 160.7", "L39240; L36920"])
def test_citation_not_an_ncd_or_lcd(tmp_path: Path, policy: str) -> None:
    doc = base_doc()
    doc["criteria"][0]["citation"]["policy"] = policy
    refused(tmp_path, doc, "esi.pain_duration", "not an NCD")


def test_citation_of_another_policy(tmp_path: Path) -> None:
    doc = base_doc()
    doc["criteria"][0]["citation"]["policy"] = "L36920"
    refused(tmp_path, doc, "esi.pain_duration", "not this file's policy")


def test_frequency_limit_and_documentation_need_citations(tmp_path: Path) -> None:
    doc = base_doc()
    del doc["frequency_limits"][0]["citation"]
    refused(tmp_path, doc, "esi.freq.sessions", "no citation")
    doc = base_doc()
    doc["documentation"][0]["citation"]["policy"] = "NCD 160.7"
    refused(tmp_path, doc, "documentation item", "not this file's policy")


def test_rule_with_undeclared_fact(tmp_path: Path) -> None:
    doc = base_doc()
    doc["criteria"][0]["rule"] = "pain_duration_weeks >= min_weeks and conservative_care_weeks >= 4"
    refused(tmp_path, doc, "esi.pain_duration", "undeclared", "conservative_care_weeks")


def test_rule_with_undeclared_param(tmp_path: Path) -> None:
    doc = base_doc()
    doc["criteria"][0]["rule"] = "pain_duration_weeks >= min_week"
    refused(tmp_path, doc, "esi.pain_duration", "undeclared", "min_week")


def test_fact_of_wrong_type_for_its_use(tmp_path: Path) -> None:
    doc = base_doc()
    doc["criteria"][0]["rule"] = "spinal_region >= min_weeks"
    refused(tmp_path, doc, "esi.pain_duration", "cannot compare")
    doc = base_doc()
    doc["criteria"][0]["rule"] = "spinal_region == 'thoracic' or pain_duration_weeks >= min_weeks"
    refused(tmp_path, doc, "esi.pain_duration", "not one of the values")


def test_unsafe_rule_syntax(tmp_path: Path) -> None:
    doc = base_doc()
    doc["criteria"][0]["rule"] = "__import__('os').system('echo hi') == 0"
    refused(tmp_path, doc, "esi.pain_duration", "not allowed")


@pytest.mark.parametrize(
    ("where", "needle"),
    [("top", "surprise"), ("policy", "surprise"), ("criterion", "esi.pain_duration"), ("fact", "surprise")],
)
def test_unknown_keys(tmp_path: Path, where: str, needle: str) -> None:
    doc = base_doc()
    target = {
        "top": doc,
        "policy": doc["policy"],
        "criterion": doc["criteria"][0],
        "fact": doc["facts"]["pain_duration_weeks"],
    }[where]
    target["surprise"] = 1
    refused(tmp_path, doc, needle, "Extra inputs")


def test_duplicate_criterion_ids(tmp_path: Path) -> None:
    doc = base_doc()
    doc["criteria"].append(dict(doc["criteria"][0]))
    refused(tmp_path, doc, "duplicate", "esi.pain_duration")
    doc = base_doc()
    doc["frequency_limits"][0]["id"] = "esi.pain_duration"
    refused(tmp_path, doc, "duplicate", "esi.pain_duration")


def test_duplicate_policy_across_files(tmp_path: Path) -> None:
    write(tmp_path, base_doc())
    write(tmp_path, base_doc(), "lcd-L39240.yml")
    with pytest.raises(CriteriaLoadError, match="already defined"):
        load_criteria(tmp_path)


def test_facts_list_must_match_rule(tmp_path: Path) -> None:
    doc = base_doc()
    doc["criteria"][0]["facts"] = ["pain_duration_weeks", "spinal_region"]
    refused(tmp_path, doc, "esi.pain_duration", "differ")


def test_orphan_fact_is_documentation_beyond_policy(tmp_path: Path) -> None:
    doc = base_doc()
    doc["facts"]["favourite_colour"] = {"type": "string", "label": "Colour"}
    refused(tmp_path, doc, "favourite_colour", "no criterion")


def test_numeric_fact_needs_unit(tmp_path: Path) -> None:
    doc = base_doc()
    del doc["facts"]["pain_duration_weeks"]["unit"]
    refused(tmp_path, doc, "pain_duration_weeks", "unit")


def test_unused_param_and_bad_confidence(tmp_path: Path) -> None:
    doc = base_doc()
    doc["criteria"][0]["params"]["spare"] = 3
    refused(tmp_path, doc, "esi.pain_duration", "not used")
    doc = base_doc()
    doc["criteria"][0]["confidence"] = "probably"
    refused(tmp_path, doc, "esi.pain_duration", "confidence")


def test_file_name_must_match_policy(tmp_path: Path) -> None:
    refused(tmp_path, base_doc(), "must be named", name="lcd-L00000.yaml")


def test_frequency_limit_match_fact_declared(tmp_path: Path) -> None:
    doc = base_doc()
    doc["frequency_limits"][0]["match_facts"] = ["wound_id"]
    refused(tmp_path, doc, "esi.freq.sessions", "wound_id")


def test_bad_yaml(tmp_path: Path) -> None:
    (tmp_path / "lcd-L39240.yaml").write_text("policy: [unclosed", encoding="utf-8")
    with pytest.raises(CriteriaLoadError, match=r"lcd-L39240\.yaml"):
        load_criteria(tmp_path)


# ---------------------------------------------------------------------------------------------- packaged data


def test_packaged_library_covers_every_category_and_policy() -> None:
    lib = load_criteria()
    assert set(lib.policies) == EXPECTED_POLICIES
    covered = {c for p in lib.policies.values() for c in p.categories}
    assert covered == ACTIVE_CATEGORIES == set(COMPLETE_FACTS)
    assert load_criteria() is lib  # cached


def test_every_packaged_item_cites_its_own_policy() -> None:
    lib = load_criteria()
    for policy, item in lib.all_criteria():
        assert item.citation.policy == policy.policy_id
        assert item.citation.section
        assert item.satisfies_hint
        if item.confidence == "unconfirmed":
            assert item.note, f"{policy.policy_id} {item.id}: unconfirmed without a note"
    for policy in lib.policies.values():
        for doc in policy.documentation:
            assert doc.citation.policy == policy.policy_id
        for spec in policy.facts.values():
            assert spec.label
            if spec.type in ("number", "integer"):
                assert spec.unit


def test_frequency_limits_as_specified() -> None:
    lib = load_criteria()
    for pid in ("L39240", "L36920", "L39015"):
        policy = lib.for_policy(pid)
        assert policy is not None
        (lim,) = policy.frequency_limits
        assert (lim.max_count, lim.window_days, lim.match_facts) == (4, 365, ("spinal_region",))
    for pid in ("L35041", "L36690"):
        policy = lib.for_policy(pid)
        assert policy is not None
        (lim,) = policy.frequency_limits
        assert (lim.max_count, lim.window_days, lim.match_facts) == (10, 84, ("wound_id",))


def test_unconfirmed_markers_where_the_reference_has_them() -> None:
    lib = load_criteria()

    def conf(pid: str, cid: str) -> str:
        policy = lib.for_policy(pid)
        assert policy is not None
        return next(c.confidence for c in policy.criteria if c.id == cid)

    assert conf("L39240", "esi.repeat_requires_benefit") == "unconfirmed"
    assert conf("L39240", "esi.pain_duration") == "confirmed"
    assert conf("L39015", "esi.pain_duration") == "unconfirmed"  # sibling text not retrieved
    assert conf("NCD 160.7", "scs.trial_success") == "unconfirmed"
    assert conf("L38307", "hgns.cpap") == "unconfirmed"
    assert conf("NCD 150.9", "knee.debridement_pain_only_or_severe") == "unconfirmed"
    assert conf("L35041", "skin.failed_conservative_care") == "unconfirmed"
    assert conf("L36690", "skin.perfusion") == "unconfirmed"
    assert conf("NCD 230.4", "ed.reasonable_necessary") == "unconfirmed"
    assert conf("L39741", "cfusion.conservative_exceptions") == "unconfirmed"
    assert conf("L39793", "cfusion.root_impingement") == "unconfirmed"


def test_docs_criteria_table_is_current() -> None:
    """docs/policy.md carries the generated table of every criterion; regenerate it when criteria change."""
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("criteria_table", root / "scripts" / "criteria_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    doc = (root / "docs" / "policy.md").read_text(encoding="utf-8")
    assert module.table() in doc, "run: python scripts/criteria_table.py --update docs/policy.md"
