"""Where a submit's time goes, without HTTP: the unit of work a REST submit runs, called in-process.

Times `authenticate` + `http.once(requests.service.submit)` + commit — the same calls the REST route makes —
sequentially on a fresh database, best of several rounds of CPU time (so a busy machine disturbs it less), beside a
baseline measured in the same run: one committed insert of the raw body through the same engine. With
``--profile`` it prints the cProfile of one round, sorted by cumulative time.

    python bench/profile_submit.py [--rounds 8] [--per-round 100] [--postgres-url URL] [--profile]
"""

from __future__ import annotations

import cProfile
import os
import pstats
import random
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scratch import best_ms, on_each_database, profiling_options  # noqa: E402
from tests.factories import body  # noqa: E402

from wiserpa.auth.models import OrgKind, Role  # noqa: E402
from wiserpa.auth.service import authenticate, create_organization, create_user, issue_key  # noqa: E402
from wiserpa.config import Settings  # noqa: E402
from wiserpa.http import once  # noqa: E402
from wiserpa.policy.validation import make_valid_mbi  # noqa: E402
from wiserpa.requests import service  # noqa: E402
from wiserpa.requests.schemas import SubmitRequestIn  # noqa: E402
from wiserpa.runtime import Runtime  # noqa: E402
from wiserpa.store.db import make_engine  # noqa: E402
from wiserpa.store.idempotency import Outcome  # noqa: E402
from wiserpa.store.migrate import upgrade  # noqa: E402


def measure(url: str, rounds: int, per_round: int, profile: bool) -> tuple[float, float]:
    """Baseline and submit CPU ms per call on one database."""
    engine = make_engine(url)
    upgrade(engine)
    rt = Runtime.build(Settings(database_url=url), engine=engine)
    now = rt.clock.now()
    with rt.sessions() as s:
        org = create_organization(s, name="Bench practice", kind=OrgKind.PRACTICE, now=now, state="TX")
        user = create_user(s, name="bench", role=Role.PROVIDER, now=now, organization_id=org.id)
        key = issue_key(s, user=user, now=now)
        s.execute(text("CREATE TABLE bench_floor (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"))
        s.commit()
    payload = body(seed=7)
    rng = random.Random(1)

    def floor(n: int) -> None:
        with rt.sessions() as s:
            s.execute(
                text("INSERT INTO bench_floor (id, body) VALUES (:i, :b)"), {"i": n + 1, "b": str(payload)}
            )
            s.commit()

    def submit(n: int) -> None:
        raw: dict[str, Any] = {
            **payload,
            "beneficiary": {**payload["beneficiary"], "mbi": make_valid_mbi(rng.randrange(10**9))},
        }
        data = SubmitRequestIn.model_validate(raw)
        with rt.sessions() as session:
            principal = authenticate(session, key, now=rt.clock.now())
            assert principal is not None

            def work() -> Outcome:
                req = service.submit(session, rt, principal=principal, data=data, raw=raw)
                return Outcome(201, service.request_view(rt, req, now=rt.clock.now()))

            scope = f"org:{principal.organization_id}:submit"
            once(session, rt, scope=scope, key=f"bench-{n}", raw=raw, work=work)

    for n in range(50):  # warm caches and compiled statements
        submit(10**8 + n)
    base = best_ms(floor, rounds, per_round)
    sub = best_ms(submit, rounds, per_round)
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        for n in range(per_round):
            submit(10**9 + n)
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
    engine.dispose()
    return base, sub


def main() -> None:
    """Run and print the figures."""
    args = profiling_options(__doc__)
    results = on_each_database(measure, args)
    print(
        f"{'database':<11} {'one committed insert':>22} {'submit (unit of work)':>22} {'ratio':>7}   (CPU ms per call, best of {args.rounds} x {args.per_round}; load {os.getloadavg()[0]:.1f})"
    )
    for label, base, sub in results:
        print(f"{label:<11} {base:>22.3f} {sub:>22.3f} {sub / base:>7.1f}")


if __name__ == "__main__":
    main()
