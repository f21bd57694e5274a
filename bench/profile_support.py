"""Where a support ticket's time goes, without HTTP: `support.service` operations + commit, called in-process.

Times, on a fresh database, CPU milliseconds per call (best of several rounds) of: opening a ticket
(`open_ticket`), staff's first response (`add_message`), staff resolving the answered ticket (`resolve`), the
simulator's answer (`add_message` then `resolve` on an unanswered ticket), and reading a ticket with its thread
(`get_ticket` + `ticket_view`, as GET /tickets/{id} renders it). Each call runs in its own session and
transaction as the REST routes run it, beside a baseline measured in the same run: one committed insert through
the same engine. With ``--profile`` it prints the cProfile of one round of answers, sorted by cumulative time.

    python bench/profile_support.py [--rounds 8] [--per-round 100] [--postgres-url URL] [--profile]
"""

from __future__ import annotations

import cProfile
import datetime as dt
import os
import pstats
import sys
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scratch import best_ms, migrated_runtime, on_each_database, profiling_options  # noqa: E402

from wiserpa.auth.models import OrgKind, Role  # noqa: E402
from wiserpa.auth.service import create_organization, create_user, principal_for  # noqa: E402
from wiserpa.support import service as support  # noqa: E402

T0 = dt.datetime(2026, 3, 2, 16, 0, tzinfo=dt.UTC)
STATE = "TX"


def measure(url: str, rounds: int, per_round: int, profile: bool) -> tuple[float, ...]:
    """Baseline, open, first response, resolve, answer (response + resolve) and read CPU ms per call."""
    rt, clock = migrated_runtime(url, T0)
    with rt.sessions() as s:
        participant = create_organization(
            s, name="Participant", kind=OrgKind.PARTICIPANT, now=T0, state=STATE
        )
        staff = principal_for(
            create_user(
                s, name="Help desk", role=Role.REVIEWER, now=T0, organization_id=participant.id, state=STATE
            )
        )
        practice = create_organization(s, name="Practice", kind=OrgKind.PRACTICE, now=T0, state=STATE)
        provider = principal_for(
            create_user(s, name="Front desk", role=Role.PROVIDER, now=T0, organization_id=practice.id)
        )
        s.execute(text("CREATE TABLE bench_floor (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"))
        s.commit()
    payload = "x" * 2000
    opened: list[int] = []  # ticket ids in opening order
    answered: list[int] = []  # ticket ids with a first response, not resolved

    def floor(n: int) -> None:
        with rt.sessions() as s:
            s.execute(text("INSERT INTO bench_floor (id, body) VALUES (:i, :b)"), {"i": n + 1, "b": payload})
            s.commit()

    def open_(n: int) -> None:
        with rt.sessions() as s:
            t = support.open_ticket(
                s, rt, principal=provider, category="portal_access", subject="Cannot complete a request",
                description="Upload fails.", state=STATE, urgent_trigger="pain" if n % 3 == 0 else None,
            )  # fmt: skip
            s.commit()
            opened.append(t.id)

    def respond(n: int) -> None:
        tid = opened.pop()
        with rt.sessions() as s:
            support.add_message(s, rt, principal=staff, ticket_id=tid, body="Fixed; try again.")
            s.commit()
        answered.append(tid)

    def resolve(n: int) -> None:
        with rt.sessions() as s:
            support.resolve(s, rt, principal=staff, ticket_id=answered.pop())
            s.commit()

    def answer(n: int) -> None:
        tid = opened.pop()
        with rt.sessions() as s:
            support.add_message(s, rt, principal=staff, ticket_id=tid, body="Fixed; try again.")
            support.resolve(s, rt, principal=staff, ticket_id=tid)
            s.commit()

    def read(n: int) -> None:
        with rt.sessions() as s:
            t = support.get_ticket(s, rt, principal=provider, ticket_id=n % 200 + 1)
            support.ticket_view(t, now=clock.now())
            s.commit()

    warm = 50
    for n in range(warm):  # warm caches and compiled statements
        floor(10**8 + n)
        open_(n)
        open_(n)
        respond(n)
        resolve(n)
        answer(n)
    base = best_ms(floor, rounds, per_round)
    opened_ms = best_ms(open_, rounds, per_round * 2)  # enough unanswered tickets for what follows
    clock.set(T0 + dt.timedelta(hours=2))  # answered in time
    respond_ms = best_ms(respond, rounds, per_round // 2)
    resolve_ms = best_ms(resolve, rounds, per_round // 2)
    answer_ms = best_ms(answer, rounds, per_round)
    read_ms = best_ms(read, rounds, per_round)
    if profile:
        for n in range(per_round):
            open_(n)
        prof = cProfile.Profile()
        prof.enable()
        for n in range(per_round):
            answer(n)
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
    rt.engine.dispose()
    return base, opened_ms, respond_ms, resolve_ms, answer_ms, read_ms


def main() -> None:
    """Run and print the figures."""
    args = profiling_options(__doc__)
    results = on_each_database(measure, args)
    print(
        f"{'database':<11} {'insert':>7} {'open':>7} {'respond':>8} {'resolve':>8} {'answer':>7} {'read':>7}"
        f"   (CPU ms per call + commit, best of {args.rounds} rounds; load {os.getloadavg()[0]:.1f})"
    )
    for label, *figures in results:
        print(
            f"{label:<11} "
            + " ".join(f"{f:>{w}.3f}" for f, w in zip(figures, (7, 7, 8, 8, 7, 7), strict=True))
        )


if __name__ == "__main__":
    main()
