"""Claims benchmark: claims matched per second with 1,000,000 authorizations on file, beside request submits.

Both figures are measured in the same run, in-process, through the application services (no HTTP): each claim
is `claims.service.submit_claim` + commit (two lines: the procedure, half with a UTN, and its anesthesia);
each request is `requests.service.submit` + commit. Authorizations are bulk-inserted with SQLAlchemy Core.
Prints the query plans of the two match lookups, so an index scan can be seen, not assumed.

    python bench/bench_claims.py [--authorizations 1000000] [--claims 2000] [--requests 500]
                                 [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import Engine, insert, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scratch import scratch_postgres  # noqa: E402
from tests.factories import body  # noqa: E402

from wiserpa.auth.models import OrgKind, Role  # noqa: E402
from wiserpa.auth.service import create_organization, create_user, principal_for  # noqa: E402
from wiserpa.claims import service as claims  # noqa: E402
from wiserpa.claims.schemas import SubmitClaimIn  # noqa: E402
from wiserpa.config import Settings  # noqa: E402
from wiserpa.policy.clock import FixedClock  # noqa: E402
from wiserpa.policy.profiles import load_profile  # noqa: E402
from wiserpa.policy.utn import make_utn  # noqa: E402
from wiserpa.policy.validation import make_valid_mbi, make_valid_npi  # noqa: E402
from wiserpa.requests import service as requests  # noqa: E402
from wiserpa.requests.models import PaRequest, RequestLine  # noqa: E402
from wiserpa.requests.schemas import SubmitRequestIn  # noqa: E402
from wiserpa.runtime import Runtime  # noqa: E402
from wiserpa.store.db import make_engine  # noqa: E402
from wiserpa.store.migrate import upgrade  # noqa: E402

NOW = dt.datetime(2026, 3, 21, 15, 0, tzinfo=dt.UTC)
DECIDED = dt.datetime(2026, 3, 2, 16, 0, tzinfo=dt.UTC)
DOS = dt.date(2026, 3, 20)
CODES = ["62321", "62323", "64479", "64483"]
MBI_OFFSET = 5_000_000  # authorizations' beneficiaries do not collide with the request-submit beneficiaries


def bulk_authorizations(engine: Engine, n: int, org_id: int, chunk: int = 20_000) -> float:
    """Insert n affirmed epidural authorizations (one line each) with Core; return seconds taken."""
    t0 = time.perf_counter()
    npi = make_valid_npi(77)
    with engine.begin() as conn:
        for start in range(1, n + 1, chunk):
            ids = range(start, min(start + chunk, n + 1))
            reqs = [
                {
                    "id": i,
                    "utn": make_utn(prefix2="CH", part="H", serial=i),
                    "state": "TX",
                    "participant": "Cohere Health",
                    "jurisdiction": "JH",
                    "organization_id": org_id,
                    "provider_npi": npi,
                    "beneficiary_mbi": make_valid_mbi(MBI_OFFSET + i),
                    "category": "epidural_steroid_injection",
                    "policy_id": "L36920",
                    "primary_code": CODES[i % 4],
                    "place_of_service": "22",
                    "date_of_service": DOS,
                    "urgency": "standard",
                    "channel": "portal",
                    "received_at": DECIDED,
                    "clock_started_at": DECIDED,
                    "due_at": DECIDED + dt.timedelta(hours=72),
                    "deems_on_due": True,
                    "status": "affirmed",
                    "decision_kind": "criteria",
                    "decided_at": DECIDED,
                    "valid_until": DECIDED.date() + dt.timedelta(days=120),
                    "profile_id": "asa-reform",
                    "profile_version": "2026.1",
                    "audit_sampled": False,
                    "time_sensitive_attestation": False,
                    "diagnosis_codes": ["M54.16"],
                    "clinical_facts": {},
                    "criteria_results": [],
                    "attachments": [],
                    "raw_submission": {},
                    "version": 1,
                    "updated_at": DECIDED,
                }
                for i in ids
            ]
            conn.execute(insert(PaRequest), reqs)
            lines = [
                {
                    "request_id": i,
                    "seq": 0,
                    "code": CODES[i % 4],
                    "modifiers": [],
                    "units": 1,
                    "role": "primary",
                    "requested": True,
                }
                for i in ids
            ]
            conn.execute(insert(RequestLine), lines)
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"SELECT setval('pa_requests_id_seq', {n})"))
            conn.execute(text("ANALYZE pa_requests"))
            conn.execute(text("ANALYZE request_lines"))
        else:
            conn.execute(text("ANALYZE"))
    return time.perf_counter() - t0


def query_plans(engine: Engine) -> list[str]:
    """Plans of a claim line's two lookups (primary: beneficiary + code; associated: by category)."""
    mbi = make_valid_mbi(MBI_OFFSET + 42)
    primary = select(PaRequest.id).where(
        PaRequest.beneficiary_mbi == mbi,
        PaRequest.category == "epidural_steroid_injection",
        select(RequestLine.id)
        .where(RequestLine.request_id == PaRequest.id, RequestLine.code == "62323")
        .exists(),
    )
    assoc = select(PaRequest.id).where(
        PaRequest.beneficiary_mbi == mbi, PaRequest.category.in_(["epidural_steroid_injection"])
    )
    out = []
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        for stmt in (primary, assoc):
            sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
            rows = conn.execute(text(prefix + sql)).all()
            out.append(" | ".join(str(r[-1]) for r in rows))
    return out


def run(url: str, label: str, n_auth: int, n_claims: int, n_requests: int) -> None:
    """Fill one database and measure."""
    engine = make_engine(url)
    upgrade(engine)
    clock = FixedClock(NOW)
    rt = Runtime.build(
        Settings(database_url=url, profile="asa-reform"),
        clock=clock,
        engine=engine,
        profile=load_profile("asa-reform"),
    )
    with rt.sessions() as s:
        org = create_organization(s, name="bench practice", kind=OrgKind.PRACTICE, now=NOW, state="TX")
        user = create_user(s, name="bench biller", role=Role.PROVIDER, now=NOW, organization_id=org.id)
        s.commit()
        principal = principal_for(user)
        org_id = org.id
    load_s = bulk_authorizations(engine, n_auth, org_id)
    print(f"[{label}] bulk-inserted {n_auth:,} authorizations (+1 line each) in {load_s:.1f} s")
    for plan in query_plans(engine):
        print(f"[{label}] plan: {plan}")
    rng = random.Random(7)
    bodies = []
    for k in range(n_claims):
        i = rng.randint(1, n_auth)
        code = CODES[i % 4]
        first = {
            "code": code,
            "date_of_service": DOS.isoformat(),
            "rendering_npi": make_valid_npi(300 + k % 50),
            "place_of_service": "22",
        }
        if k % 2 == 0:
            first["utn"] = make_utn(prefix2="CH", part="H", serial=i)
        anesthesia = {**first, "code": "01938", "units": 30}
        anesthesia.pop("utn", None)
        raw = {
            "state": "TX",
            "claim_type": "professional",
            "billing_provider": {"npi": make_valid_npi(900 + k % 50)},
            "beneficiary": {"mbi": make_valid_mbi(MBI_OFFSET + i)},
            "lines": [first, anesthesia],
        }
        bodies.append((SubmitClaimIn.model_validate(raw), raw))
    fees = claims.load_fee_schedule()
    outcomes: dict[str, int] = {}
    t0 = time.perf_counter()
    with rt.sessions() as s:
        for data, raw in bodies:
            claim = claims.submit_claim(s, rt, principal=principal, data=data, raw=raw, fee_schedule=fees)
            s.commit()
            for ln in claim.lines:
                outcomes[ln.outcome] = outcomes.get(ln.outcome, 0) + 1
            s.expunge_all()
    claim_s = time.perf_counter() - t0
    # Requests submitted through the same kind of call, in the same run, on the same 1M-row tables.
    req_bodies = []
    for k in range(n_requests):
        raw = body(seed=k + 1, case="complete")
        req_bodies.append((SubmitRequestIn.model_validate(raw), raw))
    t0 = time.perf_counter()
    with rt.sessions() as s:
        for req_data, req_raw in req_bodies:
            requests.submit(s, rt, principal=principal, data=req_data, raw=req_raw)
            s.commit()
            s.expunge_all()
    req_s = time.perf_counter() - t0
    cps, rps = n_claims / claim_s, n_requests / req_s
    print(
        f"[{label}] claims matched: {n_claims} in {claim_s:.2f} s = {cps:,.0f} claims/s "
        f"({2 * n_claims / claim_s:,.0f} lines/s); outcomes {outcomes}"
    )
    print(f"[{label}] request submits: {n_requests} in {req_s:.2f} s = {rps:,.0f} requests/s")
    print(f"[{label}] claims/s ÷ requests/s = {cps / rps:.2f}")
    engine.dispose()


def main() -> None:
    """Run on SQLite, and on PostgreSQL when a URL is given."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--authorizations", type=int, default=1_000_000)
    ap.add_argument("--claims", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--postgres-url", default=None, help="server URL; a scratch database is made and dropped")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{tmp}/bench.db", "sqlite", args.authorizations, args.claims, args.requests)
    if args.postgres_url:
        with scratch_postgres(args.postgres_url) as url:
            run(url, "postgresql", args.authorizations, args.claims, args.requests)


if __name__ == "__main__":
    main()
