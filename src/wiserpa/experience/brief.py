"""Render an evidence brief (Markdown) from experience-report patterns, for a letter to CMS (R9).

The brief may be published, so it follows the project's small-count rule (as in the public reports, R8):
every count from 1 to 10 is shown as "1–10 (suppressed)", and a share whose numerator is such a count is
withheld too (a share beside its denominator would give the count back). Excerpts are cut to 300
characters and any identifier the PHI scanner still finds is replaced by a visible ``[redacted: kind]``
marker (intake already rejects such narratives; this is the second line of defence, never silent).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from wiserpa.experience.phi import find_identifiers
from wiserpa.experience.taxonomy import humanize
from wiserpa.reporting.suppression import suppress_counts

__all__ = ["EXCERPT_MAX_CHARS", "SUPPRESSED", "render_brief_markdown", "suppress_count"]

EXCERPT_MAX_CHARS = 300
SUPPRESSED = "1–10 (suppressed)"
_SMALL_MAX = 10


def suppress_count(n: int) -> str:
    """Format a count for publication: 1–10 becomes "1–10 (suppressed)", others print as integers."""
    return SUPPRESSED if 1 <= n <= _SMALL_MAX else f"{n:,}"


def _field(item: Any, name: str, default: Any = None) -> Any:
    """Read ``name`` from a dataclass-like object or a mapping, so callers may pass either."""
    if isinstance(item, Mapping):
        return item.get(name, default)
    return getattr(item, name, default)


def _cell(value: object) -> str:
    """Make a value safe inside a Markdown table cell."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _iso(value: date | datetime | str) -> str:
    """ISO text for dates and datetimes; strings pass through."""
    return value.isoformat() if isinstance(value, date) else str(value)


def _pct(x: float) -> str:
    """Percentage with one decimal."""
    return f"{100 * x:.1f}%"


def _pval(p: float) -> str:
    """Compact p-value: tiny values in scientific notation."""
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def _share(share: float, count: int | None) -> str:
    """A share, withheld when its numerator is a small count."""
    if count is not None and 1 <= count <= _SMALL_MAX:
        return "suppressed"
    return _pct(share)


def _label(value: str) -> str:
    """Taxonomy label for a value, else the value with underscores spaced and a capital first letter."""
    label = humanize(value)
    if label == value:
        label = value.replace("_", " ")
        label = label[:1].upper() + label[1:]
    return label


def _series_label(spike: Any) -> str:
    """Human label for the series a spike belongs to."""
    key = _field(spike, "key")
    if key is None:
        key = _field(spike, "label", _field(spike, "series", "all reports"))
    if isinstance(key, str):
        return _label(key)
    parts = [_label(str(k)) for k in key]
    return " · ".join(parts) if parts else "all reports"


def _anonymise_excerpt(text: str) -> str:
    """Single-line excerpt of at most 300 characters with any detected identifier visibly redacted."""
    flat = " ".join(text.split())
    # Redact right to left so earlier spans keep their offsets.
    for f in sorted(find_identifiers(flat), key=lambda f: f.start, reverse=True):
        flat = f"{flat[: f.start]}[redacted: {f.kind}]{flat[f.end :]}"
    if len(flat) <= EXCERPT_MAX_CHARS:
        return flat
    cut = flat[: EXCERPT_MAX_CHARS - 1]
    # Prefer ending on a word boundary when one is reasonably close.
    space = cut.rfind(" ")
    if space >= EXCERPT_MAX_CHARS - 40:
        cut = cut[:space]
    return cut.rstrip() + "…"


def _partition_counts(counts: Mapping[str, int], total: object) -> dict[str, str]:
    """Format a breakdown of the published report total, hiding what subtraction from the total would reveal.

    When the counts add up to the published total (each report counted once: by participant, by impact), a lone
    small count could be worked out as the total minus the others, so complementary suppression
    (``reporting.suppression``, as in the public reports) hides more; a count hidden only for that reason is
    shown as ``suppressed``. Breakdowns where a report may count more than once (obstacles) have no such total.
    """
    if isinstance(total, int) and not isinstance(total, bool) and sum(counts.values()) == total:
        published = suppress_counts(dict(counts), threshold_low=1, threshold_high=_SMALL_MAX)
        return {
            k: (f"{v:,}" if v is not None else SUPPRESSED if 1 <= counts[k] <= _SMALL_MAX else "suppressed")
            for k, v in published.items()
        }
    return {k: suppress_count(v) for k, v in counts.items()}


def _summary_lines(summary_counts: Mapping[str, Any]) -> list[str]:
    """Summary table; nested mappings become their own small tables."""
    lines: list[str] = []
    flat = [(k, v) for k, v in summary_counts.items() if not isinstance(v, Mapping)]
    nested = [(k, v) for k, v in summary_counts.items() if isinstance(v, Mapping)]
    if flat:
        lines += ["| Measure | Reports |", "|---|---:|"]
        lines += [f"| {_cell(_label(str(k)))} | {suppress_count(int(v))} |" for k, v in flat]
        lines.append("")
    total = summary_counts.get("reports")
    for heading, table in nested:
        lines += [f"**{_cell(_label(str(heading)))}**", "", "| Value | Reports |", "|---|---:|"]
        rows = sorted(table.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
        shown = _partition_counts({k: int(v) for k, v in rows}, total)
        lines += [f"| {_cell(_label(str(k)))} | {shown[k]} |" for k, _v in rows]
        lines.append("")
    if not lines:
        lines = ["No reports in this period.", ""]
    return lines


def render_brief_markdown(
    *,
    title: str,
    since: date | str,
    state: str | None,
    generated_at: datetime | str,
    summary_counts: Mapping[str, Any],
    spikes: Sequence[Any],
    overreps: Sequence[Any],
    themes: Sequence[Any],
    excerpts: Sequence[str],
) -> str:
    """Render the evidence brief as Markdown with small counts suppressed and excerpts anonymised."""
    out: list[str] = [f"# {title.strip()}", ""]
    out.append(f"- Scope: {state if state else 'all WISeR states'}")
    out.append(f"- Reports since: {_iso(since)}")
    out.append(f"- Generated: {_iso(generated_at)}")
    out.append("- Counts from 1 to 10 are shown as “1–10 (suppressed)”; no patient data is included.")
    out += ["", "## Summary counts", ""]
    out += _summary_lines(summary_counts)

    out += ["## Top patterns", "", "### Weekly spikes", ""]
    if spikes:
        out += ["| Series | Week of | Reports | Expected | p-value |", "|---|---|---:|---:|---:|"]
        for s in spikes:
            week = _field(s, "week_start")
            # A bare Spike only knows its position in the series, so say which week number it was.
            when = _iso(week) if isinstance(week, date) else f"week {_field(s, 'index', '?')}"
            out.append(
                f"| {_cell(_series_label(s))} | {_cell(when)} "
                f"| {suppress_count(int(_field(s, 'observed', 0)))} "
                f"| {float(_field(s, 'expected', 0.0)):.1f} "
                f"| {_pval(float(_field(s, 'p_value', 1.0)))} |"
            )
        out += [
            "",
            "A spike is a week whose count is improbable under a Poisson model with the series' "
            "own trailing 8-week mean (one-sided, p < 0.01).",
            "",
        ]
    else:
        out += ["No week stood out against its series' own baseline.", ""]

    out += ["### Participants over-represented for an obstacle", ""]
    flagged = [o for o in overreps if _field(o, "significant", False)]
    if flagged:
        out += [
            "| Participant | Obstacle | Reports | Share with obstacle | Other participants | Adjusted p |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for o in flagged:
            count = _field(o, "count")
            reports = _field(o, "reports")
            out.append(
                f"| {_cell(_field(o, 'participant', ''))} | {_cell(_label(str(_field(o, 'obstacle', '—'))))} "
                f"| {suppress_count(int(reports)) if reports is not None else '—'} "
                f"| {_share(float(_field(o, 'share', 0.0)), count)} "
                # The pooled others' share times their published report count is a count too.
                f"| {_share(float(_field(o, 'others_share', 0.0)), _field(o, 'others_count'))} "
                f"| {_pval(float(_field(o, 'p_adjusted', 1.0)))} |"
            )
        out += [
            "",
            "Each participant's share is tested against all other participants pooled (one-sided "
            "z-test or Fisher exact test), adjusted for multiple comparisons.",
            "",
        ]
    else:
        out += ["No participant carried a significantly larger share of any reported obstacle.", ""]

    out += ["### Recurring themes in narratives", ""]
    if themes:
        for t in themes:
            out.append(
                f"- **{_cell(_field(t, 'label', ''))}**: {suppress_count(int(_field(t, 'size', 0)))} reports"
            )
        out.append("")
    else:
        out += ["Too few narratives to identify themes.", ""]

    out += ["## Excerpts from reports (anonymised)", ""]
    cleaned = [_anonymise_excerpt(e) for e in excerpts if e and e.strip()]
    if cleaned:
        for e in cleaned:
            out += [f"> {e}", ""]
    else:
        out += ["No excerpts selected.", ""]
    return "\n".join(out).rstrip("\n") + "\n"
