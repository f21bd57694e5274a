"""Submit benchmark: POST /api/v1/requests beside a bare FastAPI JSON endpoint, measured in the same run.

Both servers run as separate uvicorn processes (one worker each); wrk drives them from the other core.
Prints requests/s and p50/p99 latency for each, and the ratio, on SQLite and (when a URL is given) PostgreSQL;
also the floors in bench/bare_app.py (body validation async and sync, plus one committed insert), which show
how much of the bare endpoint's budget the unavoidable first steps of a submit already take.

    python bench/bench_submit.py [--duration 15] [--connections 8] [--postgres-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scratch import scratch_postgres  # noqa: E402
from tests.factories import body  # noqa: E402

from wiserpa.auth.models import OrgKind, Role  # noqa: E402
from wiserpa.auth.service import create_organization, create_user, issue_key  # noqa: E402
from wiserpa.policy.clock import SystemClock  # noqa: E402
from wiserpa.store.db import make_engine, make_sessionmaker  # noqa: E402
from wiserpa.store.migrate import upgrade  # noqa: E402

# Same-run floors served by bench/bare_app.py (see its docstring): what the first unavoidable steps cost.
FLOORS = ("/floor/validate", "/floor/validate-sync", "/floor/insert")


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, timeout: float = 30) -> None:
    """Poll until the server answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"server at {url} did not start")


def run_wrk(
    url: str, body_file: Path, headers: dict[str, str], duration: int, connections: int
) -> dict[str, float]:
    """Run wrk with the submit script; return requests/s, p50 and p99 in ms, and non-2xx count."""
    lua = body_file.with_suffix(".lua")
    template = (ROOT / "bench" / "submit.lua").read_text()
    preamble = f"wrk.method = 'POST'\nwrk.body = [==[{body_file.read_text()}]==]\n"
    preamble += "wrk.headers['Content-Type'] = 'application/json'\n"
    for k, v in headers.items():
        preamble += f"wrk.headers['{k}'] = '{v}'\n"
    lua.write_text(preamble + template)
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{duration}s", "--latency", "-s", str(lua), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        assert m, out
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "rps": rps,
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
        "errors": float(non2xx.group(1)) if non2xx else 0,
    }


def prepare_database(url: str) -> str:
    """Migrate the database and create a provider key."""
    engine = make_engine(url)
    upgrade(engine)
    now = SystemClock().now()
    with make_sessionmaker(engine)() as session:
        org = create_organization(session, name="Bench practice", kind=OrgKind.PRACTICE, now=now, state="TX")
        user = create_user(session, name="bench", role=Role.PROVIDER, now=now, organization_id=org.id)
        key = issue_key(session, user=user, now=now)
        session.commit()
    engine.dispose()
    return key


def serve(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a server process quietly."""
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)


def measure(db_label: str, url: str, duration: int, connections: int, workdir: Path) -> dict[str, object]:
    """Bare endpoint and submit endpoint, back to back, same machine state."""
    key = prepare_database(url)
    env = {
        **os.environ,
        "WISERPA_DATABASE_URL": url,
        "WISERPA_SWEEP_INTERVAL_SECONDS": "0",
        "WISERPA_LOG_JSON": "false",
        "BENCH_FLOOR_DIR": str(workdir),
    }
    bare_port, app_port = free_port(), free_port()
    bare = serve(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.bare_app:app",
            "--port",
            str(bare_port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env,
    )
    app = serve([sys.executable, "-m", "wiserpa.cli", "serve", "--port", str(app_port)], env)
    try:
        wait_up(f"http://127.0.0.1:{bare_port}/docs")
        wait_up(f"http://127.0.0.1:{app_port}/healthz")
        payload = body(seed=7)
        payload["beneficiary"]["mbi"] = "__MBI__"
        body_file = workdir / f"body-{db_label}.json"
        body_file.write_text(json.dumps(payload))
        probe = httpx.post(
            f"http://127.0.0.1:{app_port}/api/v1/requests",
            content=body_file.read_text().replace("__MBI__", "1EG4TE5MK73"),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        assert probe.status_code == 201, probe.text
        floor_body = workdir / f"floor-{db_label}.json"
        floor_body.write_text(body_file.read_text().replace("__MBI__", "1EG4TE5MK73"))
        run_wrk(f"http://127.0.0.1:{bare_port}/echo", body_file, {}, 2, connections)  # warm-up
        base = run_wrk(f"http://127.0.0.1:{bare_port}/echo", body_file, {}, duration, connections)
        floors = {
            path: run_wrk(f"http://127.0.0.1:{bare_port}{path}", floor_body, {}, duration, connections)
            for path in FLOORS
        }
        sub = run_wrk(
            f"http://127.0.0.1:{app_port}/api/v1/requests",
            body_file,
            {"Authorization": f"Bearer {key}"},
            duration,
            connections,
        )
    finally:
        for proc in (bare, app):
            proc.terminate()
            proc.wait(timeout=10)
    return {
        "database": db_label,
        "bare": base,
        "floors": floors,
        "submit": sub,
        "ratio": sub["rps"] / base["rps"],
    }


def main() -> None:
    """Run and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--postgres-url", default=os.environ.get("WISERPA_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")
    workdir = Path(tempfile.mkdtemp(prefix="wiserpa-bench-"))
    results = [measure("sqlite", f"sqlite:///{workdir}/bench.db", args.duration, args.connections, workdir)]
    if args.postgres_url:
        with scratch_postgres(args.postgres_url) as url:
            results.append(measure("postgresql", url, args.duration, args.connections, workdir))
    print(
        f"{'database':<11} {'endpoint':<24} {'req/s':>8} {'of bare':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'non-2xx':>8}"
    )
    for r in results:
        bare, floors, sub = r["bare"], r["floors"], r["submit"]
        assert isinstance(bare, dict) and isinstance(floors, dict) and isinstance(sub, dict)
        rows = [("bare FastAPI /echo", bare)]
        rows += [(f"floor {path.removeprefix('/floor/')}", m) for path, m in floors.items()]
        rows.append(("POST /api/v1/requests", sub))
        for label, m in rows:
            print(
                f"{r['database']:<11} {label:<24} {m['rps']:>8.0f} {m['rps'] / bare['rps']:>8.0%} "
                f"{m['p50_ms']:>8.2f} {m['p99_ms']:>8.2f} {m['errors']:>8.0f}"
            )
        print(f"{r['database']:<11} submit / bare = {r['ratio']:.0%}  (goal ≥ 35%)")


if __name__ == "__main__":
    main()
