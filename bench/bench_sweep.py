"""Benchmark: the deadline sweep's cost follows what is due, not what is open.

Two databases per backend, filled directly with SQLAlchemy Core (not through the API):
  small: 100,000 open requests, 10,000 of them due
  large: 1,000,000 open requests, the same 10,000 due
The sweep of the 10,000 due requests is timed in both; the ratio large/small should stay <= 1.5.
Then, on the small database, --steps sweeps a minute apart (the simulator sweeps with a few requests due, or
none): a couple of requests fall due each minute. Their CPU time per sweep is printed.
Runs on SQLite always and on PostgreSQL when WISERPA_BENCH_POSTGRES_URL (or WISERPA_TEST_POSTGRES_URL) is set.

    python bench/bench_sweep.py [--due 10000] [--small 100000] [--large 1000000] [--batch 500] [--steps 300]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, text

from wiserpa.config import Settings
from wiserpa.deadlines.service import sweep
from wiserpa.policy.clock import FixedClock
from wiserpa.policy.profiles import load_profile
from wiserpa.requests.models import PaRequest
from wiserpa.runtime import Runtime
from wiserpa.store.db import make_engine
from wiserpa.store.migrate import upgrade

NOW = dt.datetime(2026, 6, 1, 15, 0, tzinfo=dt.UTC)
CHUNK = 50_000


REQ_COLS = (
    "id", "state", "participant", "jurisdiction", "organization_id", "provider_npi", "beneficiary_mbi",
    "category", "policy_id", "primary_code", "place_of_service", "date_of_service", "urgency", "channel",
    "received_at", "clock_started_at", "due_at", "deems_on_due", "status", "profile_id", "profile_version",
    "audit_sampled", "time_sensitive_attestation", "diagnosis_codes", "clinical_facts", "criteria_results",
    "attachments", "raw_submission", "version", "updated_at",
)  # fmt: skip
LINE_COLS = ("request_id", "seq", "code", "modifiers", "units", "role", "kind", "requested")
JSON_COLS = {
    "diagnosis_codes",
    "clinical_facts",
    "criteria_results",
    "attachments",
    "raw_submission",
    "modifiers",
}


def _insert_sql(engine: Engine, table: str, cols: tuple[str, ...]) -> str:
    pg = engine.dialect.name == "postgresql"
    mark = "%s" if pg else "?"
    values = ", ".join(f"{mark}::jsonb" if pg and c in JSON_COLS else mark for c in cols)
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({values})"


def fill(engine: Engine, *, total: int, due: int, seed: int = 7) -> None:
    """Insert `total` pended requests (one primary line each; anesthesia on the due ones), `due` past due.

    Rows go in through the Core connection's executemany with values already in storage form (naive UTC,
    JSON text), which is what the models' types would produce, only without per-row Python conversion.
    """
    rng = random.Random(seed)
    naive_now = NOW.replace(tzinfo=None)
    with engine.begin() as conn:
        org = conn.execute(
            text(
                "INSERT INTO organizations (name, kind, state, created_at) "
                "VALUES ('bench practice', 'practice', 'TX', :t) RETURNING id"
            ),
            {"t": naive_now},
        ).scalar_one()
    req_sql = _insert_sql(engine, "pa_requests", REQ_COLS)
    line_sql = _insert_sql(engine, "request_lines", LINE_COLS)
    every = max(1, total // due) if due else total + 1
    dos = dt.date(2026, 6, 20)
    next_id = 1
    while next_id <= total:
        n = min(CHUNK, total - next_id + 1)
        reqs: list[tuple[Any, ...]] = []
        lines: list[tuple[Any, ...]] = []
        for rid in range(next_id, next_id + n):
            is_due = rid % every == 0
            offset = -rng.randint(1, 2 * 86_400) if is_due else rng.randint(3_600, 30 * 86_400)
            due_at = naive_now + dt.timedelta(seconds=offset)
            received = due_at - dt.timedelta(hours=72)
            reqs.append(
                (
                    rid, "TX", "Cohere Health", "JH", org, f"{1_000_000_000 + rid % 5000}",
                    f"1EG4TE5MK{rid % 100:02d}", "epidural_steroid_injection", "L36920", "62323", "11", dos,
                    "standard", "portal", received, received, due_at, True, "pended", "asa-reform", "2026.1",
                    False, False, '["M54.16"]', "{}", "[]", "[]", "{}", 1, received,
                )
            )  # fmt: skip
            lines.append((rid, 0, "62323", "[]", 1, "primary", None, True))
            if is_due:
                lines.append((rid, 1, "01992", "[]", 1, "associated", "anesthesia", False))
        with engine.begin() as conn:
            conn.exec_driver_sql(req_sql, reqs)
            conn.exec_driver_sql(line_sql, lines)
        next_id += n
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT setval('pa_requests_id_seq', :n)"), {"n": total})
        conn.execute(text("ANALYZE"))
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM pa_requests WHERE due_at <= :t"), {"t": naive_now})
        assert count.scalar_one() == (total // every if due else 0)


def measure(engine: Engine, *, batch: int) -> tuple[float, int]:
    """Seconds to sweep everything due at NOW, and how many were deemed."""
    settings = Settings(database_url=str(engine.url), profile="asa-reform", sweep_interval_seconds=0)
    rt = Runtime.build(settings, clock=FixedClock(NOW), engine=engine, profile=load_profile("asa-reform"))
    with rt.sessions() as session:
        t0 = time.perf_counter()
        result = sweep(session, rt, batch=batch)
        elapsed = time.perf_counter() - t0
    with rt.sessions() as session:
        deemed = session.scalar(
            select(func.count()).select_from(PaRequest).where(PaRequest.status == "deemed_affirmed")
        )
    assert deemed == result.deemed, (deemed, result)
    return elapsed, result.deemed


def measure_steps(engine: Engine, *, steps: int, batch: int) -> tuple[float, float, int]:
    """CPU ms per sweep, best of 3 runs of `steps` sweeps a minute apart (each run continues the clock), with
    the requests they deemed; first for sweeps with nothing due (the clock stays), then a minute apart."""
    settings = Settings(database_url=str(engine.url), profile="asa-reform", sweep_interval_seconds=0)
    clock = FixedClock(NOW)
    rt = Runtime.build(settings, clock=clock, engine=engine, profile=load_profile("asa-reform"))
    idle = moving = float("inf")
    deemed = 0
    with rt.sessions() as session:
        for _ in range(3):
            t0 = time.process_time()
            for _ in range(steps):
                sweep(session, rt, batch=batch)
            idle = min(idle, (time.process_time() - t0) / steps * 1000)
        for _ in range(3):
            t0 = time.process_time()
            for _ in range(steps):
                clock.advance(dt.timedelta(minutes=1))
                deemed += sweep(session, rt, batch=batch).deemed
            moving = min(moving, (time.process_time() - t0) / steps * 1000)
    return idle, moving, deemed


def sqlite_db(tmp: Path, name: str) -> Engine:
    """A fresh migrated SQLite file."""
    engine = make_engine(f"sqlite:///{tmp / name}.db")
    upgrade(engine)
    return engine


class PgDatabases:
    """Creates throw-away PostgreSQL databases next to the given URL and drops them afterwards."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.admin = make_engine(base, isolation_level="AUTOCOMMIT")
        self.names: list[str] = []

    def make(self, label: str) -> Engine:
        """A fresh migrated database."""
        name = f"wiserpa_bench_{label}_{uuid.uuid4().hex[:6]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.names.append(name)
        engine = make_engine(self.base.rsplit("/", 1)[0] + "/" + name)
        upgrade(engine)
        return engine

    def drop(self) -> None:
        """Drop every database this made."""
        with self.admin.connect() as conn:
            for name in self.names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


def run_backend(label: str, make: Any, args: argparse.Namespace) -> None:
    """Fill, sweep and report for one backend."""
    results = {}
    for size in (args.small, args.large):
        engine = make(f"{size}")
        t0 = time.perf_counter()
        fill(engine, total=size, due=args.due)
        fill_s = time.perf_counter() - t0
        seconds, deemed = measure(engine, batch=args.batch)
        results[size] = seconds
        print(
            f"{label:<10} open={size:>9,} due={args.due:>6,}  fill {fill_s:7.1f} s   "
            f"sweep {seconds:7.2f} s   {deemed:,} deemed   {deemed / seconds:8,.0f} deemed/s"
        )
        if size == args.small and args.steps:
            idle, moving, few = measure_steps(engine, steps=args.steps, batch=args.batch)
            print(
                f"{label:<10} open={size:>9,}  sweep with nothing due {idle:6.3f} ms, a minute later each time "
                f"{moving:6.3f} ms ({few / (3 * args.steps):.1f} deemed per sweep)   (CPU, best of 3 x {args.steps})"
            )
        engine.dispose()
    ratio = results[args.large] / results[args.small]
    print(f"{label:<10} ratio sweep({args.large:,}) / sweep({args.small:,}) = {ratio:.2f}  (goal <= 1.5)")


def main() -> None:
    """Run the benchmark on SQLite and, if configured, PostgreSQL."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--steps", type=int, default=300, help="small sweeps to time (0: none)")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            run_backend("sqlite", lambda name: sqlite_db(Path(tmp), name), args)
    pg = os.environ.get("WISERPA_BENCH_POSTGRES_URL") or os.environ.get("WISERPA_TEST_POSTGRES_URL")
    if pg:
        dbs = PgDatabases(pg)
        try:
            run_backend("postgresql", dbs.make, args)
        finally:
            dbs.drop()
    else:
        print("postgresql skipped (set WISERPA_BENCH_POSTGRES_URL)")


if __name__ == "__main__":
    main()
