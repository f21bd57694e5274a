"""What a simulation produces: the terminal table, CSV files, SVG (and optional PNG) charts, an HTML report,
and the stored run the oversight page shows."""

from __future__ import annotations

import csv
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from wiserpa.reporting.charts import grouped_bar_chart, line_chart
from wiserpa.sim.engine import SimulationResult
from wiserpa.sim.models import SimRun
from wiserpa.sim.workload import load_assumptions

__all__ = [
    "METRICS",
    "charts",
    "list_runs",
    "load_run",
    "render_report",
    "store_run",
    "summary",
    "summary_table",
    "write_outputs",
]

# (key, label, format) in display order; every key is a metric of ProfileRun.metrics.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("episodes", "Patients (episodes)", "int"),
    ("requests_submitted", "Requests incl. resubmissions", "int"),
    ("rejected_submissions", "Submissions refused by the engine", "int"),
    ("days_to_care_median", "Days from request to care, median", "days"),
    ("days_to_care_p90", "Days from request to care, p90", "days"),
    ("days_to_care_mean", "Days from request to care, mean", "days"),
    ("share_over_14_days", "Share waiting over 14 days", "pct"),
    ("days_to_decision_p90", "Days to decision per request, p90", "days"),
    ("days_to_decision_max", "Days to decision per request, max", "days"),
    ("reviewed_days_to_decision_mean", "Days to decision, reviewed requests, mean", "days"),
    ("deadline_misses", "Deadline misses", "int"),
    ("penalties_priced_usd", "Penalties priced", "usd"),
    ("penalties_owed_usd", "Penalties owed (enforced)", "usd"),
    ("deemed_approvals", "Deemed approvals", "int"),
    ("late_clinician_decisions_ignored", "Late clinician decisions ignored", "int"),
    ("exempt_requests", "Exempt (time-sensitive care)", "int"),
    ("gold_card_requests", "Gold-carded requests", "int"),
    ("gold_cards_issued", "Gold cards issued", "int"),
    ("non_affirmed_requests", "Non-affirmed requests", "int"),
    ("pending_at_end", "Still pending at the end", "int"),
    ("care_without_pa", "Care given without authorization", "int"),
    ("anesthesia_lines", "Anesthesia claim lines", "int"),
    ("anesthesia_lines_denied", "Anesthesia lines denied", "int"),
    ("anesthesia_lines_suspended", "Anesthesia lines suspended (pre-payment review)", "int"),
    ("clinician_review_hours", "Clinician review hours", "hours"),
    ("provider_admin_hours", "Provider administrative hours", "hours"),
    ("support_tickets", "Support tickets", "int"),
    ("support_sla_breaches", "Support SLA breaches", "int"),
    ("pay_current_formula_usd", "Participant pay, current formula", "usd"),
    ("pay_reform_formula_usd", "Participant pay, reform formula", "usd"),
)

# Days-to-care histogram bins (days): the 14-day mark matches the headline share.
BINS: tuple[tuple[str, float, float], ...] = (
    ("same day", 0.0, 1.0),
    ("1-3 d", 1.0, 3.0),
    ("3-7 d", 3.0, 7.0),
    ("7-14 d", 7.0, 14.0),
    ("14-30 d", 14.0, 30.0),
    ("30+ d", 30.0, float("inf")),
)


def fmt(value: Any, kind: str) -> str:
    """A metric value for display."""
    if value is None:
        return "—"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "pct":
        return f"{100 * float(value):.1f}%"
    if kind == "usd":
        return f"${float(value):,.0f}"
    if kind == "hours":
        return f"{float(value):,.0f} h"
    return f"{float(value):.2f}"


def summary(result: SimulationResult) -> dict[str, Any]:
    """JSON summary of a result: scenario, per-profile metrics/outcomes/checks, calibration, throughput."""
    return {
        "scenario": result.scenario.as_dict(),
        "partial": result.partial,
        "expected_annual_requests": round(result.expected_annual),
        "calibration": result.calibration,
        "profiles": [
            {
                "id": r.profile_id,
                "title": r.profile_title,
                "metrics": r.metrics,
                "outcomes": r.outcomes,
                "checks": r.checks,
                "partial": r.partial,
                "wall_seconds": round(r.wall_seconds, 2),
                "requests_per_second": round(r.requests_per_second, 1),
            }
            for r in result.runs
        ],
    }


def rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Display rows (label + formatted value per profile) from a summary."""
    out = []
    for key, label, kind in METRICS:
        out.append(
            {
                "key": key,
                "label": label,
                "values": [fmt(p["metrics"].get(key), kind) for p in data["profiles"]],
            }
        )
    return out


def summary_table(result: SimulationResult) -> Table:
    """The side-by-side terminal table."""
    data = summary(result)
    table = Table(title=f"WISeR simulation · {result.scenario.state} {result.scenario.year}"
                  f"{' (partial: interrupted)' if result.partial else ''}")  # fmt: skip
    table.add_column("Metric", no_wrap=True)
    for p in data["profiles"]:
        # Ablations are long ids: show what they add to wiser-2026.
        name = "+" + p["id"].split(".", 1)[1] if p["id"].startswith("wiser-2026.") else p["id"]
        table.add_column(name, justify="right")
    for row in rows(data):
        table.add_row(row["label"], *row["values"])
    return table


# ---------------------------------------------------------------------------------------------- charts


def _bin_counts(values: list[float]) -> list[float | None]:
    return [float(sum(lo <= v < hi for v in values)) for _, lo, hi in BINS]


def charts(result: SimulationResult) -> dict[str, str]:
    """Standalone SVG charts: days-to-care distribution, weekly backlog, penalties by month."""
    runs = result.runs
    out: dict[str, str] = {}
    out["days_to_care"] = grouped_bar_chart(
        [b[0] for b in BINS],
        {r.profile_id: _bin_counts(r.series["days_to_care"]) for r in runs},
        title="Days from request to care",
        unit="patients",
    )
    weeks = sorted({w for r in runs for w, _, _ in r.series["backlog"]})
    if weeks:
        series: dict[str, list[float | None]] = {}
        for r in runs:
            by_week = {w: float(n) for w, n, _ in r.series["backlog"]}
            series[r.profile_id] = [by_week.get(w) for w in weeks]
        out["backlog"] = line_chart(weeks, series, title="Requests waiting for review (Mondays 08:00)",
                                    unit="requests")  # fmt: skip
    months = sorted({m for r in runs for m, _ in r.series["penalties_by_month"]})
    if months:
        groups: dict[str, list[float | None]] = {}
        for r in runs:
            by_month = dict(r.series["penalties_by_month"])
            groups[r.profile_id] = [float(by_month.get(m, 0.0)) for m in months]
        out["penalties"] = grouped_bar_chart(months, groups, title="Deadline penalties priced per month",
                                             unit="USD")  # fmt: skip
    return out


def _png(result: SimulationResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(1, len(result.runs))
    for i, r in enumerate(result.runs):
        counts = _bin_counts(r.series["days_to_care"])
        ax.bar([j + i * width for j in range(len(BINS))], [c or 0 for c in counts], width, label=r.profile_id)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(BINS))], [b[0] for b in BINS])
    ax.set_ylabel("patients")
    ax.set_title("Days from request to care")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})  # no timestamp: same input, same bytes
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- files


def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(Path(__file__).resolve().parent.parent / "web" / "templates")),
        autoescape=select_autoescape(["html"]),
    )


def render_report(data: dict[str, Any], svgs: dict[str, str]) -> str:
    """The self-contained HTML report (inline CSS and SVG, no external resources)."""
    a = load_assumptions()
    return (
        _env()
        .get_template("sim/report.html")
        .render(
            data=data, rows=rows(data), charts=svgs, assumptions=sorted(a.sources.items()), values=a.values
        )
    )


def write_outputs(result: SimulationResult, out: Path, *, png: bool = False) -> list[Path]:
    """Write the CSV files (metrics, outcomes, backlog, days to care, assumptions), charts and report.html."""
    out.mkdir(parents=True, exist_ok=True)
    data = summary(result)
    written: list[Path] = []

    def table(name: str, header: list[str], body: list[list[Any]]) -> None:
        path = out / name
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(body)
        written.append(path)

    table("metrics.csv", ["metric", "profile", "value"],
          [[k, r.profile_id, v] for r in result.runs for k, v in r.metrics.items()])  # fmt: skip
    table("outcomes.csv", ["profile", "outcome", "episodes"],
          [[r.profile_id, k, v] for r in result.runs for k, v in r.outcomes.items()])  # fmt: skip
    table("backlog.csv", ["profile", "week", "waiting", "waiting_esi"],
          [[r.profile_id, w, n, e] for r in result.runs for w, n, e in r.series["backlog"]])  # fmt: skip
    table("days_to_care.csv", ["profile", "days"],
          [[r.profile_id, d] for r in result.runs for d in r.series["days_to_care"]])  # fmt: skip
    a = load_assumptions()
    table("assumptions.csv", ["key", "value", "source"],
          [[k, json.dumps(a.values[k]), a.sources[k]] for k in sorted(a.values)])  # fmt: skip
    svgs = charts(result)
    for name, svg in svgs.items():
        path = out / f"{name}.svg"
        path.write_text(svg, encoding="utf-8")
        written.append(path)
    if png and result.runs:
        path = out / "days_to_care.png"
        _png(result, path)
        written.append(path)
    (out / "summary.json").write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    written.append(out / "summary.json")
    (out / "report.html").write_text(render_report(data, svgs), encoding="utf-8")
    written.append(out / "report.html")
    return written


# ---------------------------------------------------------------------------------------------- stored runs


def store_run(
    session: Session, result: SimulationResult, *, now: dt.datetime, label: str | None = None
) -> SimRun:
    """Add a run to the `sim_runs` table (caller commits)."""
    s = result.scenario
    run = SimRun(
        created_at=now,
        label=(label or f"{s.state} {s.year} · {', '.join(r.profile_id for r in result.runs)}")[:200],
        state=s.state,
        year=s.year,
        seed=s.seed,
        scale=s.scale,
        partial=result.partial,
        scenario=s.as_dict(),
        summary=summary(result),
        charts=charts(result),
    )
    session.add(run)
    session.flush()
    return run


def list_runs(session: Session, *, limit: int = 50) -> list[SimRun]:
    """Stored runs, newest first."""
    return list(
        session.scalars(select(SimRun).order_by(SimRun.created_at.desc(), SimRun.id.desc()).limit(limit))
    )


def load_run(session: Session, run_id: int) -> SimRun | None:
    """One stored run."""
    return session.get(SimRun, run_id)


# ---------------------------------------------------------------------------------------------- the command


def run_cli(
    scenario: Any,
    *,
    out: Path | None,
    png: bool,
    store_url: str | None,
    echo: Any,
) -> SimulationResult:
    """`wiserpa simulate`: a progress bar per profile, Ctrl-C stops cleanly, then the table and the files."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from wiserpa.sim.engine import simulate

    n = len(scenario.profiles) + (8 if scenario.compare else 0)
    console = Console(width=max(Console().width, 50 + 14 * n))
    tasks: dict[str, Any] = {}
    # Redrawn on each progress report rather than by Rich's refresh thread: with no other thread running, the
    # simulator can fork its workers instead of spawning them (engine._start_method).
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False, auto_refresh=False) as bar:  # fmt: skip
        drawn = [0.0]

        def progress(pid: str, done: int, total: int) -> None:
            if pid not in tasks:
                tasks[pid] = bar.add_task(f"{pid:<32}", total=total)
            now = time.monotonic()
            redraw = done == total or now - drawn[0] >= 0.1  # a sequential run reports every batch
            if redraw:
                drawn[0] = now
            bar.update(tasks[pid], completed=done, refresh=redraw)

        result = simulate(scenario, progress=progress)
    if result.partial:
        echo("Interrupted: showing partial results for what was simulated.")
    console.print(summary_table(result))
    cal = result.calibration
    if cal:
        mean = cal.get("reviewed_mean_days_by_report_date")
        lo, hi = cal["target_mean_days"]
        echo(f"Calibration (wiser-2026, WA report date {cal['report_date']}): reviewed requests waited "
             f"{mean if mean is not None else '—'} days on average (reported {lo}-{hi}); "
             f"epidural injections waiting: {cal.get('esi_waiting_at_report_date')} "
             f"(reported ~{cal['target_waiting_esi']} at one group of clinics).")  # fmt: skip
    for r in result.runs:
        echo(f"{r.profile_id}: {r.metrics['requests_submitted']} requests in {r.wall_seconds:.1f} s "
             f"({r.requests_per_second:.1f} simulated requests/s through the services)")  # fmt: skip
    if out is not None:
        files = write_outputs(result, out, png=png)
        echo(f"Wrote {len(files)} files to {out} (report: {out / 'report.html'})")
    if store_url is not None:
        from wiserpa.policy.clock import SystemClock
        from wiserpa.store.db import make_engine, make_sessionmaker

        engine = make_engine(store_url)
        try:
            with make_sessionmaker(engine)() as session:
                # The stored-at time is real time: this is an edge (the command), not the simulated clock.
                run = store_run(session, result, now=SystemClock().now())
                session.commit()
                echo(f"Stored as simulation run #{run.id}: /oversight/simulations/{run.id}")
        finally:
            engine.dispose()
    return result
