"""CPU per claim of `claims.service.submit_claims` in batches of a given size, on the simulator's own claims.

Runs a WA year the way `wiserpa simulate` does (a temporary SQLite database, the simulator's principals and
decisions) but keeps the claims it would bill instead of submitting them. Then, with every authorization in
its end-of-run state, submits those claims in batches of B, each received at its own instant, one savepoint
per batch as the simulator does, and rolls the transaction back, so every batch size and repeat sees the same
database. Prints the minimum over the repeats of CPU milliseconds per claim; a batch of one is what REST and
FHIR do.

    python bench/profile_claims_batch.py [--requests 3000] [--sizes 1 30] [--repeat 3] [--profile [--sort cumulative]] [--ids]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import pstats
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.scratch import simulator_run  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from wiserpa.claims import service as claims  # noqa: E402
from wiserpa.claims.schemas import SubmitClaimIn  # noqa: E402
from wiserpa.sim import engine  # noqa: E402


def collect_claims(sim: engine._Run, session: Session) -> list[claims.ClaimSubmission]:
    """Run the simulation, keeping (not submitting) every claim it bills, in billing order."""
    kept: list[claims.ClaimSubmission] = []

    def keep(session: Session, batch: list[tuple[tuple[engine.Episode, dt.date], dt.datetime]]) -> None:
        for (ep, dos), at in batch:
            for principal, raw in sim._claim_bodies(ep, dos):
                kept.append(
                    claims.ClaimSubmission(principal, SubmitClaimIn.model_validate(raw), raw, received_at=at)
                )

    sim.bill_claims = keep  # type: ignore[method-assign]
    sim.setup(session)
    sim.run(session)
    session.commit()
    return kept


def measure(
    sim: engine._Run,
    session: Session,
    items: list[claims.ClaimSubmission],
    size: int,
    profile: bool,
    sort: str = "tottime",
    ids: bool = False,
) -> float:
    """CPU ms per claim for submitting `items` in batches of `size`; everything is rolled back afterwards."""
    session.expunge_all()
    submit: Any = claims.store_claims if ids else claims.submit_claims
    prof = cProfile.Profile() if profile else None
    t0 = time.process_time()
    if prof is not None:
        prof.enable()
    for i in range(0, len(items), size):
        with session.begin_nested():
            submit(session, sim.rt, items[i : i + size], fee_schedule=sim.fees)
    if prof is not None:
        prof.disable()
    cpu = time.process_time() - t0
    # The whole transaction, not a savepoint: SQLite keeps a rolled-back-to savepoint open, and each repeat
    # nested one level deeper grew slower (2.6, 3.3, 4.4, 5.1 ms a claim at batches of 1).
    session.rollback()
    if prof is not None:
        pstats.Stats(prof).sort_stats(sort).print_stats(40)
    return cpu / len(items) * 1000


def main() -> None:
    """Simulate once, then time each batch size `--repeat` times and print the minimum."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 30])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--policy", default="wiser-2026", help="policy profile id")
    ap.add_argument("--profile", action="store_true", help="cProfile each size once (slower figures)")
    ap.add_argument("--sort", default="tottime", help="the profile's order (tottime, cumulative, ...)")
    ap.add_argument("--ids", action="store_true", help="store_claims (ids only, as the simulator bills)")
    args = ap.parse_args()
    n = args.requests
    with simulator_run(n, args.policy) as sim, sim.rt.sessions() as session:
        items = collect_claims(sim, session)
        print(f"{len(items)} claims from {n} simulated requests ({args.policy})")
        results: dict[int, list[float]] = {size: [] for size in args.sizes}
        # The simulator's garbage-collector settings: with the default ones, full collections over the run's
        # heap took a third of the time and landed on whatever allocated (SQLAlchemy's collection set-up).
        with engine._few_collections():
            for _ in range(1 if args.profile else args.repeat):
                for size in args.sizes:
                    results[size].append(
                        measure(sim, session, items, size, args.profile, args.sort, args.ids)
                    )
    for size, figures in results.items():
        runs: Any = ", ".join(f"{f:.3f}" for f in figures)
        print(f"batches of {size:>3}: {min(figures):.3f} ms CPU per claim (min of {runs})")


if __name__ == "__main__":
    main()
