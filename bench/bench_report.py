"""Benchmark: the full public report (aggregates, quantiles, suppression, CMS-0057-F, pay) over N requests.

Bulk-inserts a realistic mix with SQLAlchemy Core — the demo generator's distributions: six states, every
active category, 60/20/15/5 complete/incomplete/unmet/exempt, 15 % expedited, 10 % MAC-forwarded, review
delays drawn from the demo's list (6 … 500 h) so some participants run late — each request with the
decision rows the services would have written (pend, decision, withdrawal). Then, on SQLite and, with
``--postgres URL``, on PostgreSQL:

* **live**: ``service.public_report(rt, use_cache=False, rollup=False)`` — every request row read;
* **first**: the first report with the stored blocks empty (it sums and stores every block);
* **cold**: ``--repeats`` times, new activity (``--activity`` submissions, a third as many decisions on
  pended requests, a few withdrawals of recent affirmations) and then a report without the in-process
  cache — the stored blocks are brought up to date inside the timed call, so it shows the data as of now;
* **cached**: the same report again from the per-minute in-process cache.

    python bench/bench_report.py --requests 1000000 [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/bench]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text, update

import wiserpa.store.registry  # noqa: F401  (every table, as in the service: claims, support, ... are read)
from wiserpa.auth.models import OrgKind
from wiserpa.claims.models import Claim, ClaimLine
from wiserpa.config import Settings
from wiserpa.policy.catalog import load_catalog
from wiserpa.policy.clock import FixedClock
from wiserpa.policy.profiles import load_profile
from wiserpa.policy.validation import make_valid_mbi, make_valid_npi
from wiserpa.reporting import service
from wiserpa.requests.models import Decision, PaRequest
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
    claims: bool = False,
) -> None:
    """Insert ``n`` requests with outcomes applied and their decision rows (and, with ``claims``, the claims
    billed for every decided request: see `_claims_for`)."""
    rng = random.Random(seed)
    catalog = load_catalog()
    states = sorted(catalog.states)
    categories = active_categories(catalog)
    span = (end - start).total_seconds()
    with engine.begin() as conn:
        org_ids = {}
        for s in states:
            found = conn.execute(
                text("SELECT id FROM organizations WHERE name = :n"), {"n": f"bench practice {s}"}
            ).scalar()
            if found is not None:
                org_ids[s] = found
                continue
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
    # Ids follow arrival, as in the service (a request's id is reserved when it is submitted).
    arrivals = sorted(start + dt.timedelta(seconds=rng.random() * span) for _ in range(n))
    rows: list[dict[str, Any]] = []
    extras: list[dict[str, Any]] = []  # each row's decision rows, inserted once its id is known
    for i in range(n):
        state = states[i % len(states)]
        info = catalog.states[state]
        received = arrivals[i]
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
        # The decision rows the services write: the pipeline's, a clinician's or the deemed approval,
        # then the withdrawal.
        decisions = [
            (
                "auto_affirm" if case == "complete" else "exempt" if case == "exempt" else "pend",
                "pended" if case in ("incomplete", "unmet") else status,
                received,
            )
        ]
        if case in ("incomplete", "unmet") and status != "pended":
            later = {"deemed_affirmed": "deemed", "non_affirmed": "clinician_non_affirm"}
            decisions.append((later.get(status, "clinician_affirm"), status, decided or received))
        if rng.random() < 0.01 and status != "pended":
            status = "withdrawn"
            decisions.append(("withdrawn", status, (decided or received) + dt.timedelta(hours=1)))
        extras.append({"decisions": decisions})
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
            _insert(engine, rows, extras, rng if claims else None)
            rows, extras = [], []
    if rows:
        _insert(engine, rows, extras, rng if claims else None)


def _decision(request_id: int, kind: str, status: str, at: dt.datetime) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "kind": kind,
        "dedupe": "deemed" if kind == "deemed" else "",
        "resulting_status": status,
        "effective": True,
        "decided_at": at,
        "reasons": [],
        "note": None,
        "profile_id": "asa-reform",
        "profile_version": "bench",
        "criteria_results": [],
        "facts_used": {},
    }


def _insert(
    engine: Engine, rows: list[dict[str, Any]], extra: list[dict[str, Any]], claims_rng: random.Random | None
) -> None:
    with engine.begin() as conn:
        ids = (
            conn.execute(insert(PaRequest).returning(PaRequest.id, sort_by_parameter_order=True), rows)
            .scalars()
            .all()
        )
        decisions = [
            _decision(rid, kind, status, at)
            for rid, e in zip(ids, extra, strict=True)
            for kind, status, at in e["decisions"]
        ]
        conn.execute(insert(Decision), decisions)
        if claims_rng is not None:
            _insert_claims(conn, ids, rows, claims_rng)


BILLED = {"affirmed", "deemed_affirmed", "exempt_affirmed", "gold_card_affirmed", "non_affirmed"}


def _insert_claims(conn: Connection, ids: list[int], rows: list[dict[str, Any]], rng: random.Random) -> None:
    """One claim per decided request, as practices bill after care: the procedure line, and for 70 % an
    anesthesia line from a separate biller's claim. A non-affirmed service's lines are denied, and 2 % of the
    others are denied for other reasons; a fifth of denials are appealed (30 % overturned, 50 % upheld, the rest
    pending) — so the report's live claim reads have a realistic volume to go through."""
    billed = [(rid, r) for rid, r in zip(ids, rows, strict=True) if r["status"] in BILLED]
    claim_rows = []
    plans = []
    for rid, r in billed:
        anesthesia = rng.random() < 0.7
        for role in ("primary", "anesthesia") if anesthesia else ("primary",):
            denied = r["status"] == "non_affirmed" or rng.random() < 0.02
            appeal = None
            if denied and rng.random() < 0.2:
                appeal = rng.choices(("overturned", "upheld", "pending"), weights=(30, 50, 20))[0]
            claim_rows.append(
                {
                    "organization_id": r["organization_id"],
                    "claim_type": "professional",
                    "billing_npi": r["provider_npi"],
                    "beneficiary_mbi": r["beneficiary_mbi"],
                    "state": r["state"],
                    "participant": r["participant"],
                    "diagnosis_codes": [],
                    "channel": "rest",
                    "received_at": r["received_at"] + dt.timedelta(days=20),
                    "profile_id": "asa-reform",
                    "profile_version": "bench",
                    "fee_schedule": "bench",
                    "raw_submission": {},
                }
            )
            plans.append((rid, r, role, denied, appeal))
    if not claim_rows:
        return
    claim_ids = (
        conn.execute(insert(Claim).returning(Claim.id, sort_by_parameter_order=True), claim_rows)
        .scalars()
        .all()
    )
    lines = []
    for claim_id, (rid, r, role, denied, appeal) in zip(claim_ids, plans, strict=True):
        decided = r["received_at"] + dt.timedelta(days=20)
        lines.append(
            {
                "claim_id": claim_id,
                "seq": 0,
                "code": "62323" if role == "primary" else "01992",
                "modifiers": [],
                "units": 1,
                "date_of_service": r["date_of_service"],
                "rendering_npi": r["provider_npi"],
                "place_of_service": "22",
                "role": "primary" if role == "primary" else "associated",
                "kind": None if role == "primary" else "anesthesia",
                "category": r["category"],
                "outcome": "denied" if denied else "payable",
                "outcome_reason": "bench",
                "reasons": [],
                "request_id": rid,
                "matched_by": "utn" if role == "primary" else "beneficiary_code_date",
                "participant": r["participant"],
                "allowed_cents": 45_000 if role == "primary" else 21_000,
                "decided_at": decided,
                "appeal_status": appeal,
                "appealed_at": decided + dt.timedelta(days=5) if appeal else None,
            }
        )
    conn.execute(insert(ClaimLine), lines)


def activity(engine: Engine, now: dt.datetime, *, submits: int, seed: int) -> dict[str, int]:
    """What happens between two reports: new submissions, decisions on pended requests, withdrawals."""
    insert_requests(engine, submits, seed=seed, start=now - dt.timedelta(hours=12), end=now, deems=True)
    rng = random.Random(seed)
    with engine.begin() as conn:
        pended = (
            conn.execute(
                select(PaRequest.id)
                .where(PaRequest.status == "pended", PaRequest.due_at > now)
                .order_by(PaRequest.due_at)
                .limit(submits // 3)
            )
            .scalars()
            .all()
        )
        decided = [(rid, "affirmed" if rng.random() < 0.7 else "non_affirmed") for rid in pended]
        _change(conn, decided, now)
        recent = (
            conn.execute(
                select(PaRequest.id)
                .where(PaRequest.status == "affirmed", PaRequest.received_at >= now - dt.timedelta(days=30))
                .order_by(PaRequest.id.desc())
                .limit(2000)
            )
            .scalars()
            .all()
        )
        withdrawn = rng.sample(list(recent), min(len(recent), max(1, submits // 100)))
        _change(conn, [(rid, "withdrawn") for rid in withdrawn], now)
    return {"submitted": submits, "decided": len(decided), "withdrawn": len(withdrawn)}


def _change(conn: Connection, changes: list[tuple[int, str]], now: dt.datetime) -> None:
    """Change outcomes as the services do: the row (version + 1) and an appended decision."""
    for rid, status in changes:
        values: dict[str, Any] = {"status": status, "updated_at": now, "version": PaRequest.version + 1}
        if status != "withdrawn":
            values |= {"decided_at": now, "decision_kind": "clinician"}
        conn.execute(update(PaRequest).where(PaRequest.id == rid).values(**values))
        kind = {"affirmed": "clinician_affirm", "non_affirmed": "clinician_non_affirm"}.get(status, status)
        conn.execute(insert(Decision), [_decision(rid, kind, status, now)])


def _ms(timings: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0f}" for k, v in timings.items())


def run(url: str, n: int, repeats: int, submits: int, live: bool, claims: bool = False) -> dict[str, Any]:
    """Load ``n`` requests into a fresh database at ``url`` and time the report."""
    engine = make_engine(url)
    upgrade(engine)
    t = time.perf_counter()
    insert_requests(engine, n, claims=claims)
    load_s = time.perf_counter() - t
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    now = END + dt.timedelta(days=3)
    clock = FixedClock(now)
    rt = Runtime.build(
        Settings(database_url=url, profile="asa-reform"),
        engine=engine,
        clock=clock,
        profile=load_profile("asa-reform"),
    )
    out: dict[str, Any] = {"load_s": load_s}
    if live:
        t = time.perf_counter()
        report = service.public_report(rt, use_cache=False, rollup=False)
        out["live_s"] = time.perf_counter() - t
        out["live_timings"] = report.timings
    t = time.perf_counter()
    first = service.public_report(rt, use_cache=False)
    out["first_s"] = time.perf_counter() - t
    out["first_timings"] = first.timings
    if live:
        assert first.values == report.values and first.stats == report.stats, "rollup differs from live"
    cold: list[float] = []
    for i in range(repeats):
        now += dt.timedelta(minutes=10)
        clock.set(now)
        out["activity"] = activity(engine, now, submits=submits, seed=1000 + i)
        t = time.perf_counter()
        report = service.public_report(rt, use_cache=False)
        cold.append(time.perf_counter() - t)
        out.setdefault("cold_timings", []).append(report.timings)
    service.clear_cache()
    service.public_report(rt)
    t = time.perf_counter()
    service.public_report(rt)
    out["warm_s"] = time.perf_counter() - t
    out |= {
        "cold": cold,
        "facts": len(report.values),
        "hidden": sum(1 for v in report.values.values() if v is None),
    }
    engine.dispose()
    return out


def _print(name: str, n: int, r: dict[str, Any]) -> None:
    print(f"{name} {n:,} requests (load {r['load_s']:.0f} s), load average {os.getloadavg()[0]:.1f}")
    if "live_s" in r:
        print(f"  live (every row read)        {r['live_s']:6.2f} s   [{_ms(r['live_timings'])}] ms")
    print(f"  first (blocks empty)         {r['first_s']:6.2f} s   [{_ms(r['first_timings'])}] ms")
    cold = r["cold"]
    print(
        f"  COLD, up to date             {statistics.median(cold):6.2f} s median, min {min(cold):.2f}, "
        f"max {max(cold):.2f} over {len(cold)} (after each: {r['activity']})"
    )
    for timings in r["cold_timings"]:
        print(f"      [{_ms(timings)}] ms")
    print(f"  cached (in-process)          {r['warm_s'] * 1000:6.0f} ms")
    print(f"  {r['facts']} facts, {r['hidden']} suppressed")


def main() -> None:
    """Parse arguments, run on each database, print the figures."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--activity", type=int, default=1000, help="submissions between two timed reports")
    ap.add_argument("--no-live", action="store_true", help="skip the every-row live report")
    ap.add_argument(
        "--claims", action="store_true", help="also bill claims for every decided request (≈1.7 lines each)"
    )
    ap.add_argument("--postgres", help="an empty PostgreSQL database URL (its tables are created)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        _print(
            "sqlite",
            args.requests,
            run(url, args.requests, args.repeats, args.activity, not args.no_live, args.claims),
        )
    if args.postgres:
        r = run(args.postgres, args.requests, args.repeats, args.activity, not args.no_live, args.claims)
        _print("postgresql", args.requests, r)


if __name__ == "__main__":
    main()
