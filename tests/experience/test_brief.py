"""Tests for the Markdown evidence brief: structure, small-count suppression, excerpt anonymisation."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest

from wiserpa.experience.brief import EXCERPT_MAX_CHARS, SUPPRESSED, render_brief_markdown, suppress_count
from wiserpa.experience.patterns import OverRep, SeriesSpike, Spike, Theme


@pytest.mark.parametrize(
    ("n", "shown"),
    [(0, "0"), (1, SUPPRESSED), (7, SUPPRESSED), (10, SUPPRESSED), (11, "11"), (12345, "12,345")],
)
def test_suppress_count(n: int, shown: str) -> None:
    assert suppress_count(n) == shown
    assert SUPPRESSED == "1–10 (suppressed)"


def _brief(**overrides: object) -> str:
    args: dict[str, object] = {
        "title": "WISeR experience reports: Washington",
        "since": date(2026, 1, 5),
        "state": "WA",
        "generated_at": datetime(2026, 5, 20, 12, 0, tzinfo=UTC),
        "summary_counts": {
            "reports": 212,
            "delayed_care": 4,
            "by_obstacle": {"portal_outage": 57, "anesthesia_claim_denied": 9, "no_response": 0},
        },
        "spikes": [
            SeriesSpike(
                key=("Virtix Health", "portal_outage"),
                by=("participant", "obstacle"),
                week_start=date(2026, 3, 2),
                observed=23,
                expected=4.25,
                p_value=1.2e-8,
            ),
            SeriesSpike(
                key=("Virtix Health", "no_response"),
                by=("participant", "obstacle"),
                week_start=date(2026, 3, 9),
                observed=6,
                expected=0.75,
                p_value=0.0004,
            ),
        ],
        "overreps": [
            OverRep(
                participant="Virtix Health",
                share=0.31,
                others_share=0.12,
                p_value=1e-6,
                p_adjusted=6e-6,
                significant=True,
                obstacle="lost_documents",
                count=37,
                reports=120,
                test="z_test",
            ),
            OverRep(
                participant="Genzeon",
                share=0.4,
                others_share=0.1,
                p_value=0.001,
                p_adjusted=0.003,
                significant=True,
                obstacle="lost_documents",
                count=4,
                reports=10,
                test="fisher_exact",
            ),
            OverRep(
                participant="Innovaccer",
                share=0.13,
                others_share=0.14,
                p_value=0.6,
                p_adjusted=0.9,
                significant=False,
                obstacle="lost_documents",
                count=15,
                reports=115,
            ),
        ],
        "themes": [
            Theme(
                label="portal, upload, failed",
                top_terms=("portal", "upload", "failed"),
                size=44,
                member_indexes=tuple(range(44)),
            ),
            Theme(
                label="anesthesia, claim, denied",
                top_terms=("anesthesia", "claim", "denied"),
                size=3,
                member_indexes=(50, 51, 52),
            ),
        ],
        "excerpts": [
            "The portal was down for three days and we could not upload records.",
            "Mr. Smith waited 40 days; call 555-123-4567.",
            "x " * 400,
        ],
    }
    args.update(overrides)
    return render_brief_markdown(**args)  # type: ignore[arg-type]


def test_brief_structure_and_metadata() -> None:
    md = _brief()
    assert md.startswith("# WISeR experience reports: Washington\n")
    for heading in (
        "## Summary counts",
        "## Top patterns",
        "### Weekly spikes",
        "### Participants over-represented for an obstacle",
        "### Recurring themes in narratives",
        "## Excerpts from reports (anonymised)",
    ):
        assert f"\n{heading}\n" in md
    assert "Scope: WA" in md
    assert "Reports since: 2026-01-05" in md
    assert "Generated: 2026-05-20T12:00:00+00:00" in md
    assert md.endswith("\n") and not md.endswith("\n\n")
    # Deterministic: same input, same text.
    assert md == _brief()


def test_small_counts_are_suppressed_everywhere() -> None:
    md = _brief()
    assert "| Reports | 212 |" in md
    assert f"| Care delayed | {SUPPRESSED} |" in md
    assert "| Participant portal unavailable | 57 |" in md
    assert f"| Anesthesia claim denied | {SUPPRESSED} |" in md
    assert "| No response within the review timeline | 0 |" in md
    # Spike counts: 23 shown, 6 suppressed.
    assert "| Virtix Health · Participant portal unavailable | 2026-03-02 | 23 | 4.2 |" in md
    assert f"| Virtix Health · No response within the review timeline | 2026-03-09 | {SUPPRESSED} |" in md
    # Theme sizes.
    assert "**portal, upload, failed**: 44 reports" in md
    assert f"**anesthesia, claim, denied**: {SUPPRESSED} reports" in md
    # A share whose numerator is a small count is withheld, or it would give the count back.
    genzeon = next(line for line in md.splitlines() if line.startswith("| Genzeon"))
    assert "suppressed" in genzeon and "40.0%" not in genzeon
    virtix = next(line for line in md.splitlines() if line.startswith("| Virtix Health | Submitted"))
    assert "| 120 | 31.0% | 12.0% |" in virtix
    # No bare small number sits in a count column.
    for line in md.splitlines():
        assert not re.search(r"\| (?:[1-9]|10) \|", line), line


def test_only_significant_overreps_are_listed() -> None:
    md = _brief()
    assert "Innovaccer" not in md
    assert "Submitted documents lost" in md
    md_none = _brief(overreps=[], spikes=[], themes=[], excerpts=[], summary_counts={})
    assert "No participant carried" in md_none
    assert "No week stood out" in md_none
    assert "Too few narratives" in md_none
    assert "No excerpts selected." in md_none
    assert "No reports in this period." in md_none


def test_excerpts_are_anonymised_and_bounded() -> None:
    md = _brief()
    quotes = [line[2:] for line in md.splitlines() if line.startswith("> ")]
    assert len(quotes) == 3
    assert quotes[0] == "The portal was down for three days and we could not upload records."
    assert "Smith" not in md and "555-123-4567" not in md
    assert quotes[1] == "Mr. [redacted: name] waited 40 days; call [redacted: phone]."
    assert all(len(q) <= EXCERPT_MAX_CHARS for q in quotes)
    assert quotes[2].endswith("…")


def test_accepts_plain_spikes_and_mappings() -> None:
    md = _brief(
        spikes=[Spike(index=12, observed=15, expected=3.0, p_value=1e-5)],
        overreps=[
            {
                "participant": "Zyter|TruCare",
                "share": 0.5,
                "others_share": 0.2,
                "p_adjusted": 0.01,
                "significant": True,
                "obstacle": "criteria_beyond_lcd",
                "count": 30,
                "reports": 60,
            }
        ],
        state=None,
    )
    assert "| All reports | week 12 | 15 | 3.0 |" in md
    assert "| Zyter\\|TruCare | Criteria or documentation beyond the NCD/LCD | 60 | 50.0% | 20.0% |" in md
    assert "Scope: all WISeR states" in md
