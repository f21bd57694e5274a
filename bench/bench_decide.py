"""Benchmark: coverage-criteria evaluation per second on one core, over a realistic mix of all categories.

Run: ``python bench/bench_decide.py [--requests N]``. Prints requests/s and p50/p99 latency for
``criteria.evaluate`` alone and for ``validate_facts + coerce_facts + evaluate`` (what a decision does with
the clinical facts). The lead extends this to the full ``decide()`` later.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from wiserpa.policy.criteria import (
    HistoryItem,
    PolicyCriteria,
    coerce_facts,
    evaluate,
    load_criteria,
    validate_facts,
)
from wiserpa.policy.examples import COMPLETE_FACTS, VIOLATIONS

DOS = dt.date(2026, 6, 1)
Case = tuple[PolicyCriteria, str, dict[str, Any], list[HistoryItem]]


def build_mix(n: int, seed: int = 7) -> list[Case]:
    """Requests spread over every policy: 70% complete, 15% missing a fact, 15% violating; ESI and skin
    substitutes carry a short history so the frequency limits do real work."""
    rng = random.Random(seed)
    lib = load_criteria()
    policies = list(lib.policies.values())
    cases: list[Case] = []
    for _ in range(n):
        policy = rng.choice(policies)
        category = policy.categories[0]
        facts = dict(COMPLETE_FACTS[category])
        roll = rng.random()
        if roll < 0.15:
            facts.pop(rng.choice(sorted(facts)))
        elif roll < 0.30:
            fact, bad, _ = VIOLATIONS[category]
            facts[fact] = bad
        history: list[HistoryItem] = []
        if category in ("epidural_steroid_injection", "skin_substitutes"):
            key = "spinal_region" if category == "epidural_steroid_injection" else "wound_id"
            for _ in range(rng.randint(0, 5)):
                history.append(
                    HistoryItem(
                        date_of_service=DOS - dt.timedelta(days=rng.randint(1, 400)),
                        category=category,
                        policy_id=policy.policy_id,
                        facts={key: facts.get(key, "lumbar")},
                        status=rng.choice(["affirmed", "affirmed", "deemed_affirmed", "non_affirmed"]),
                    )
                )
        cases.append((policy, category, facts, history))
    return cases


def measure(cases: list[Case], *, full: bool) -> tuple[float, list[float]]:
    """Return (requests per second, per-request latencies in ms)."""
    prepared = [(p, c, coerce_facts(p, f), h) for p, c, f, h in cases] if not full else cases
    latencies: list[float] = []
    clock = time.perf_counter
    start = clock()
    for policy, category, facts, history in prepared:
        t0 = clock()
        if full:
            validate_facts(policy, facts)
            facts = coerce_facts(policy, facts)
        evaluate(policy, facts, date_of_service=DOS, category=category, history=history)
        latencies.append((clock() - t0) * 1000.0)
    elapsed = clock() - start
    return len(prepared) / elapsed, latencies


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    args = parser.parse_args()
    cases = build_mix(args.requests)
    measure(cases[:2000], full=True)  # warm-up
    print(
        f"criteria evaluation, {args.requests} requests over {len({c[0].policy_id for c in cases})} policies"
    )
    for label, full in (("evaluate only", False), ("validate+coerce+evaluate", True)):
        runs = [measure(cases, full=full) for _ in range(3)]
        rps, lat = max(runs, key=lambda r: r[0])
        print(
            f"  {label:<26} {rps:>10,.0f} req/s   p50 {pct(lat, 0.50):.4f} ms   p99 {pct(lat, 0.99):.4f} ms"
            f"   (median of runs {statistics.median(r[0] for r in runs):,.0f} req/s)"
        )


if __name__ == "__main__":
    main()
