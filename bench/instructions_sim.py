"""Instructions one simulator profile run executes, counted by valgrind: a figure the machine's load cannot move.

Wall and CPU times on the shared machines drift by 30 % within an hour, so two runs of the same code can differ
more than a change does. Callgrind counts instructions instead (the same count for the same code and inputs,
whatever else runs), so an A/B of two trees needs one run each, side by side:

    python bench/instructions_sim.py --requests 1000 [--policy asa-reform]
    python /tmp/old/bench/instructions_sim.py --requests 1000     # a `git worktree` of the older commit

Only `simulate` is counted (not start-up and imports): a tiny C library built here with gcc switches
callgrind's instrumentation on and off around it (valgrind/callgrind.h, from Debian's valgrind package).
Hash randomization is fixed so sets iterate alike. Under valgrind a 1,000-request year takes about two minutes.
Work done by the kernel (file I/O) is not counted, so a change that saves system calls shows in times only.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_SHIM = """#include <valgrind/callgrind.h>
void cg_start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void cg_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; CALLGRIND_DUMP_STATS_AT("simulate"); }
"""


def _measured_run(shim: str, requests: int, policy: str) -> None:
    """The run valgrind watches: set up, then count only `simulate`."""
    import ctypes

    sys.path.insert(0, str(ROOT / "src"))
    from wiserpa.sim.engine import Scenario, _template_db, load_catalog_once, simulate
    from wiserpa.sim.workload import annual_volume, load_assumptions

    scale = requests / annual_volume(load_assumptions(), "WA")
    scenario = Scenario(state="WA", year=2026, scale=scale, requests=requests, profiles=(policy,))
    load_catalog_once()
    _template_db()
    lib = ctypes.CDLL(shim)
    lib.cg_start()
    simulate(scenario, workers=1)
    lib.cg_stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--policy", default="asa-reform")
    ap.add_argument("--measured-run", metavar="SHIM", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measured_run:
        _measured_run(args.measured_run, args.requests, args.policy)
        return
    with tempfile.TemporaryDirectory(prefix="wiserpa-cg-") as tmp:
        source, shim = Path(tmp) / "cg.c", Path(tmp) / "libcg.so"
        source.write_text(_SHIM)
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(shim), str(source)], check=True)
        command = [
            "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={tmp}/out.%p",
            sys.executable, __file__, "--requests", str(args.requests), "--policy", args.policy,
            "--measured-run", str(shim),
        ]  # fmt: skip
        done = subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}, check=False
        )
        found = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or found is None:
            sys.exit(f"valgrind run failed ({done.returncode}):\n{done.stderr[-2000:]}")
        print(f"{args.policy}, {args.requests} requests: {int(found.group(1)):,} instructions in simulate()")


if __name__ == "__main__":
    main()
