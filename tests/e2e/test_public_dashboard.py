"""Browser test: the public dashboard with the network cut: loads, draws charts, its CSV matches the API."""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import LiveServer
from wiserpa.reporting import service

ROOT = Path(__file__).resolve().parents[2]


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "bench_report.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data(live_server: LiveServer) -> LiveServer:
    """3,000 requests over January–February 2026 (the clock is 2 March): mostly large, some small counts."""
    _bench().insert_requests(
        live_server.rt.engine,
        3000,
        seed=7,
        start=dt.datetime(2026, 1, 5, tzinfo=dt.UTC),
        end=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
    )
    service.clear_cache()
    return live_server


def _offline(page: Any, base: str) -> list[str]:
    """Abort every request that does not go to the app itself; returns what was blocked."""
    blocked: list[str] = []

    def handle(route: Any) -> None:
        if route.request.url.startswith(base):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", handle)
    return blocked


def test_dashboard_works_offline_with_charts(
    page: Any, data: LiveServer, shot: Callable[[Any, str], Path]
) -> None:
    blocked = _offline(page, data.url)
    page.goto(f"{data.url}/public/")
    assert page.locator("h1").inner_text() == "How the WISeR participants perform"
    assert "Figures as of" in page.locator("#as-of").inner_text()
    rows = page.locator("#comparison-table tbody tr")
    assert rows.count() == 7  # six participants and All participants
    charts = page.locator("svg.wiserpa-chart")
    assert charts.count() >= 4
    values = page.locator("svg.wiserpa-chart [data-value]")
    assert values.count() > 10
    assert any(float(values.nth(i).get_attribute("data-value")) > 0 for i in range(values.count()))
    box = charts.first.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 150
    shot(page, "public-dashboard")
    page.get_by_role("link", name="Cohere Health").click()
    page.wait_for_url(f"{data.url}/public/participants/TX")
    assert page.locator("svg.wiserpa-chart [data-value]").count() > 0
    shot(page, "public-participant-tx")
    page.goto(f"{data.url}/public/cms0057")
    assert page.locator("#cms-table tbody tr").count() == 10
    shot(page, "public-cms0057")
    page.goto(f"{data.url}/public/compensation")
    assert page.locator("#pay-table tbody tr").count() == 6
    shot(page, "public-compensation")
    assert blocked == []  # the pages asked for nothing outside the app


def test_csv_download_matches_the_api(page: Any, data: LiveServer) -> None:
    _offline(page, data.url)
    page.goto(f"{data.url}/public/")
    with page.expect_download() as info:
        page.get_by_role("link", name="CSV").first.click()
    text = Path(info.value.path()).read_text(encoding="utf-8")
    api = json.loads(page.request.get(f"{data.url}/api/v1/public/metrics").text())
    by_key = {(r["participant"], r["period"]): r for r in api["rows"]}
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(api["rows"])
    compared = 0
    for row in rows:
        j = by_key[(row["participant"], row["period"])]
        for col in (
            "requests",
            "outcome.affirmed",
            "timeliness.late",
            "pct_decided_within_timeline",
            "median_hours_standard",
        ):
            if j[col] is None:
                assert row[col] in ("S", "")
            else:
                assert float(row[col]) == pytest.approx(j[col])
                compared += 1
    assert compared > 50
    # The page shows what the API says.
    tx = by_key[("Cohere Health", "2026")]
    cell = page.locator('#comparison-table tr[data-participant="Cohere Health"] td[data-col="requests"]')
    assert cell.inner_text().replace(",", "") == ("S" if tx["requests"] is None else str(tx["requests"]))
