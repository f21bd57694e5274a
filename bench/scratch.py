"""Scratch databases for benchmarks: a PostgreSQL one created on a server URL and dropped afterwards, and the
shared driver of the in-process profiling benchmarks (SQLite always, PostgreSQL when a URL is given)."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import text

from wiserpa.store.db import make_engine


@contextmanager
def scratch_postgres(server_url: str, label: str = "bench") -> Iterator[str]:
    """Yield the URL of a new, empty database on the server of `server_url`; drop it on the way out."""
    name = f"wiserpa_{label}_{uuid.uuid4().hex[:8]}"
    admin = make_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def profiling_options(description: str | None) -> argparse.Namespace:
    """The in-process profiling benchmarks' options: --rounds, --per-round, --postgres-url, --profile."""
    ap = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--per-round", type=int, default=100)
    ap.add_argument("--postgres-url", default=os.environ.get("WISERPA_TEST_POSTGRES_URL"))
    ap.add_argument("--profile", action="store_true")
    return ap.parse_args()


def on_each_database(
    measure: Callable[[str, int, int, bool], tuple[Any, ...]], args: argparse.Namespace
) -> list[tuple[Any, ...]]:
    """Run `measure(url, rounds, per_round, profile)` on a fresh SQLite file and, given a server URL, on a scratch
    PostgreSQL database; returns (label, *figures) per database."""
    results = [("sqlite", *measure(f"sqlite:///{tempfile.mkdtemp()}/bench.db", args.rounds, args.per_round,
                                   args.profile))]  # fmt: skip
    if args.postgres_url:
        with scratch_postgres(args.postgres_url, "profile") as url:
            results.append(("postgresql", *measure(url, args.rounds, args.per_round, args.profile)))
    return results


def best_ms(fn: Callable[[int], None], rounds: int, per_round: int) -> float:
    """Best CPU milliseconds per call over `rounds` rounds of `per_round` calls."""
    best = float("inf")
    n = 0
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(per_round):
            fn(n)
            n += 1
        best = min(best, (time.process_time() - start) / per_round * 1000)
    return best


@contextmanager
def simulator_run(requests: int, policy: str) -> Iterator[Any]:
    """The simulator's run of a WA year of `requests` patients under `policy` (its principals and events not set up
    yet), on its in-memory SQLite database; for benchmarks of one service on the simulator's data."""
    from wiserpa.policy.profiles import load_profile
    from wiserpa.sim import engine
    from wiserpa.sim.workload import annual_volume, load_assumptions

    scale = requests / annual_volume(load_assumptions(), "WA")
    scenario = engine.Scenario(state="WA", year=2026, scale=scale, seed=2026, requests=requests)
    a = scenario.assumptions()
    db = engine._run_engine(engine._template_db())
    try:
        yield engine._Run(scenario, a, engine._workload(scenario, a), load_profile(policy), db, None)
    finally:
        db.dispose()


def migrated_runtime(url: str, at: Any) -> tuple[Any, Any]:
    """(runtime, its fixed clock at `at`) on the database at `url`, migrated first; no background sweep."""
    from wiserpa.config import Settings
    from wiserpa.policy.clock import FixedClock
    from wiserpa.runtime import Runtime
    from wiserpa.store.migrate import upgrade

    engine = make_engine(url)
    upgrade(engine)
    clock = FixedClock(at)
    return Runtime.build(
        Settings(database_url=url, sweep_interval_seconds=0), clock=clock, engine=engine
    ), clock
