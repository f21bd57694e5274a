"""CPU per submission of `requests.submit_many` in batches of a given size, on the simulator's own set-up.

Builds a WA year's patients and practices the way `wiserpa simulate` does (a temporary SQLite database, the
simulator's principals), then submits every patient's request in batches of B, each received at its own instant,
committing every ten batches as the simulator does about daily. Prints CPU milliseconds per submission for each
batch size given, in the same run; a batch of one is what the REST route does.

    python bench/profile_batch_submit.py [--requests 4000] [--sizes 1 4 16] [--policy wiser-2026] [--profile [--sort cumulative]]

`--policy asa-reform` runs the gold-card path too (no cards are held yet, so every batch asks and none answers).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    # After PYTHONPATH, so another copy of the tree can be measured with PYTHONPATH=/that/src.
    sys.path.append(str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.scratch import simulator_run  # noqa: E402

from wiserpa.requests import service as requests  # noqa: E402
from wiserpa.requests.schemas import SubmitRequestIn  # noqa: E402


def run(n: int, size: int, profile: bool, policy: str = "wiser-2026", sort: str = "tottime") -> float:
    """CPU ms per submission for batches of `size` on a fresh database."""
    with simulator_run(n, policy) as sim, sim.rt.sessions() as session:
        sim.setup(session)
        episodes = sim.episodes
        sim.clock.set(episodes[-1].arrival.at)
        batches = []
        for i in range(0, len(episodes), size):
            items = []
            for ep in episodes[i : i + size]:
                raw = sim._submission(ep)
                items.append(requests.Submission(
                    sim.practices[ep.arrival.practice], SubmitRequestIn.model_validate(raw), raw,
                    received_at=ep.arrival.at,
                ))  # fmt: skip
            batches.append(items)
        prof = cProfile.Profile() if profile else None
        t0 = time.process_time()
        if prof is not None:
            prof.enable()
        for k, items in enumerate(batches):
            with session.begin_nested():
                requests.submit_many(session, sim.rt, items)
            if k % 10 == 9:
                session.commit()
        session.commit()
        if prof is not None:
            prof.disable()
            pstats.Stats(prof).sort_stats(sort).print_stats(40)
        cpu = time.process_time() - t0
    return cpu / len(episodes) * 1000


def main() -> None:
    """Run each batch size and print its figure."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--policy", default="wiser-2026", help="policy profile to submit under")
    ap.add_argument("--profile", action="store_true", help="cProfile each size (slower figures)")
    ap.add_argument("--sort", default="tottime", help="pstats order for --profile (tottime, cumulative)")
    args = ap.parse_args()
    for size in args.sizes:
        ms = run(args.requests, size, args.profile, args.policy, args.sort)
        print(f"batches of {size:>3}: {ms:.3f} ms CPU per submission ({args.requests} submissions)")


if __name__ == "__main__":
    main()
