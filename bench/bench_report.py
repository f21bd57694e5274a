"""Benchmark: the full public report (aggregates, quantiles, suppression, CMS-0057-F, pay) over N requests.

Bulk-inserts a realistic mix with SQLAlchemy Core — the demo generator's distributions: six states, every
active category, 60/20/15/5 complete/incomplete/unmet/exempt, 15 % expedited, 10 % MAC-forwarded, review
delays drawn from the demo's list (6 … 500 h) so some participants run late — then times
``service.public_report`` cold (no cache) and warm (cached), on SQLite and, with ``--postgres URL``, on
PostgreSQL.

    python bench/bench_report.py --requests 1000000 [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/bench]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import Engine, insert, text

from wiserpa.auth.models import OrgKind
from wiserpa.config import Settings
from wiserpa.policy.catalog import load_catalog
from wiserpa.policy.clock import FixedClock
from wiserpa.policy.profiles import load_profile
from wiserpa.policy.validation import make_valid_mbi, make_valid_npi
from wiserpa.reporting import service
from wiserpa.requests.models import PaRequest
from wiserpa.runtime import Runtime
from wiserpa.store.db import make_engine
from wiserpa.store.migrate import upgrade
from wiserpa.synthetic import active_categories

START = dt.datetime(2026, 1, 6, 14, 0, tzinfo=dt.UTC)
END = dt.datetime(2026, 11, 27, 15, 0, tzinfo=dt.UTC)
REVIEW_HOURS = (6, 20, 40, 60, 70, 90, 200, 500)  # wiserpa.demo's review delays


def insert_requests(
    engine: Engine,
    n: int,
    *,
    seed: int = 2026,
    start: dt.datetime = START,
    end: dt.datetime = END,
    deems: bool = True,
    batch: int = 20_000,
) -> None:
    """Insert ``n`` requests with outcomes applied (no lines or decisions: the reports read rows)."""
    rng = random.Random(seed)
    catalog = load_catalog()
    states = sorted(catalog.states)
    categories = active_categories(catalog)
    span = (end - start).total_seconds()
    with engine.begin() as conn:
        org_ids = {}
        for s in states:
            org_ids[s] = conn.execute(
                text(
                    "INSERT INTO organizations (name, kind, state, created_at) VALUES (:n, :k, :s, :c)"
                    " RETURNING id"
                ),
                {
                    "n": f"bench practice {s}",
                    "k": OrgKind.PRACTICE.value,
                    "s": s,
                    "c": start.replace(tzinfo=None),
                },
            ).scalar_one()
    rows = []
    for i in range(n):
        state = states[i % len(states)]
        info = catalog.states[state]
        received = start + dt.timedelta(seconds=rng.random() * span)
        urgency = "expedited" if rng.random() < 0.15 else "standard"
        channel = "mac_forwarded" if rng.random() < 0.1 else "portal"
        due = received + dt.timedelta(hours=48 if urgency == "expedited" else 72)
        case = rng.choices(("complete", "incomplete", "unmet", "exempt"), weights=(60, 20, 15, 5))[0]
        status: str = "affirmed"
        kind: str | None = "criteria"
        decided: dt.datetime | None = received
        if case == "exempt":
            status, kind = "exempt_affirmed", "exempt"
        elif case != "complete":
            decided = received + dt.timedelta(hours=rng.choice(REVIEW_HOURS), minutes=rng.randrange(60))
            deny = case == "unmet" and rng.random() < 0.6
            if decided >= due and deems:
                status, kind, decided = "deemed_affirmed", "deemed", due
            else:
                status, kind = ("non_affirmed" if deny else "affirmed"), "clinician"
            if decided > end:
                status, kind, decided = "pended", None, None
        if rng.random() < 0.01 and status != "pended":
            status = "withdrawn"
        rows.append(
            {
                "state": state,
                "participant": info.participant,
                "jurisdiction": info.jurisdiction,
                "organization_id": org_ids[state],
                "provider_npi": make_valid_npi(1000 + i % 5000),
                "beneficiary_mbi": make_valid_mbi(100_000 + i),
                "category": rng.choice(categories),
                "primary_code": "62323",
                "place_of_service": "22",
                "date_of_service": (received + dt.timedelta(days=14)).date(),
                "urgency": urgency,
                "channel": channel,
                "received_at": received,
                "clock_started_at": received,
                "due_at": due,
                "deems_on_due": deems,
                "status": status,
                "decision_kind": kind,
                "decided_at": decided,
                "profile_id": "asa-reform",
                "profile_version": "bench",
                "diagnosis_codes": [],
                "clinical_facts": {},
                "criteria_results": [],
                "attachments": [],
                "raw_submission": {},
                "version": 1,
                "updated_at": received,
                "audit_sampled": False,
                "time_sensitive_attestation": False,
            }
        )
        if len(rows) >= batch:
            with engine.begin() as conn:
                conn.execute(insert(PaRequest), rows)
            rows = []
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(PaRequest), rows)


def run(url: str, n: int, repeats: int) -> dict[str, float]:
    """Load ``n`` requests into a fresh database at ``url`` and time the report."""
    engine = make_engine(url)
    upgrade(engine)
    t = time.perf_counter()
    insert_requests(engine, n)
    load_s = time.perf_counter() - t
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE pa_requests"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    rt = Runtime.build(
        Settings(database_url=url, profile="asa-reform"),
        engine=engine,
        clock=FixedClock(END + dt.timedelta(days=3)),
        profile=load_profile("asa-reform"),
    )
    cold = []
    for _ in range(repeats):
        t = time.perf_counter()
        report = service.public_report(rt, use_cache=False)
        cold.append(time.perf_counter() - t)
    service.clear_cache()
    service.public_report(rt)
    t = time.perf_counter()
    service.public_report(rt)
    warm = time.perf_counter() - t
    hidden = sum(1 for v in report.values.values() if v is None)
    engine.dispose()
    return {
        "load_s": load_s,
        "cold_median_s": statistics.median(cold),
        "cold_min_s": min(cold),
        "warm_s": warm,
        "facts": len(report.values),
        "hidden": hidden,
    }


def main() -> None:
    """Parse arguments, run on each database, print the figures."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--postgres", help="an empty PostgreSQL database URL (its tables are created)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        r = run(url, args.requests, args.repeats)
        print(
            f"sqlite     {args.requests:>9,} requests: load {r['load_s']:.1f} s; public report cold "
            f"{r['cold_median_s']:.2f} s (min {r['cold_min_s']:.2f}), cached {r['warm_s'] * 1000:.0f} ms; "
            f"{r['facts']} facts, {r['hidden']} suppressed"
        )
    if args.postgres:
        r = run(args.postgres, args.requests, args.repeats)
        print(
            f"postgresql {args.requests:>9,} requests: load {r['load_s']:.1f} s; public report cold "
            f"{r['cold_median_s']:.2f} s (min {r['cold_min_s']:.2f}), cached {r['warm_s'] * 1000:.0f} ms; "
            f"{r['facts']} facts, {r['hidden']} suppressed"
        )


if __name__ == "__main__":
    main()
