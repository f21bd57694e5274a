"""Simulator benchmark: simulated requests per second through the real services, and where the time goes.

Runs a WA state-year at a fraction of its volume under two profiles (each on its own temporary SQLite
database, one process per profile as `wiserpa simulate` does), prints requests/s per profile, the extrapolated
time for 50,000 requests under two profiles, the machine's load, and (with --profile) the cumulative time of
the service calls. cProfile sees one process only, so --profile runs the profiles one after another.

With --breakdown it runs sequentially and prints the wall time spent in each kind of event handler (arrivals,
claims, decisions, sweeps, ...), per call and per simulated request, without cProfile's overhead.

    python bench/bench_sim.py [--requests 2000] [--clinicians 2.9] [--workers N] [--profile | --breakdown]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from wiserpa.sim.engine import Scenario, _Run, simulate  # noqa: E402
from wiserpa.sim.workload import annual_volume, load_assumptions  # noqa: E402

SERVICES = (
    "requests/service.py:.*(submit|resubmit)",
    "reviews/service.py:.*(worklist|decide)",
    "deadlines/service.py:.*sweep",
    "goldcard/service.py:.*evaluate",
    "claims/service.py:.*submit_claim",
    "support/service.py:.*(open_ticket|add_message|resolve)",
    "audit/service.py:.*record_many",
    "sim/engine.py:.*finish",
)


# The event loop's handlers, timed by --breakdown.
HANDLERS = ("submit_arrivals", "bill_claims", "resubmit", "on_decide", "on_tick", "on_sweep", "on_ticket",
            "on_ticket_answer", "finish")  # fmt: skip


def time_handlers() -> dict[str, list[float]]:
    """Wrap the engine's handlers to add up their wall time; returns name -> [seconds, calls]."""
    totals: dict[str, list[float]] = {name: [0.0, 0] for name in HANDLERS}
    for name in HANDLERS:
        original = getattr(_Run, name)

        def timed(
            self: _Run, *args: object, _f: object = original, _name: str = name, **kw: object
        ) -> object:
            t0 = time.perf_counter()
            try:
                return _f(self, *args, **kw)  # type: ignore[operator]
            finally:
                totals[_name][0] += time.perf_counter() - t0
                totals[_name][1] += 1

        setattr(_Run, name, timed)
    return totals


def main() -> None:
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=2000, help="requests over the year (volume is scaled)")
    ap.add_argument("--clinicians", type=float, default=None, help="reviewer clinicians at full scale")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--workers", type=int, default=None, help="processes (default: one per profile)")
    ap.add_argument(
        "--profile", action="store_true", help="cProfile the run (sequential) and print service times"
    )
    ap.add_argument(
        "--breakdown", action="store_true", help="time each kind of event handler (runs sequentially)"
    )
    args = ap.parse_args()
    handlers = time_handlers() if args.breakdown else None
    full = annual_volume(load_assumptions(), "WA")
    scale = args.requests / full
    scenario = Scenario(state="WA", year=2026, scale=scale, seed=args.seed, requests=args.requests,
                        clinicians=args.clinicians)  # fmt: skip
    load_before = os.getloadavg()
    prof = cProfile.Profile() if args.profile else None
    t0 = time.perf_counter()
    if prof is not None:
        prof.enable()
    workers = 1 if args.profile or args.breakdown else args.workers
    result = simulate(scenario, workers=workers)
    if prof is not None:
        prof.disable()
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()
    mode = "sequential" if workers == 1 else f"{workers or 'one per profile'} worker processes"
    print(f"WA 2026 at scale {scale:.4f} ({args.requests} first requests; full state-year ~{full:,.0f}), "
          f"{os.cpu_count()} CPUs, {mode}, load {load_before[0]:.1f} before, {load_after[0]:.1f} after")  # fmt: skip
    total_requests = 0
    for run in result.runs:
        total_requests += int(run.metrics["requests_submitted"] or 0)
        print(f"  {run.profile_id:<12} {run.metrics['requests_submitted']:>6} requests "
              f"(+{run.metrics['claims']} claims, {run.metrics['support_tickets']} tickets) in "
              f"{run.wall_seconds:6.1f} s = {run.requests_per_second:6.1f} requests/s")  # fmt: skip
    rate = total_requests / wall if wall else 0.0
    print(f"  overall {rate:.1f} requests/s over {wall:.1f} s (incl. a year of ticks, sweeps)")
    if rate:
        est = 2 * 50_000 / rate
        print(f"  50,000 requests x 2 profiles would take about {est:,.0f} s ({est / 60:.1f} min) run {mode}; "
              "goal 60 s with one process per profile")  # fmt: skip
    if handlers is not None:
        print("  where the time went (all profiles, wall seconds in each handler):")
        for name, (seconds, calls) in sorted(handlers.items(), key=lambda kv: -kv[1][0]):
            if calls:
                print(f"    {name:<18} {seconds:8.2f} s  {int(calls):>7} calls  {seconds / calls * 1000:8.3f} ms/call  "
                      f"{seconds / total_requests * 1000:6.3f} ms/request")  # fmt: skip
    if prof is not None:
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out).sort_stats("cumulative")
        for pattern in SERVICES:
            stats.print_stats(pattern, 3)
        print("\n".join(line for line in out.getvalue().splitlines() if "wiserpa" in line and ".py:" in line))


if __name__ == "__main__":
    main()
