"""Crash safety: a real `wiserpa serve` process, SIGKILLed at random points under sustained submissions.

What it proves, on SQLite and on PostgreSQL (fresh database each):
- every submission that received a 2xx is present after the crashes and intact: the stored raw submission
  equals what was sent, and the request reads back with the id, UTN, received and due times first answered;
- no submission is duplicated: clients retry everything unacknowledged with the same Idempotency-Key, and each
  key maps to exactly one request (and a retry of an acknowledged one replays the first answer);
- the audit hash chain verifies (`wiserpa audit verify` exits 0) after the crashes;
- deadlines survive restarts: every due time equals the policy's computation from the stored clock start, and
  MAC-forwarded requests whose 72 h window started at MAC receipt four days earlier read as deemed affirmed
  after the restart (asa-reform) — the clock lives in the database, not in process memory.
The server reads the wall clock, so no test here waits for a deadline: they are put in the past on purpose.
Seeded by WISERPA_CRASH_SEED; rounds by WISERPA_CRASH_ROUNDS.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.factories import body
from tests.reliability.server import PG_ENV, Server, cli, fresh_database, make_key
from wiserpa.auth.models import Role
from wiserpa.policy.catalog import load_catalog
from wiserpa.policy.clock import due_time
from wiserpa.policy.profiles import calendar_for, load_profile, timeline_for
from wiserpa.requests.models import PaRequest
from wiserpa.store.db import make_engine, make_sessionmaker

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("WISERPA_CRASH_SEED", "20260"))
ROUNDS = int(os.environ.get("WISERPA_CRASH_ROUNDS", "3"))
CLIENTS = 4
FAILURES: collections.Counter[str] = collections.Counter()  # why submissions went unanswered
# Fields that must never change after acknowledgement (status may: time deems requests).
STABLE = (
    "id",
    "utn",
    "received_at",
    "clock_started_at",
    "due_at",
    "beneficiary_mbi",
    "provider_npi",
    "date_of_service",
    "category",
    "urgency",
    "channel",
    "lines",
    "criteria_results",
    "clinical_facts",
)


@dataclass
class Submission:
    """One client submission and what the server answered."""

    n: int
    key: str
    body: dict[str, Any]
    answer: dict[str, Any] | None = None  # the first 2xx body
    attempts: int = 0


def _bodies(rng: random.Random, count: int) -> list[Submission]:
    today = dt.datetime.now(dt.UTC).date()
    dos = today + dt.timedelta(days=14)
    mac_at = (dt.datetime.now(dt.UTC) - dt.timedelta(days=4)).isoformat()
    out = []
    for n in range(count):
        kind = rng.random()
        if kind < 0.2:  # past due on arrival: the 72 h window started at MAC receipt, 4 days ago
            b = body(case="unmet", seed=5000 + n, dos=dos, channel="mac_forwarded", mac_received_at=mac_at)
        elif kind < 0.4:
            b = body(case="unmet", seed=5000 + n, dos=dos, urgency="expedited")
        else:
            b = body(case=rng.choice(["complete", "unmet", "exempt"]), seed=5000 + n, dos=dos)
        out.append(Submission(n, f"crash-{SEED}-{n}", b))
    return out


def _submit(client: httpx.Client, sub: Submission, key: str) -> bool:
    """Send one submission; False when the server did not answer (it is retried later with its key)."""
    sub.attempts += 1
    try:
        r = client.post(
            "/api/v1/requests",
            json=sub.body,
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": sub.key},
        )
    except httpx.HTTPError as exc:
        FAILURES[type(exc).__name__] += 1
        return False
    if r.status_code == 201:
        if sub.answer is None:
            sub.answer = r.json()
        else:  # a retry of an acknowledged submission must replay the same answer
            assert r.json()["id"] == sub.answer["id"]
    elif r.status_code >= 500:
        FAILURES[f"http {r.status_code}"] += 1
    elif r.status_code < 500:
        raise AssertionError(f"submission {sub.n} refused: {r.status_code} {r.text[:300]}")
    return True


def _drive(server: Server, subs: list[Submission], key: str, rng: random.Random) -> int:
    """Submit until the server is SIGKILLed at a random moment; return how many were attempted."""
    pending = [s for s in subs if s.answer is None and s.attempts == 0]
    stop = threading.Event()
    lock = threading.Lock()
    attempted = 0

    def worker() -> None:
        nonlocal attempted
        with httpx.Client(base_url=server.base_url, timeout=10) as client:
            while not stop.is_set():
                with lock:
                    if not pending:
                        return
                    sub = pending.pop(0)
                    attempted += 1
                if not _submit(client, sub, key):
                    return  # the server is gone: this client stops, as a real one would

    # Warm up first (the first request pays for lazy imports), so the kill lands in steady traffic.
    assert (
        httpx.get(
            server.base_url + "/api/v1/requests?limit=1",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        ).status_code
        == 200
    )
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(worker) for _ in range(CLIENTS)]
        stop.wait(rng.uniform(1.0, 3.0))
        server.kill()  # mid-flight: some requests are being processed right now
        stop.set()
        for f in futures:
            f.result()
    return attempted


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_sigkill_loses_nothing_acknowledged(backend: str, tmp_path: Path) -> None:
    """SIGKILL under load, restart, retry with the same keys: all acknowledged work is intact, once."""
    if backend == "postgres" and not os.environ.get(PG_ENV):
        pytest.skip(f"{PG_ENV} not set")
    rng = random.Random(SEED)
    FAILURES.clear()
    with fresh_database(backend, tmp_path) as url:
        provider_key = make_key(url, Role.PROVIDER, n=1)
        server = Server(url, tmp_path / "server.log")
        subs = _bodies(rng, 1500)
        kills = 0
        t0 = time.monotonic()
        try:
            for _ in range(ROUNDS):
                server.start()
                _drive(server, subs, provider_key, rng)
                kills += 1
            server.start()
            t_crash = time.monotonic() - t0
            acked_before_retry = sum(1 for s in subs if s.answer is not None)
            attempted = [s for s in subs if s.attempts]
            lost_in_flight = [s for s in attempted if s.answer is None]
            # Retry everything unacknowledged with the same key, and a sample of acknowledged ones.
            resample = rng.sample(
                [s for s in attempted if s.answer is not None], k=min(25, acked_before_retry)
            )
            with httpx.Client(base_url=server.base_url, timeout=30) as client:
                for sub in lost_in_flight + resample:
                    _submit(client, sub, provider_key)
                assert all(s.answer is not None for s in attempted), "a retry with the same key failed"
                views = {}
                for sub in attempted:
                    assert sub.answer is not None
                    r = client.get(
                        f"/api/v1/requests/{sub.answer['id']}",
                        headers={"Authorization": f"Bearer {provider_key}"},
                    )
                    assert r.status_code == 200, r.text
                    views[sub.n] = r.json()
        finally:
            server.stop()
        t_check = time.monotonic() - t0 - t_crash

        # Intact: the stored raw body is what was sent, and the stable fields read back as first answered.
        engine = make_engine(url)
        with make_sessionmaker(engine)() as session:
            rows = {r.id: r for r in session.scalars(select(PaRequest))}
            dupes = session.execute(
                select(PaRequest.beneficiary_mbi, func.count())
                .group_by(PaRequest.beneficiary_mbi)
                .having(func.count() > 1)
            ).all()
        engine.dispose()
        assert not dupes, f"duplicated submissions: {dupes[:5]}"
        assert len(rows) == len(attempted), (len(rows), len(attempted))
        profile, catalog = load_profile("asa-reform"), load_catalog()
        deemed = 0
        for sub in attempted:
            assert sub.answer is not None
            row = rows[sub.answer["id"]]
            assert row.raw_submission == sub.body
            view = views[sub.n]
            for name in STABLE:
                assert view[name] == sub.answer[name], (sub.n, name)
            # The deadline is the policy's function of the stored clock start, whatever happened to processes.
            state = catalog.state(row.state)
            assert state is not None
            want = due_time(
                row.clock_started_at,
                timeline_for(profile, row.urgency, row.channel),
                calendar_for(profile, state.timezone),
            )
            assert row.due_at == want
            if row.channel == "mac_forwarded" and sub.answer["status"] in ("pended", "deemed_affirmed"):
                assert view["status"] == "deemed_affirmed", (sub.n, view["status"])
                deemed += 1
        assert deemed > 0

        verify = cli("audit", "verify", "--database-url", url)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        print(
            f"\ncrash safety [{backend}]: {kills} SIGKILLs, {len(attempted)} submissions attempted, "
            f"{acked_before_retry} acknowledged before the retries, {len(lost_in_flight)} unacknowledged and "
            f"retried with their keys (all committed exactly once), {len(resample)} acknowledged replayed, "
            f"{len(rows)} requests stored, 0 duplicates, {deemed} past-due requests read as deemed after "
            f"restart; {verify.stdout.strip()} ({t_crash:.0f} s of crashes, {t_check:.0f} s of checks); "
            f"unanswered: {dict(FAILURES)}"
        )
