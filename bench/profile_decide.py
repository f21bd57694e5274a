"""Where a clinician decision's time goes, without HTTP: `reviews.service.decide` + commit, called in-process.

Submits pended requests (unmet or incomplete facts) to a fresh database, then times one decision per request —
affirm, or non-affirm citing the request's gaps, alternately — each in its own session and transaction as the
REST route runs it, best of several rounds of CPU time, beside a baseline measured in the same run: one committed
insert through the same engine. It also times the simulator's light worklist read (`details=False`, 40 items),
then decisions on requests already past due, which deem them on the spot and record the decision as late (3%
of the simulator's decisions). With ``--profile`` it prints the cProfile of one round of each kind of decision,
sorted by cumulative time.

    python bench/profile_decide.py [--rounds 8] [--per-round 100] [--postgres-url URL] [--profile]
"""

from __future__ import annotations

import cProfile
import datetime as dt
import os
import pstats
import random
import sys
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scratch import best_ms, migrated_runtime, on_each_database, profiling_options  # noqa: E402

from wiserpa.auth.models import OrgKind, Role  # noqa: E402
from wiserpa.auth.service import create_organization, create_user, principal_for  # noqa: E402
from wiserpa.policy.validation import make_valid_npi  # noqa: E402
from wiserpa.requests import service as requests  # noqa: E402
from wiserpa.requests.models import PaRequest  # noqa: E402
from wiserpa.requests.schemas import SubmitRequestIn  # noqa: E402
from wiserpa.reviews import service as reviews  # noqa: E402
from wiserpa.runtime import Runtime  # noqa: E402
from wiserpa.synthetic import make_submission  # noqa: E402

T0 = dt.datetime(2026, 3, 2, 16, 0, tzinfo=dt.UTC)
STATE = "TX"


def pended_requests(rt: Runtime, provider: object, count: int) -> list[tuple[int, list[str]]]:
    """Submit until `count` requests are pended; (id, criteria not met) of each."""
    rng = random.Random(1)
    categories = [c for c in rt.catalog.categories if rt.catalog.governing_policy(c, STATE)]
    dos = (T0 + dt.timedelta(days=30)).date()
    found: list[tuple[int, list[str]]] = []
    while len(found) < count:
        items = []
        for _ in range(200):
            raw = make_submission(
                rt.catalog, rng, state=STATE, category=rng.choice(categories),
                case=rng.choice(("unmet", "incomplete")), date_of_service=dos,
            )  # fmt: skip
            items.append(requests.Submission(provider, SubmitRequestIn.model_validate(raw), raw))  # type: ignore[arg-type]
        with rt.sessions() as session:
            for req in requests.submit_many(session, rt, items):
                if isinstance(req, PaRequest) and req.status == "pended":
                    gaps = [r["criterion_id"] for r in req.criteria_results if r.get("result") != "met"]
                    found.append((req.id, gaps))
            session.commit()
    return found[:count]


def print_profile(fn: Callable[[int], None], calls: int) -> None:
    """The cProfile of `calls` calls, sorted by cumulative time."""
    prof = cProfile.Profile()
    prof.enable()
    for n in range(calls):
        fn(n)
    prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(40)


def measure(url: str, rounds: int, per_round: int, profile: bool) -> tuple[float, float, float, float]:
    """Baseline, decide, light-worklist and past-due decide CPU ms per call on one database."""
    rt, clock = migrated_runtime(url, T0)
    with rt.sessions() as s:
        participant = create_organization(
            s, name="Participant", kind=OrgKind.PARTICIPANT, now=T0, state=STATE
        )
        reviewer = principal_for(
            create_user(
                s, name="Dr Reviewer", role=Role.REVIEWER, now=T0, organization_id=participant.id, state=STATE,
                npi=make_valid_npi(990_001), specialty="Pain Medicine", credentials="MD", is_clinician=True,
            )
        )  # fmt: skip
        practice = create_organization(s, name="Practice", kind=OrgKind.PRACTICE, now=T0, state=STATE)
        provider = principal_for(
            create_user(s, name="Front desk", role=Role.PROVIDER, now=T0, organization_id=practice.id)
        )
        s.execute(text("CREATE TABLE bench_floor (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"))
        s.commit()
    warm = 50
    each = warm + rounds * per_round + (per_round if profile else 0)
    pended = pended_requests(rt, provider, 2 * each)
    todo, past_due = pended[:each], pended[each:]
    clock.set(T0 + dt.timedelta(hours=2))  # well before any due time: every decision applies
    payload = "x" * 2000

    def floor(n: int) -> None:
        with rt.sessions() as s:
            s.execute(text("INSERT INTO bench_floor (id, body) VALUES (:i, :b)"), {"i": n + 1, "b": payload})
            s.commit()

    def decide(n: int) -> None:
        rid, gaps = todo[n]
        non_affirm = bool(gaps) and n % 2 == 0
        with rt.sessions() as s:
            reviews.decide(
                s, rt, principal=reviewer, request_id=rid, outcome="non_affirm" if non_affirm else "affirm",
                reasons=gaps[:2] if non_affirm else [], note="Reviewed against the governing NCD/LCD.",
            )  # fmt: skip
            s.commit()

    def worklist(n: int) -> None:
        with rt.sessions() as s:
            reviews.worklist(s, rt, principal=reviewer, limit=40, details=False)
            s.commit()

    for n in range(warm):  # warm caches and compiled statements
        decide(n)
        floor(10**8 + n)
        worklist(n)
    base = best_ms(floor, rounds, per_round)
    todo = todo[warm:]
    dec = best_ms(decide, rounds, per_round)
    work = best_ms(worklist, rounds, max(1, per_round // 4))
    if profile:
        todo = todo[rounds * per_round :]
        print_profile(decide, per_round)
    # Past every due time: each decision deems its request first, then is recorded as late.
    clock.set(T0 + dt.timedelta(days=60))
    todo = past_due
    for n in range(warm):
        decide(n)
    todo = todo[warm:]
    late = best_ms(decide, rounds, per_round)
    if profile:
        todo = todo[rounds * per_round :]
        print_profile(decide, per_round)
    rt.engine.dispose()
    return base, dec, work, late


def main() -> None:
    """Run and print the figures."""
    args = profiling_options(__doc__)
    results = on_each_database(measure, args)
    print(
        f"{'database':<11} {'one committed insert':>22} {'decide + commit':>16} {'ratio':>7} {'worklist (light)':>17}"
        f" {'decide past due':>16}   (CPU ms per call, best of {args.rounds} rounds; "
        f"load {os.getloadavg()[0]:.1f})"
    )
    for label, base, dec, work, late in results:
        print(f"{label:<11} {base:>22.3f} {dec:>16.3f} {dec / base:>7.1f} {work:>17.3f} {late:>16.3f}")


if __name__ == "__main__":
    main()
