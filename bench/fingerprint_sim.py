"""A digest of everything a simulator run reports, to show that a speed change changed no result.

Run it on two trees (a `git worktree` of the older commit, say) and compare the lines: the same seed and
volume must give the same digest, profile by profile, when a change only makes the services faster.

    python bench/fingerprint_sim.py --requests 3000
    python /tmp/old/bench/fingerprint_sim.py --requests 3000

Wall times are left out (they differ run to run); metrics, weekly series, outcomes and the conservation
checks are in. `--show` prints the metrics too, to see what differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from wiserpa.sim.engine import Scenario, simulate  # noqa: E402
from wiserpa.sim.workload import annual_volume, load_assumptions  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--profiles", default="wiser-2026,asa-reform")
    ap.add_argument("--show", action="store_true", help="print each profile's metrics as well")
    args = ap.parse_args()
    scale = args.requests / annual_volume(load_assumptions(), "WA")
    scenario = Scenario(
        state="WA", year=2026, scale=scale, requests=args.requests, seed=args.seed,
        profiles=tuple(args.profiles.split(",")),
    )  # fmt: skip
    result = simulate(scenario, workers=1)
    for run in result.runs:
        reported = {
            "metrics": run.metrics,
            "series": run.series,
            "outcomes": run.outcomes,
            "checks": run.checks,
        }
        text = json.dumps(reported, sort_keys=True, default=str)
        print(f"{run.profile_id:<12} {hashlib.sha256(text.encode()).hexdigest()[:16]}")
        if args.show:
            print(json.dumps(run.metrics, sort_keys=True, indent=1, default=str))


if __name__ == "__main__":
    main()
