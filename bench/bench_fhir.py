"""FHIR `$submit` benchmark beside the plain REST submit, measured in the same run, in-process.

Both go through the whole app (authentication, validation, engine, storage, response) with Starlette's
TestClient on one migrated SQLite file (or PostgreSQL); each submission is a new beneficiary so every one is
decided by the criteria, not replayed or frequency-limited. The FHIR body is the derived WISeR bundle
`tests/fixtures/fhir/pas-wiser-esi-64483-tx-standard.json` (a unique Bundle.identifier and MBI each time).
Prints bundles/s, p50 and p99 for each and the FHIR/REST throughput ratio.

    python bench/bench_fhir.py [--n 300] [--postgres-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scratch import scratch_postgres  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from tests.factories import body  # noqa: E402

from wiserpa.app import create_app  # noqa: E402
from wiserpa.auth.models import OrgKind, Role  # noqa: E402
from wiserpa.auth.service import create_organization, create_user, issue_key  # noqa: E402
from wiserpa.config import Settings  # noqa: E402
from wiserpa.policy.validation import make_valid_mbi  # noqa: E402
from wiserpa.runtime import Runtime  # noqa: E402
from wiserpa.store.migrate import upgrade  # noqa: E402

BUNDLE = (ROOT / "tests" / "fixtures" / "fhir" / "pas-wiser-esi-64483-tx-standard.json").read_text()


def _key(rt: Runtime) -> str:
    now = rt.clock.now()
    with rt.sessions() as s:
        org = create_organization(s, name="bench practice", kind=OrgKind.PRACTICE, now=now, state="TX")
        user = create_user(s, name="bench", role=Role.PROVIDER, now=now, organization_id=org.id)
        key = issue_key(s, user=user, now=now)
        s.commit()
    return key


def _stats(samples: list[float], wall: float) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "per_s": len(samples) / wall,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000,
    }


def run(url: str, n: int) -> dict[str, dict[str, float]]:
    """Submit ``n`` REST bodies and ``n`` PAS bundles; figures for each."""
    rt = Runtime.build(Settings(database_url=url, sweep_interval_seconds=0, log_json=False))
    upgrade(rt.engine)
    headers = {"Authorization": f"Bearer {_key(rt)}"}
    out: dict[str, dict[str, float]] = {}
    with TestClient(create_app(rt)) as client:
        rest_bodies = [body(seed=10_000 + i) for i in range(n + 20)]
        fhir_bodies = []
        for i in range(n + 20):
            text = BUNDLE.replace("1EG4TE5MK73", make_valid_mbi(500_000 + i)).replace(
                "WISER-ESI-STANDARD", f"BENCH-{i}"
            )
            fhir_bodies.append(text.encode())
        for name, send in (
            ("rest", lambda i: client.post("/api/v1/requests", json=rest_bodies[i], headers=headers)),
            (
                "fhir",
                lambda i: client.post(
                    "/fhir/Claim/$submit",
                    content=fhir_bodies[i],
                    headers={**headers, "Content-Type": "application/fhir+json"},
                ),
            ),
        ):
            for i in range(n, n + 20):  # warm-up on bodies not measured
                assert send(i).status_code in (200, 201)
            samples: list[float] = []
            started = time.perf_counter()
            for i in range(n):
                t0 = time.perf_counter()
                resp = send(i)
                samples.append(time.perf_counter() - t0)
                assert resp.status_code in (200, 201), resp.text[:300]
            out[name] = _stats(samples, time.perf_counter() - started)
    rt.engine.dispose()
    return out


def _print(label: str, figures: dict[str, dict[str, float]]) -> None:
    for name, f in figures.items():
        print(
            f"{label:10} {name:5} {f['per_s']:8.1f} /s"
            f"   p50 {f['p50_ms']:7.1f} ms   p99 {f['p99_ms']:7.1f} ms"
        )
    print(f"{label:10} fhir/rest throughput ratio {figures['fhir']['per_s'] / figures['rest']['per_s']:.2f}")


def main(argv: list[str] | None = None) -> None:
    """Run on SQLite and, when given, PostgreSQL."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--postgres-url", default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        _print("sqlite", run(f"sqlite:///{Path(tmp) / 'bench.db'}", args.n))
    if args.postgres_url:
        with scratch_postgres(args.postgres_url, "fhir") as url:
            _print("postgres", run(url, args.n))


if __name__ == "__main__":
    main()
