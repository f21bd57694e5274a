"""Load test: `wiserpa serve --workers 2` on PostgreSQL under a mixed workload, bounded in time.

    WISERPA_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \
        python bench/load_test.py --duration 60          # saturation search, then 70 % of it
    python bench/load_test.py --soak 300                 # 5-minute soak at 70 %: RSS per worker over time

Workload per operation (weights): submit 30 %, status read 35 %, reviewer decision 15 %, worklist 10 %,
list 10 %. A fresh database is created and dropped. Prints throughput, p50/p99 latency, errors and each
worker's RSS (sampled every second from /proc). The client is a bounded asyncio httpx pool on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.factories import body
from tests.reliability.server import PG_ENV, Server, fresh_database, make_key

from wiserpa.auth.models import Role

WEIGHTS = {"submit": 30, "read": 35, "decide": 15, "worklist": 10, "list": 10}


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process, in MB (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Load:
    """Shared state of one run: keys, known request ids, latencies and errors."""

    def __init__(self, base: str, provider: str, reviewers: list[str], seed: int) -> None:
        self.base, self.provider, self.reviewers = base, provider, reviewers
        self.rng = random.Random(seed)
        self.ids: list[int] = []
        self.pended: list[int] = []
        self.lat: list[float] = []
        self.errors: dict[str, int] = {}
        self.n = 0
        self.dos = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=14)

    async def one(self, client: httpx.AsyncClient) -> None:
        """Run one operation of the mix and record its latency."""
        op = self.rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
        if op in ("read", "decide") and not self.ids:
            op = "submit"
        if op == "decide" and not self.pended:
            op = "read"
        self.n += 1
        prov = {"Authorization": f"Bearer {self.provider}"}
        rev = {"Authorization": f"Bearer {self.rng.choice(self.reviewers)}"}
        t = time.perf_counter()
        try:
            if op == "submit":
                case = self.rng.choice(["complete", "unmet", "exempt"])
                b = body(case=case, seed=10_000 + self.n + self.rng.randrange(10**6), dos=self.dos)
                r = await client.post(
                    "/api/v1/requests", json=b, headers={**prov, "Idempotency-Key": f"l{self.n}"}
                )
                ok = r.status_code == 201
                if ok:
                    self.ids.append(r.json()["id"])
                    if r.json()["status"] == "pended":
                        self.pended.append(r.json()["id"])
            elif op == "read":
                r = await client.get(f"/api/v1/requests/{self.rng.choice(self.ids)}", headers=prov)
                ok = r.status_code == 200
            elif op == "decide":
                rid = self.pended.pop(self.rng.randrange(len(self.pended)))
                r = await client.post(
                    f"/api/v1/requests/{rid}/decision", json={"decision": "affirm"}, headers=rev
                )
                ok = r.status_code in (200, 409)
            elif op == "worklist":
                r = await client.get("/api/v1/reviews/worklist?limit=20", headers=rev)
                ok = r.status_code == 200
            else:
                r = await client.get("/api/v1/requests?limit=20", headers=prov)
                ok = r.status_code == 200
            if not ok:
                self.errors[f"{op} {r.status_code}"] = self.errors.get(f"{op} {r.status_code}", 0) + 1
        except httpx.HTTPError as exc:
            self.errors[f"{op} {type(exc).__name__}"] = self.errors.get(f"{op} {type(exc).__name__}", 0) + 1
        self.lat.append(time.perf_counter() - t)


async def run(load: Load, *, seconds: float, rate: float | None, concurrency: int) -> dict[str, Any]:
    """Closed loop (rate None: as fast as `concurrency` clients go) or open loop at `rate` ops/s."""
    load.lat, load.errors = [], {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=load.base, timeout=30, limits=limits) as client:
        end = time.perf_counter() + seconds
        if rate is None:

            async def loop() -> None:
                while time.perf_counter() < end:
                    await load.one(client)

            await asyncio.gather(*(loop() for _ in range(concurrency)))
        else:
            sem = asyncio.Semaphore(concurrency)
            tasks: set[asyncio.Task[None]] = set()

            async def guarded() -> None:
                async with sem:
                    await load.one(client)

            start = time.perf_counter()
            k = 0
            while time.perf_counter() < end:
                due = start + k / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(guarded())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                k += 1
            await asyncio.gather(*tasks)
    lat = sorted(load.lat)
    return {
        "ops": len(lat),
        "throughput": len(lat) / seconds,
        "p50_ms": statistics.median(lat) * 1000 if lat else 0.0,
        "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000 if lat else 0.0,
        "errors": sum(load.errors.values()),
        "error_kinds": dict(load.errors),
    }


async def sample_rss(pids: list[int], stop: asyncio.Event, out: dict[int, list[float]]) -> None:
    """Every second, the RSS of each worker."""
    while not stop.is_set():
        for pid in pids:
            v = rss_mb(pid)
            if v is not None:
                out.setdefault(pid, []).append(v)
        await asyncio.sleep(1)


async def main_async(args: argparse.Namespace) -> None:
    """Start the server, find saturation, run at 70 % of it, report."""
    with tempfile.TemporaryDirectory() as tmp, fresh_database("postgres", Path(tmp)) as url:
        provider = make_key(url, Role.PROVIDER, n=1)
        reviewers = [make_key(url, Role.REVIEWER, n=20 + i) for i in range(4)]
        server = Server(url, Path(tmp) / "server.log", workers=args.workers)
        server.start()
        try:
            workers = [p for p in server.pids() if p != (server.proc.pid if server.proc else -1)]
            load = Load(server.base_url, provider, reviewers, seed=2026)
            await run(load, seconds=3, rate=None, concurrency=8)  # warm-up (lazy imports, pools)
            sat_seconds = min(15.0, max(5.0, args.duration / 4))
            sat = await run(load, seconds=sat_seconds, rate=None, concurrency=args.concurrency)
            target = 0.7 * sat["throughput"]
            print(
                f"saturation (closed loop, {args.concurrency} clients, {sat_seconds:.0f} s): "
                f"{sat['throughput']:.0f} ops/s, p50 {sat['p50_ms']:.1f} ms, p99 {sat['p99_ms']:.1f} ms, "
                f"errors {sat['errors']} {sat['error_kinds'] or ''}"
            )
            seconds = args.soak or args.duration
            stop = asyncio.Event()
            rss: dict[int, list[float]] = {}
            sampler = asyncio.create_task(sample_rss(workers, stop, rss))
            res = await run(load, seconds=seconds, rate=target, concurrency=args.concurrency * 2)
            stop.set()
            await sampler
            print(
                f"at 70% ({target:.0f} ops/s offered, {seconds:.0f} s, open loop): "
                f"{res['throughput']:.0f} ops/s sustained, p50 {res['p50_ms']:.1f} ms, "
                f"p99 {res['p99_ms']:.1f} ms, errors {res['errors']} {res['error_kinds'] or ''}"
            )
            for pid, series in sorted(rss.items()):
                q = max(1, len(series) // 4)
                print(
                    f"worker {pid} RSS MB: start {series[0]:.0f}, first-quarter mean "
                    f"{statistics.mean(series[:q]):.0f}, "
                    f"last-quarter mean {statistics.mean(series[-q:]):.0f}, "
                    f"max {max(series):.0f} ({len(series)} samples)"
                )
            print(f"requests stored during the run: {len(load.ids)}")
        finally:
            server.stop()


def main() -> None:
    """Parse arguments and run."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=60.0, help="seconds at 70%% of saturation")
    p.add_argument("--soak", type=float, default=0.0, help="soak seconds instead of --duration (e.g. 300)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=16, help="clients in the saturation search")
    args = p.parse_args()
    if not os.environ.get(PG_ENV):
        sys.exit(f"set {PG_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
