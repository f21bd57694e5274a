"""The packaged WISeR catalog and the requires_pa scope question."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from wiserpa.policy.catalog import Catalog, CatalogError, load_catalog

D = dt.date(2026, 6, 1)

ACTIVE = {
    "knee_arthroscopy",
    "trigeminal_neurolysis",
    "vagus_nerve_stimulation",
    "phrenic_nerve_stimulation",
    "spinal_cord_stimulation",
    "incontinence_devices",
    "sacral_nerve_stimulation",
    "penile_prosthesis",
    "vertebral_augmentation",
    "epidural_steroid_injection",
    "cervical_fusion",
    "hypoglossal_nerve_stimulation",
    "skin_substitutes",
}


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return load_catalog()


def ask(cat: Catalog, **kw: Any) -> str:
    args: dict[str, Any] = {"code": "64483", "state": "TX", "date_of_service": D, "place_of_service": "11"}
    args.update(kw)
    return cat.requires_pa(**args).reason_code


def test_default_is_cached_and_versioned(cat: Catalog) -> None:
    assert load_catalog() is cat
    assert cat.version == "2026.07.24"
    assert cat.requests_from == dt.date(2026, 1, 5)
    assert cat.services_from == dt.date(2026, 1, 15)


def test_categories(cat: Catalog) -> None:
    assert {k for k, c in cat.categories.items() if c.active} == ACTIVE
    assert cat.categories["deep_brain_stimulation"].active is False
    assert set(cat.categories["epidural_steroid_injection"].add_on_codes) == {"64480", "64484"}
    assert set(cat.categories["skin_substitutes"].add_on_codes) == {"15272", "15274", "15276", "15278"}
    assert set(cat.categories["vertebral_augmentation"].codes) == {f"2251{i}" for i in range(6)}


@pytest.mark.parametrize(
    "state,participant,prefix,jurisdiction,tz",
    [
        ("NJ", "Genzeon", "GZ", "JL", "America/New_York"),
        ("OH", "Innovaccer", "IN", "J15", "America/New_York"),
        ("OK", "Humata Health", "HU", "JH", "America/Chicago"),
        ("TX", "Cohere Health", "CH", "JH", "America/Chicago"),
        ("AZ", "Zyter|TruCare", "ZY", "JF", "America/Phoenix"),
        ("WA", "Virtix Health", "VX", "JF", "America/Los_Angeles"),
    ],
)
def test_states(cat: Catalog, state: str, participant: str, prefix: str, jurisdiction: str, tz: str) -> None:
    info = cat.state(state.lower())
    assert info is not None
    assert (info.participant, info.utn_prefix, info.jurisdiction, info.timezone) == (
        participant,
        prefix,
        jurisdiction,
        tz,
    )
    assert ask(cat, state=state) == "in_scope"


def test_non_model_state(cat: Catalog) -> None:
    assert cat.state("CA") is None
    assert ask(cat, state="CA") == "not_model_state"


@pytest.mark.parametrize(
    "category,state,expected",
    [
        ("trigeminal_neurolysis", "TX", "NCD 160.1"),
        ("knee_arthroscopy", "WA", "NCD 150.9"),
        ("epidural_steroid_injection", "AZ", "L39240"),
        ("epidural_steroid_injection", "WA", "L39240"),
        ("epidural_steroid_injection", "TX", "L36920"),
        ("epidural_steroid_injection", "NJ", "L36920"),
        ("epidural_steroid_injection", "OH", "L39015"),
        ("vertebral_augmentation", "AZ", "L34228"),
        ("vertebral_augmentation", "OH", "L38201"),
        ("vertebral_augmentation", "OK", "L35130"),
        ("cervical_fusion", "WA", "L39758"),
        ("cervical_fusion", "OH", "L39741"),
        ("cervical_fusion", "NJ", "L39793"),
        ("hypoglossal_nerve_stimulation", "OH", "L38307"),
        ("hypoglossal_nerve_stimulation", "AZ", "L38310"),
        ("hypoglossal_nerve_stimulation", "TX", "L38385"),
        ("skin_substitutes", "TX", "L35041"),
        ("skin_substitutes", "OH", "L36690"),
        ("skin_substitutes", "AZ", None),
    ],
)
def test_governing_policy(cat: Catalog, category: str, state: str, expected: str | None) -> None:
    assert cat.governing_policy(category, state) == expected


def test_lcd_confidence_recorded(cat: Catalog) -> None:
    esi = cat.categories["epidural_steroid_injection"]
    assert esi.lcd_confidence["JF"] == "high"
    assert esi.lcd_confidence["J15"] == "low"


def test_in_scope_answer_carries_policy(cat: Catalog) -> None:
    r = cat.requires_pa(code="64483", state="WA", date_of_service=D, place_of_service="22")
    assert (
        r.required and r.category == "epidural_steroid_injection" and r.policy == "L39240" and r.state == "WA"
    )
    assert "L39240" in r.reason


def test_not_wiser_code(cat: Catalog) -> None:
    assert ask(cat, code="99213") == "not_wiser_code"
    assert ask(cat, code="64633") == "not_wiser_code"  # facet RFA is not on the list


def test_postponed(cat: Catalog) -> None:
    assert ask(cat, code="61867") == "postponed"


@pytest.mark.parametrize(
    "kw,expected",
    [
        ({"date_of_service": dt.date(2026, 1, 14)}, "before_model_services"),
        ({"date_of_service": dt.date(2026, 1, 15)}, "in_scope"),
        ({"request_date": dt.date(2026, 1, 4)}, "before_model_requests"),
        ({"request_date": dt.date(2026, 1, 5)}, "in_scope"),
        ({"date_of_service": dt.date(2031, 12, 31)}, "in_scope"),
        ({"date_of_service": dt.date(2032, 1, 1)}, "after_model_end"),
    ],
)
def test_model_dates(cat: Catalog, kw: dict[str, Any], expected: str) -> None:
    assert ask(cat, **kw) == expected


def test_c_codes_effective_from(cat: Catalog) -> None:
    assert ask(cat, code="C8007", date_of_service=dt.date(2026, 4, 5), place_of_service="22") == (
        "not_yet_effective"
    )
    assert ask(cat, code="C8007", date_of_service=dt.date(2026, 4, 6), place_of_service="22") == "in_scope"
    assert ask(cat, code="c8011", date_of_service=dt.date(2026, 4, 6), place_of_service="22") == "in_scope"
    info = cat.code_info("C8007")
    assert info is not None and info.effective_from == dt.date(2026, 4, 6) and info.confirmed is False


@pytest.mark.parametrize(
    "kw,expected",
    [
        ({"emergency": True}, "excluded_emergency"),
        ({"place_of_service": "23"}, "excluded_emergency"),
        ({"revenue_code": "0450", "place_of_service": "22"}, "excluded_ed_revenue_code"),
        ({"revenue_code": "0459", "place_of_service": "22"}, "excluded_ed_revenue_code"),
        ({"revenue_code": "0360", "place_of_service": "22"}, "in_scope"),
        ({"modifiers": ["et"]}, "excluded_modifier_et"),
        ({"modifiers": ["RT"]}, "in_scope"),
        ({"place_of_service": "21"}, "excluded_inpatient"),
        ({"inpatient_only": True}, "excluded_inpatient"),
        ({"coverage": "medicare_advantage"}, "excluded_coverage_medicare_advantage"),
        ({"coverage": "va"}, "excluded_coverage_va"),
        ({"coverage": "ihs"}, "excluded_coverage_ihs"),
        ({"place_of_service": "31"}, "excluded_place_of_service"),
        ({"place_of_service": 11}, "in_scope"),
        ({"place_of_service": "12"}, "in_scope"),
        ({"place_of_service": "19"}, "in_scope"),
        ({"place_of_service": "24"}, "in_scope"),
    ],
)
def test_exclusions(cat: Catalog, kw: dict[str, Any], expected: str) -> None:
    r = cat.requires_pa(
        **{"code": "64483", "state": "TX", "date_of_service": D, "place_of_service": "11", **kw}
    )
    assert r.reason_code == expected
    assert r.required is (expected == "in_scope")
    assert r.reason


def test_unknown_coverage_is_an_error(cat: Catalog) -> None:
    with pytest.raises(ValueError):
        ask(cat, coverage="medicaid")


def test_sacral_64561_only_with_64590(cat: Catalog) -> None:
    assert ask(cat, code="64561") == "condition_not_met"
    assert ask(cat, code="64561", other_codes=["64590"]) == "in_scope"
    assert ask(cat, code="64581") == "in_scope"


def test_vns_not_with_osa(cat: Catalog) -> None:
    assert ask(cat, code="64568", diagnosis_codes=["G40.219"]) == "in_scope"
    assert ask(cat, code="64568", diagnosis_codes=["G40.219", "g47.33"]) == "condition_not_met"


def test_skin_substitutes_lower_extremity_only(cat: Catalog) -> None:
    assert ask(cat, code="15275", diagnosis_codes=["L97.412"]) == "in_scope"
    assert ask(cat, code="15275", diagnosis_codes=["E11.621", "L97.511"]) == "in_scope"
    assert ask(cat, code="15275", diagnosis_codes=["L98.411"]) == "condition_not_met"  # buttock/back ulcer
    # No diagnosis given: the safe answer is that PA is required.
    assert ask(cat, code="15275") == "in_scope"


def test_associated_codes(cat: Catalog) -> None:
    tn = {a.code: a for a in cat.associated_codes("trigeminal_neurolysis")}
    assert set(tn) == {"00222", "01991", "70450", "76000", "77002", "61790"}
    assert all(a.confirmed for a in tn.values())
    assert tn["00222"].kind == "anesthesia" and tn["70450"].kind == "imaging"
    for key in ACTIVE - {"trigeminal_neurolysis"}:
        assoc = cat.associated_codes(key)
        assert assoc, key
        assert not any(a.confirmed for a in assoc), key
    assert cat.associated_codes("nope") == []
    assert set(cat.categories_for_associated("01991")) == {
        "trigeminal_neurolysis",
        "epidural_steroid_injection",
    }
    assert cat.is_associated("00222")
    assert not cat.is_associated("00210")  # DBS anesthesia: category postponed
    assert cat.categories_for_associated("00210", include_inactive=True) == ["deep_brain_stimulation"]
    assert not cat.is_associated("64483")


def test_associated_service_answer(cat: Catalog) -> None:
    r = cat.requires_pa(code="00222", state="NJ", date_of_service=D, place_of_service="22")
    assert (r.required, r.reason_code, r.category, r.policy) == (
        False,
        "associated_service",
        "trigeminal_neurolysis",
        "NCD 160.1",
    )


def test_lookups(cat: Catalog) -> None:
    info = cat.code_info(" 64484 ")
    assert info is not None and info.add_on and info.category == "epidural_steroid_injection"
    c = cat.category_for_code("29877")
    assert c is not None and c.key == "knee_arthroscopy"
    assert cat.category_for_code("99999") is None
    phr = cat.code_info("33277")
    assert phr is not None and phr.add_on


def _packaged() -> dict[str, Any]:
    text = (Path(__file__).parents[2] / "src/wiserpa/data/catalog/wiser-2026.yaml").read_text()
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def test_bad_catalog_names_file_and_field(tmp_path: Path) -> None:
    data = _packaged()
    data["states"]["TX"]["timezone"] = "America/Nowhere"
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(CatalogError) as exc:
        load_catalog(p)
    assert "bad.yaml" in str(exc.value) and "states.TX.timezone" in str(exc.value)


def test_unknown_key_rejected(tmp_path: Path) -> None:
    data = _packaged()
    data["categories"]["knee_arthroscopy"]["codez"] = []
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(CatalogError, match=r"categories\.knee_arthroscopy\.codez"):
        load_catalog(p)


def test_duplicate_code_rejected(tmp_path: Path) -> None:
    data = _packaged()
    data["categories"]["cervical_fusion"]["codes"].append({"code": "64483"})
    p = tmp_path / "dup.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(CatalogError, match="64483"):
        load_catalog(p)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"missing\.yaml"):
        load_catalog(tmp_path / "missing.yaml")
