"""The simulator: deterministic, conserving, and showing what the reforms change (and what they do not)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from wiserpa.runtime import Runtime
from wiserpa.sim import engine
from wiserpa.sim.engine import Scenario, SimulationResult, profile_variants, simulate
from wiserpa.sim.outputs import run_cli, store_run
from wiserpa.sim.workload import AssumptionError, annual_volume, load_assumptions, parse_assumptions

# Two weeks of intake in March (no holidays, no gold-card evaluation), one week to finish.
# Expedited and MAC-forwarded requests are left out here so both profiles share every due time, and
# time-sensitive exemptions are off so both profiles review the same requests.
SMALL = {
    "state": "WA",
    "start": dt.datetime(2026, 3, 2, 8, tzinfo=dt.UTC),
    "end": dt.datetime(2026, 3, 14, 8, tzinfo=dt.UTC),
    "requests": 40,
    "drain_days": 7,
    "seed": 7,
    "overrides": (
        ("volume.expedited_share", 0.0),
        ("volume.mac_forwarded_share", 0.0),
        ("providers.exempt_eligible_share", {"default": 0.0}),
    ),
}
TIMELINESS = (
    "days_to_care_median",
    "days_to_care_p90",
    "share_over_14_days",
    "days_to_decision_median",
    "days_to_decision_p90",
    "days_to_decision_max",
    "deadline_misses",
    "deemed_approvals",
    "pending_at_end",
)
DEADLINE_DAYS = 3.0  # 72 hours, both profiles (standard portal requests)


def _scenario(**kw: Any) -> Scenario:
    return Scenario(**{**SMALL, **kw})


@pytest.fixture(scope="module")
def ample() -> SimulationResult:
    """Reviewer capacity far above demand."""
    return simulate(_scenario(clinicians=500.0))


@pytest.fixture(scope="module")
def short() -> SimulationResult:
    """Reviewer capacity far below demand (about one review every two days)."""
    return simulate(_scenario(clinicians=0.03))


def test_same_seed_same_outputs() -> None:
    a = simulate(_scenario(profiles=("asa-reform",), clinicians=0.3, requests=25))
    b = simulate(_scenario(profiles=("asa-reform",), clinicians=0.3, requests=25))
    for ra, rb in zip(a.runs, b.runs, strict=True):
        assert ra.metrics == rb.metrics
        assert ra.outcomes == rb.outcomes
        assert ra.series == rb.series


def test_parallel_runs_give_the_sequential_results() -> None:
    scenario = _scenario(clinicians=0.3, requests=25)
    one = simulate(scenario, workers=1)
    two = simulate(scenario, workers=2)  # one process per profile
    assert [r.profile_id for r in two.runs] == ["wiser-2026", "asa-reform"]
    assert not two.partial
    for ra, rb in zip(one.runs, two.runs, strict=True):
        assert (ra.metrics, ra.outcomes, ra.series, ra.checks) == (
            rb.metrics,
            rb.outcomes,
            rb.series,
            rb.checks,
        )


_FORKED_RUN = """
import json, sys
from tests.sim.test_sim import _scenario
from wiserpa.sim import engine
assert engine._start_method() == "fork", engine._start_method()
result = engine.simulate(_scenario(clinicians=0.3, requests=25), workers=2)
json.dump([[r.profile_id, r.metrics, r.outcomes, r.checks] for r in result.runs], sys.stdout, default=str)
"""


def test_a_single_threaded_process_forks_its_workers_with_the_same_results() -> None:
    """The CLI and the benchmark run one thread, so their workers are forked (nothing to import again); a
    fresh interpreter shows it, since this test process may run other threads."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _FORKED_RUN],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    forked = json.loads(done.stdout)
    one = simulate(_scenario(clinicians=0.3, requests=25), workers=1)
    expected = json.loads(
        json.dumps([[r.profile_id, r.metrics, r.outcomes, r.checks] for r in one.runs], default=str)
    )
    assert forked == expected


def test_workers_are_spawned_while_other_threads_run() -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert engine._start_method() == "spawn"
    finally:
        stop.set()
        other.join()


def test_batched_arrivals_give_the_one_by_one_results(monkeypatch: pytest.MonkeyPatch) -> None:
    # About the state-year's density (20 a business day), so many arrivals share a batch.
    scenario = _scenario(profiles=("asa-reform",), clinicians=0.6, requests=200)
    batched = simulate(scenario, workers=1)
    monkeypatch.setattr(engine, "_MAX_BATCH", 1)
    one_by_one = simulate(scenario, workers=1)
    for ra, rb in zip(batched.runs, one_by_one.runs, strict=True):
        assert ra.metrics["requests_submitted"] > SMALL["requests"]
        assert (ra.metrics, ra.outcomes, ra.series, ra.checks) == (
            rb.metrics,
            rb.outcomes,
            rb.series,
            rb.checks,
        )


def test_a_kept_run_database_holds_what_the_run_counted(tmp_path: Path) -> None:
    # Runs keep their database in memory; asked to keep it, a run saves it where it says.
    result = simulate(_scenario(profiles=("asa-reform",)), keep_dir=tmp_path, workers=1)
    (run,) = result.runs
    assert run.db_path == str(tmp_path / "asa-reform" / "sim.db")
    with sqlite3.connect(run.db_path) as conn:
        (requests,) = conn.execute("SELECT count(*) FROM pa_requests").fetchone()
        (entries,) = conn.execute("SELECT count(*) FROM audit_log").fetchone()
    assert requests == run.checks["requests_in_db"] == run.metrics["requests_submitted"]
    assert entries > requests


def test_every_request_ends_in_one_outcome_and_claims_reconcile(short: SimulationResult) -> None:
    for run in short.runs:
        m: dict[str, Any] = run.metrics
        assert sum(run.outcomes.values()) == run.metrics["episodes"] == SMALL["requests"]
        assert run.checks["episodes_with_one_outcome"] == run.metrics["episodes"]
        assert run.checks["requests_in_db"] == run.checks["requests_tracked"]
        assert run.checks["claims_in_db"] == run.checks["claims_tracked"]
        assert run.checks["unmatched_primary_lines"] == 0
        assert run.checks["events_out_of_order"] == 0
        assert m["anesthesia_lines"] == (
            m["anesthesia_lines_paid"] + m["anesthesia_lines_denied"] + m["anesthesia_lines_suspended"]
        )


def test_with_ample_capacity_the_reforms_change_no_timeliness_figure(ample: SimulationResult) -> None:
    base, reform = (r.metrics for r in ample.runs)
    for key in TIMELINESS:
        assert base[key] == reform[key], key
    assert base["deadline_misses"] == 0 and base["deemed_approvals"] == 0


def test_with_short_capacity_only_asa_reform_bounds_the_time_to_decision(short: SimulationResult) -> None:
    by: dict[str, dict[str, Any]] = {r.profile_id: r.metrics for r in short.runs}
    assert by["asa-reform"]["days_to_decision_max"] <= DEADLINE_DAYS + 1e-6
    assert by["asa-reform"]["deemed_approvals"] > 0
    assert by["wiser-2026"]["days_to_decision_max"] > DEADLINE_DAYS
    assert by["wiser-2026"]["deadline_misses"] > 0
    assert by["wiser-2026"]["deemed_approvals"] == 0
    # The missed deadlines are priced under both, owed only where penalties are enforced.
    assert by["wiser-2026"]["penalties_owed_usd"] == 0


def test_compare_adds_one_profile_per_reform_section() -> None:
    ids = [p.id for p in profile_variants(("wiser-2026", "asa-reform"), compare=True)]
    assert ids[:2] == ["wiser-2026", "asa-reform"]
    assert "wiser-2026.deemed-approval" in ids and "wiser-2026.exemptions" in ids
    alone = next(p for p in profile_variants(("wiser-2026",), compare=True) if p.id == "wiser-2026.gold-card")
    assert alone.gold_card.enabled and not alone.deemed_approval.enabled


def test_assumptions_have_sources_and_match_the_new_jersey_figure() -> None:
    a = load_assumptions()
    assert all(a.sources[k].strip() for k in a.values)
    q1 = annual_volume(a, "NJ") * a["volume.q1_operating_weeks"] / a["volume.year_operating_weeks"]
    assert round(q1) == 12_600
    with pytest.raises(AssumptionError):
        parse_assumptions("volume:\n  x: {value: 3}\n")


def test_command_writes_files_and_stores_a_run(
    short: SimulationResult, tmp_path: Path, sqlite_url: str
) -> None:
    lines: list[str] = []
    result = run_cli(
        _scenario(profiles=("asa-reform",), requests=10, clinicians=1.0),
        out=tmp_path / "out",
        png=False,
        store_url=sqlite_url,
        echo=lines.append,
    )
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"metrics.csv", "report.html", "days_to_care.svg", "assumptions.csv"} <= names
    assert "asa-reform" in (tmp_path / "out" / "report.html").read_text()
    assert any("Stored as simulation run #1" in line for line in lines)
    assert result.runs[0].metrics["episodes"] == 10


def test_oversight_page_shows_a_stored_run(
    short: SimulationResult, rt: Runtime, client: TestClient, make_actor: Callable[..., Any]
) -> None:
    with rt.sessions() as session:
        run = store_run(session, short, now=rt.clock.now())
        session.commit()
        run_id = run.id
    overseer = make_actor("oversight")
    client.post("/login", data={"api_key": overseer.key})
    page = client.get(f"/oversight/simulations/{run_id}")
    assert page.status_code == 200
    assert "wiser-2026" in page.text and "asa-reform" in page.text and "<svg" in page.text
    assert client.get("/oversight/simulations").status_code == 200
    assert client.get("/oversight/simulations/999").status_code == 404
    provider = make_actor("provider")
    client.post("/login", data={"api_key": provider.key})
    assert client.get(f"/oversight/simulations/{run_id}").status_code == 403


def test_ctrl_c_stops_cleanly_with_partial_results() -> None:
    seen: list[str] = []

    def interrupt(profile_id: str, done: int, total: int) -> None:
        seen.append(profile_id)
        if done == 5:
            raise KeyboardInterrupt

    result = simulate(_scenario(requests=20, clinicians=1.0), progress=interrupt, workers=1)
    assert result.partial
    assert [r.profile_id for r in result.runs] == ["wiser-2026"]  # the second profile never started
    run = result.runs[0]
    assert run.partial and run.metrics["episodes"] == 5
    assert sum(run.outcomes.values()) == 5
    assert set(seen) == {"wiser-2026"}


def test_ctrl_c_stops_parallel_runs_with_partial_results() -> None:
    def interrupt(profile_id: str, done: int, total: int) -> None:
        raise KeyboardInterrupt  # at the first progress report from either worker

    result = simulate(_scenario(requests=400, clinicians=1.0), progress=interrupt, workers=2)
    assert result.partial and result.runs
    for run in result.runs:
        assert run.partial
        assert sum(run.outcomes.values()) == run.metrics["episodes"] < 400


def test_the_calibration_reads_what_the_database_holds_at_the_report_date(tmp_path: Path) -> None:
    # The calibration reuses the rows the metrics read: its figure must be what the stored requests give.
    scenario = Scenario(
        state="WA", start=dt.datetime(2026, 1, 5, tzinfo=dt.UTC), end=dt.datetime(2026, 5, 1, tzinfo=dt.UTC),
        requests=120, drain_days=5, seed=3, profiles=("wiser-2026",),
    )  # fmt: skip
    result = simulate(scenario, keep_dir=tmp_path, workers=1)
    cut = dt.datetime.fromisoformat(str(load_assumptions()["calibration_wa.window_end"]))
    (run,) = result.runs
    assert run.db_path is not None
    with sqlite3.connect(run.db_path) as conn:
        rows = conn.execute(
            "SELECT received_at, decided_at FROM pa_requests WHERE received_at < ? AND"
            " (decision_kind IN ('clinician', 'deemed') OR status IN ('received', 'pended', 'non_affirmed'))",
            (cut.isoformat(" "),),
        ).fetchall()
    # The run ends after the report date, so a request still open then counts until the report date.
    days = [
        (min(dt.datetime.fromisoformat(d), cut) if d else cut) - dt.datetime.fromisoformat(r) for r, d in rows
    ]
    assert days
    expected = round(sum(x.total_seconds() for x in days) / len(days) / 86_400, 3)
    assert result.calibration["reviewed_mean_days_by_report_date"] == pytest.approx(expected, abs=0.0015)
