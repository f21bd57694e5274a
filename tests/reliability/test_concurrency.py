"""Concurrency on PostgreSQL with `wiserpa serve --workers 2` as a real process (skipped without PostgreSQL).

Proves: concurrent clinician decisions on one request — exactly one applies, every other gets 409 (the row is
locked FOR UPDATE and the optimistic version is checked against If-Match); concurrent submissions with one
Idempotency-Key create exactly one request and every caller gets the same answer; the server really runs two
worker processes.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from tests.factories import body
from tests.reliability.server import PG_ENV, Server, fresh_database, make_key
from wiserpa.audit.models import AuditEntry
from wiserpa.audit.service import verify
from wiserpa.auth.models import Role
from wiserpa.requests.models import Decision, PaRequest
from wiserpa.store.db import make_engine, make_sessionmaker

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
THREADS = 8


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A two-worker server on a fresh PostgreSQL database, with a provider and eight TX reviewers."""
    if not os.environ.get(PG_ENV):
        pytest.skip(f"{PG_ENV} not set")
    tmp = tmp_path_factory.mktemp("concurrency")
    with fresh_database("postgres", tmp) as url:
        provider = make_key(url, Role.PROVIDER, n=1)
        reviewers = [make_key(url, Role.REVIEWER, n=10 + i) for i in range(THREADS)]
        server = Server(url, tmp / "server.log", workers=2)
        server.start()
        try:
            yield {"server": server, "url": url, "provider": provider, "reviewers": reviewers}
        finally:
            server.stop()


def _h(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def _pended(base: str, provider: str, seed: int) -> dict[str, Any]:
    dos = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=14)
    r = httpx.post(
        base + "/api/v1/requests",
        json=body(case="unmet", seed=seed, dos=dos),
        headers=_h(provider),
        timeout=30,
    )
    assert r.status_code == 201 and r.json()["status"] == "pended", r.text
    return dict(r.json())


def test_two_worker_processes(pg_server: dict[str, Any]) -> None:
    """`wiserpa serve --workers 2` runs a supervisor and two workers."""
    assert len(pg_server["server"].pids()) >= 3


@pytest.mark.parametrize("if_match", [True, False])
def test_concurrent_decisions_exactly_one_wins(pg_server: dict[str, Any], if_match: bool) -> None:
    """Eight reviewers decide the same request at once: one 200, seven 409, one clinician decision stored."""
    base, provider = pg_server["server"].base_url, pg_server["provider"]
    req = _pended(base, provider, seed=700 + int(if_match))
    headers = {"If-Match": f'"{req["version"]}"'} if if_match else {}

    def decide(i: int) -> int:
        outcome = "affirm" if i % 2 == 0 else "non_affirm"
        payload: dict[str, Any] = {"decision": outcome}
        if outcome == "non_affirm":
            payload["reasons"] = [c["criterion_id"] for c in req["criteria_results"] if c["result"] != "met"][
                :1
            ]
        r = httpx.post(
            f"{base}/api/v1/requests/{req['id']}/decision",
            json=payload,
            headers=_h(pg_server["reviewers"][i], **headers),
            timeout=30,
        )
        return r.status_code

    with ThreadPoolExecutor(THREADS) as pool:
        codes = sorted(pool.map(decide, range(THREADS)))
    assert codes.count(200) == 1 and codes.count(409) == THREADS - 1, codes
    final = httpx.get(f"{base}/api/v1/requests/{req['id']}", headers=_h(provider), timeout=30).json()
    clinician = [d for d in final["decisions"] if d["kind"].startswith("clinician_")]
    assert len(clinician) == 1 and final["status"] in ("affirmed", "non_affirmed")
    assert final["version"] == req["version"] + 1


def test_stale_if_match_is_409(pg_server: dict[str, Any]) -> None:
    """A decision made against an older version is refused (optimistic concurrency)."""
    base = pg_server["server"].base_url
    req = _pended(base, pg_server["provider"], seed=710)
    r = httpx.post(
        f"{base}/api/v1/requests/{req['id']}/decision",
        json={"decision": "affirm"},
        headers=_h(pg_server["reviewers"][0], **{"If-Match": '"999"'}),
        timeout=30,
    )
    assert r.status_code == 409


def test_concurrent_same_idempotency_key_creates_one_request(pg_server: dict[str, Any]) -> None:
    """Eight identical submissions with one key, at once, on two workers: one request, one answer."""
    base, provider, url = pg_server["server"].base_url, pg_server["provider"], pg_server["url"]
    dos = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=14)
    payload = body(seed=720, dos=dos)

    def submit(_: int) -> tuple[int, int]:
        r = httpx.post(
            base + "/api/v1/requests",
            json=payload,
            headers=_h(provider, **{"Idempotency-Key": "same-key-720"}),
            timeout=30,
        )
        return r.status_code, int(r.json().get("id", -1))

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(submit, range(THREADS)))
    assert {code for code, _ in results} == {201}, results
    assert len({rid for _, rid in results}) == 1, results
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        n = session.scalar(
            select(func.count())
            .select_from(PaRequest)
            .where(PaRequest.beneficiary_mbi == payload["beneficiary"]["mbi"])
        )
    engine.dispose()
    assert n == 1


def test_sweep_processes_deem_each_request_exactly_once(pg_server: dict[str, Any]) -> None:
    """Two `wiserpa sweep --once` processes at once, beside the server's own sweeper: one deemed approval each."""
    base, provider, url = pg_server["server"].base_url, pg_server["provider"], pg_server["url"]
    ids = [_pended(base, provider, seed=800 + i)["id"] for i in range(30)]
    engine = make_engine(url)
    with engine.begin() as conn:
        # The server reads the wall clock, so move these deadlines into the past rather than wait 72 hours.
        conn.execute(
            update(PaRequest)
            .where(PaRequest.id.in_(ids))
            .values(due_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
        )
    env = {**os.environ, "WISERPA_DATABASE_URL": url}
    cmd = [sys.executable, "-m", "wiserpa.cli", "sweep", "--once"]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    with make_sessionmaker(engine)() as session:
        deemed = session.execute(
            select(Decision.request_id, func.count())
            .where(Decision.request_id.in_(ids), Decision.kind == "deemed")
            .group_by(Decision.request_id)
        ).all()
        audited = session.execute(
            select(AuditEntry.object_id, func.count())
            .where(AuditEntry.action == "request.deemed", AuditEntry.object_id.in_([str(i) for i in ids]))
            .group_by(AuditEntry.object_id)
        ).all()
        statuses = set(session.scalars(select(PaRequest.status).where(PaRequest.id.in_(ids))))
        chain = verify(session)
    engine.dispose()
    assert statuses == {"deemed_affirmed"}
    assert sorted(r for r, _ in deemed) == sorted(ids) and {n for _, n in deemed} == {1}
    assert len(audited) == len(ids) and {n for _, n in audited} == {1}
    assert chain.ok, chain.problems
