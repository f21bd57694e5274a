"""CSV and JSON downloads of the public report: one stable, documented schema (docs/reporting.md §5).

Both are built from a ``PublicReport`` (published values only). CSV: one row per participant (and "All
participants") per period; a suppressed count or figure is ``S``, a measure not published at that grain
(year-only measures in monthly rows) is empty. JSON: the same rows, ``null`` for both, plus the list of
suppressed columns per row.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from wiserpa.reporting.metrics import URGENCIES
from wiserpa.reporting.service import MEASURES, MONTHLY, SCHEMA_VERSION, STAT_NAMES, PublicReport

__all__ = ["COLUMNS", "SUPPRESSED", "schema", "to_csv", "to_json"]

SUPPRESSED = "S"
KEY_COLUMNS = ("participant", "state", "period", "grain")
COLUMNS: tuple[str, ...] = (*KEY_COLUMNS, *MEASURES, *STAT_NAMES)
# The count each statistic is computed over (its grains are that count's grains).
STAT_POPULATION: dict[str, str] = {
    **dict.fromkeys(
        ("pct_decided_within_timeline", "pct_affirmed", "pct_non_affirmed", "pct_deemed", "penalty_usd"),
        "requests",
    ),
    **{f"{k}_{u}": f"urgency.{u}" for u in URGENCIES for k in ("mean_hours", "median_hours", "p90_hours")},
    **dict.fromkeys(
        ("pct_claim_denials_appealed", "pct_claim_denials_overturned", "averted_usd", "overturned_usd"),
        "claim_denials",
    ),
    "pct_support_sla_met": "support_cycles",
}


def _cell(report: PublicReport, row: dict[str, Any], col: str) -> tuple[Any, bool]:
    """(value, suppressed) of one column of one row."""
    value = row[col]
    if col in KEY_COLUMNS:
        return value, False
    if col in MEASURES:
        applicable = row["grain"] == "year" or col in MONTHLY
        return value, applicable and value is None
    # A statistic is published at the grains of the count it is computed over; there, a missing value is
    # "suppressed" unless that count is a published 0 (nothing to compute). A hidden count hides it too.
    population = STAT_POPULATION.get(col, "requests")
    applicable = row["grain"] == "year" or population in MONTHLY
    return value, applicable and value is None and (row[population] is None or row[population] > 0)


def to_csv(report: PublicReport, grain: str | None = None) -> str:
    """The report as CSV text (header row first; ``S`` = suppressed)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for row in report.rows(grain):
        out = []
        for col in COLUMNS:
            value, hidden = _cell(report, row, col)
            out.append(SUPPRESSED if hidden else ("" if value is None else value))
        w.writerow(out)
    return buf.getvalue()


def to_json(report: PublicReport, grain: str | None = None) -> dict[str, Any]:
    """The report as a JSON-ready document."""
    rows = []
    for row in report.rows(grain):
        item = {col: row[col] for col in COLUMNS}
        item["suppressed"] = [col for col in COLUMNS if _cell(report, row, col)[1]]
        rows.append(item)
    return {
        "schema_version": SCHEMA_VERSION,
        "as_of": report.as_of.isoformat().replace("+00:00", "Z"),
        "profile": {"id": report.profile_id, "version": report.profile_version},
        "grain": grain or "all",
        "suppression": "CMS cell-size policy: no count of 1-10 is published or derivable (docs/reporting.md)",
        "columns": list(COLUMNS),
        "rows": rows,
    }


def schema() -> dict[str, Any]:
    """Column documentation for the downloads and the API."""
    return {
        "schema_version": SCHEMA_VERSION,
        "key_columns": list(KEY_COLUMNS),
        "count_columns": list(MEASURES),
        "monthly_count_columns": [c for c in MEASURES if c in MONTHLY],
        "year_only_count_columns": [c for c in MEASURES if c not in MONTHLY],
        "statistic_columns": list(STAT_NAMES),
        "suppressed_marker_csv": SUPPRESSED,
    }
