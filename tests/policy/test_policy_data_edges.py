"""Policy data edges: a blank citation section and out-of-range profile parameters refuse to load."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.policy.test_criteria_loader import base_doc, refused
from wiserpa.policy.clock import due_time
from wiserpa.policy.profiles import ProfileError, calendar_for, load_profile, timeline_for


@pytest.mark.parametrize("where", ["criteria", "frequency_limits"])
def test_blank_citation_section_refuses_to_load(tmp_path: Path, where: str) -> None:
    """A section of only spaces is no citation: the loader names the item and the field."""
    doc = base_doc()
    item = doc[where][0]
    item["citation"]["section"] = "   "
    refused(tmp_path, doc, f"'{item['id']}'", "citation.section", "blank")


OUT_OF_RANGE = [
    ("timelines:\n  standard: {amount: .inf, unit: hours}\n", "timelines.standard.amount"),
    ("timelines:\n  standard: {amount: 1.0e12, unit: hours}\n", "timelines.standard"),
    ("timelines:\n  expedited: {amount: 10000000, unit: business_days}\n", "timelines.expedited"),
    ("timelines:\n  affirmation_validity_days: 10000000\n", "timelines.affirmation_validity_days"),
    ("penalties:\n  per_miss_usd: .inf\n", "penalties.per_miss_usd"),
    ("gold_card:\n  lookback_days: 100000000\n", "gold_card.lookback_days"),
]


@pytest.mark.parametrize(("yaml_text", "field"), OUT_OF_RANGE, ids=[f for _, f in OUT_OF_RANGE])
def test_out_of_range_parameter_refuses_to_load(tmp_path: Path, yaml_text: str, field: str) -> None:
    """A value that would make every submission fail (500) later is refused when the profile loads."""
    f = tmp_path / "wild.yaml"
    f.write_text("id: wild\nversion: '1'\ntitle: Wild\nextends: asa-reform\n" + yaml_text)
    with pytest.raises(ProfileError) as exc:
        load_profile(f)
    assert "wild.yaml" in str(exc.value) and f"'{field}'" in str(exc.value), str(exc.value)


def test_longest_allowed_timeline_still_computes_a_due_time(tmp_path: Path) -> None:
    """A one-year limit loads and gives a due time a year on, so the bound refuses only the unusable."""
    f = tmp_path / "slow.yaml"
    f.write_text(
        "id: slow\nversion: '1'\ntitle: Slow\nextends: asa-reform\n"
        "timelines:\n  standard: {amount: 366, unit: calendar_days}\n"
    )
    profile = load_profile(f)
    start = dt.datetime(2026, 3, 2, 16, tzinfo=dt.UTC)
    due = due_time(
        start, timeline_for(profile, "standard", "portal"), calendar_for(profile, "America/Chicago")
    )
    assert dt.date(2027, 3, 1) <= due.date() <= dt.date(2027, 3, 5)
