"""Policy profiles: loading, inheritance, validation and their use with the clock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from wiserpa.policy.clock import Duration
from wiserpa.policy.profiles import (
    PolicyProfile,
    ProfileError,
    calendar_for,
    clock_start,
    list_profiles,
    load_profile,
    timeline_for,
)

UTC = dt.UTC


def test_packaged_profiles_listed() -> None:
    assert {"wiser-2026", "asa-reform"} <= set(list_profiles())


def test_wiser_2026() -> None:
    p = load_profile("wiser-2026")
    assert p.id == "wiser-2026" and p.extends is None
    assert timeline_for(p, "standard", "portal") == Duration(72, "hours")
    assert timeline_for(p, "expedited", "portal") == Duration(48, "hours")
    assert p.timelines.mac_forwarded_clock_start == "participant_receipt"
    assert p.timelines.affirmation_validity_days == 120
    assert not p.exemptions.enabled
    assert not p.deemed_approval.enabled
    assert not p.gold_card.enabled
    assert not p.penalties.enforced and p.penalties.per_miss_usd == 500
    assert not p.claims.associated_payable_when_primary_deemed_or_exempt
    assert not p.prepayment_review.deemed_payable_on_miss


def test_asa_reform_extends_wiser() -> None:
    p = load_profile("asa-reform")
    base = load_profile("wiser-2026")
    assert p.id == "asa-reform" and p.extends == "wiser-2026"
    assert p.timelines.standard == base.timelines.standard
    assert p.timelines.expedited == base.timelines.expedited
    assert p.timelines.mac_forwarded_clock_start == "mac_receipt"
    assert p.exemptions.enabled and p.exemptions.code_sets["acute_pain"] == ["G8911", "G8912", "G8918"]
    assert p.exemptions.code_sets["palliative"] == ["Z515"]
    assert p.deemed_approval.enabled and p.deemed_approval.includes_associated_services
    assert p.gold_card.enabled and p.gold_card.min_affirmation_rate == 0.90 and p.gold_card.min_requests == 5
    assert p.penalties.enforced and p.penalties.max_per_miss_usd == 10_000
    assert p.claims.associated_payable_when_primary_deemed_or_exempt
    # Sources merge: inherited entries stay, overridden ones change.
    assert p.timelines.sources["standard"] == base.timelines.sources["standard"]
    assert p.timelines.sources["mac_forwarded_clock_start"].startswith("S21")


def test_every_parameter_has_a_source() -> None:
    for name in ("wiser-2026", "asa-reform"):
        p = load_profile(name)
        for section in (
            p.timelines,
            p.deemed_approval,
            p.penalties,
            p.exemptions,
            p.gold_card,
            p.support,
            p.prepayment_review,
            p.claims,
            p.compensation,
        ):
            missing = set(type(section).model_fields) - {"sources"} - set(section.sources)
            assert not missing, (name, type(section).__name__, missing)


def test_load_by_path_and_override(tmp_path: Path) -> None:
    f = tmp_path / "strict.yaml"
    f.write_text(
        "id: strict\nversion: '1'\ntitle: Strict\nextends: asa-reform\n"
        "timelines:\n  standard: {amount: 3, unit: business_days}\n"
        "gold_card:\n  min_affirmation_rate: 0.95\n"
    )
    p = load_profile(f)
    assert p.timelines.standard.to_duration() == Duration(3, "business_days")
    assert p.timelines.expedited.to_duration() == Duration(48, "hours")  # from wiser-2026 via asa-reform
    assert p.gold_card.min_affirmation_rate == 0.95 and p.gold_card.enabled
    assert load_profile("strict", extra_dirs=[tmp_path]) == p
    assert "strict" in list_profiles(extra_dirs=[tmp_path])


def test_extra_dir_profile_can_shadow_packaged_one(tmp_path: Path) -> None:
    (tmp_path / "wiser-2026.yaml").write_text("id: wiser-2026\nversion: 'x'\ntitle: Local copy\n")
    assert load_profile("wiser-2026", extra_dirs=[tmp_path]).title == "Local copy"


def test_bad_field_is_named(tmp_path: Path) -> None:
    f = tmp_path / "typo.yaml"
    f.write_text(
        "id: typo\nversion: '1'\ntitle: T\nextends: wiser-2026\ngold_card:\n  min_affirmaton_rate: 0.8\n"
    )
    with pytest.raises(ProfileError) as exc:
        load_profile(f)
    assert "typo.yaml" in str(exc.value) and "gold_card.min_affirmaton_rate" in str(exc.value)


def test_bad_value_is_named(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("id: bad\nversion: '1'\ntitle: T\ntimelines:\n  standard: {amount: 3, unit: fortnights}\n")
    with pytest.raises(ProfileError, match=r"timelines\.standard\.unit"):
        load_profile(f)


def test_source_for_unknown_parameter_rejected(tmp_path: Path) -> None:
    f = tmp_path / "src.yaml"
    f.write_text("id: src\nversion: '1'\ntitle: T\npenalties:\n  sources: {per_mis_usd: S1}\n")
    with pytest.raises(ProfileError, match="per_mis_usd"):
        load_profile(f)


def test_circular_extends_rejected(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("id: a\nversion: '1'\ntitle: A\nextends: b\n")
    (tmp_path / "b.yaml").write_text("id: b\nversion: '1'\ntitle: B\nextends: a\n")
    with pytest.raises(ProfileError, match="circular"):
        load_profile("a", extra_dirs=[tmp_path])
    (tmp_path / "self.yaml").write_text("id: self\nversion: '1'\ntitle: S\nextends: self\n")
    with pytest.raises(ProfileError, match="circular"):
        load_profile("self", extra_dirs=[tmp_path])


def test_missing_parent_and_profile(tmp_path: Path) -> None:
    f = tmp_path / "orphan.yaml"
    f.write_text("id: orphan\nversion: '1'\ntitle: O\nextends: nowhere\n")
    with pytest.raises(ProfileError, match=r"orphan\.yaml.*extends"):
        load_profile(f)
    with pytest.raises(ProfileError, match="not found"):
        load_profile("no-such-profile")


def test_timeline_for_channels() -> None:
    p = load_profile("wiser-2026")
    assert timeline_for(p, "standard", "mac_forwarded") == p.timelines.mac_forwarded.to_duration()
    assert timeline_for(p, "expedited", "mac_forwarded") == Duration(48, "hours")
    with pytest.raises(ValueError):
        timeline_for(p, "urgent", "portal")


def test_clock_start() -> None:
    mac = dt.datetime(2026, 6, 1, 9, tzinfo=UTC)
    got = dt.datetime(2026, 6, 3, 9, tzinfo=UTC)
    wiser, reform = load_profile("wiser-2026"), load_profile("asa-reform")
    assert clock_start(wiser, "mac_forwarded", got, mac) == got
    assert clock_start(reform, "mac_forwarded", got, mac) == mac
    assert clock_start(reform, "portal", got, mac) == got
    assert clock_start(reform, "mac_forwarded", got, None) == got


def test_calendar_for() -> None:
    p = PolicyProfile.model_validate(
        {"id": "x", "version": "1", "title": "X", "timelines": {"business_day_start": "09:00"}}
    )
    cal = calendar_for(p, "America/Phoenix")
    assert cal.day_start == dt.time(9) and cal.day_end == dt.time(17) and cal.timezone == "America/Phoenix"


def test_business_hours_order_validated(tmp_path: Path) -> None:
    f = tmp_path / "hours.yaml"
    f.write_text("id: hours\nversion: '1'\ntitle: H\ntimelines: {business_day_start: '18:00'}\n")
    with pytest.raises(ProfileError, match="business_day_start"):
        load_profile(f)


def test_model_defaults_equal_wiser_2026() -> None:
    w = load_profile("wiser-2026")
    d = PolicyProfile(id="x", version="1", title="X")
    for section in PolicyProfile.model_fields:
        if section in {"id", "version", "title", "description", "extends", "criteria_overrides"}:
            continue
        ours = getattr(w, section).model_dump(exclude={"sources"})
        assert ours == getattr(d, section).model_dump(exclude={"sources"}), section
