"""The download schema's markers: ``S`` = suppressed, empty = not published at this grain (docs/reporting.md §5)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.factories import body
from wiserpa.reporting import service


def test_csv_marks_suppressed_statistics_s_and_year_only_ones_empty_in_month_rows(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    """A share of a hidden count reads S; a year-only figure in a month row reads empty."""
    service.clear_cache()
    for state, n in (("TX", 20), ("WA", 12), ("OH", 3)):
        provider = make_actor("provider", state=state)
        for seed in range(n):
            sent = client.post(
                "/api/v1/requests", json=body(state=state, seed=seed), headers=provider.headers
            )
            assert sent.status_code == 201, sent.text
    rows = list(csv.DictReader(io.StringIO(client.get("/public/data/metrics.csv").text)))
    doc = client.get("/public/data/metrics.json").json()
    months = [r for r in rows if r["grain"] == "month" and r["state"] != "ALL"]
    hidden = [r for r in months if r["requests"] == "S"]
    shown = [r for r in months if r["requests"] not in ("S", "0")]
    assert {r["state"] for r in hidden} >= {"OH"} and shown

    # A share of a hidden count is itself suppressed ("S"), not "not published at this grain" (empty).
    for r in hidden:
        assert r["pct_affirmed"] == "S" and r["pct_decided_within_timeline"] == "S", r["state"]
    # Claims and support figures are published per year only: empty in every month row, never "S".
    for r in months:
        for col in ("pct_support_sla_met", "pct_claim_denials_appealed", "averted_usd"):
            assert r[col] == "", (r["state"], col, r[col])
    json_oh = next(r for r in doc["rows"] if r["state"] == "OH" and r["grain"] == "month")
    assert "pct_affirmed" in json_oh["suppressed"] and "pct_support_sla_met" not in json_oh["suppressed"]
