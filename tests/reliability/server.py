"""Run `wiserpa serve` as a real process for the reliability tests (and create databases and keys for it)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import text

from wiserpa.auth.models import OrgKind, Role
from wiserpa.auth.service import create_organization, create_user, issue_key
from wiserpa.policy.clock import SystemClock
from wiserpa.policy.validation import make_valid_npi
from wiserpa.store.db import make_engine, make_sessionmaker
from wiserpa.store.migrate import upgrade

PG_ENV = "WISERPA_TEST_POSTGRES_URL"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def fresh_database(kind: str, tmp: Path) -> Iterator[str]:
    """A new, migrated database: a SQLite file, or a PostgreSQL database dropped afterwards."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp / 'server.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
        return
    base = os.environ[PG_ENV]
    name = f"wiserpa_rel_{uuid.uuid4().hex[:10]}"
    admin = make_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.rsplit("/", 1)[0] + "/" + name
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def make_key(
    url: str, role: Role, *, state: str = "TX", n: int = 1, organization_id: int | None = None
) -> str:
    """Create a user of `role` (with an organization when it needs one) and return its API key."""
    engine = make_engine(url)
    now = SystemClock().now()
    with make_sessionmaker(engine)() as session:
        org_id = organization_id
        if org_id is None and role in (Role.PROVIDER, Role.REVIEWER):
            kind = OrgKind.PRACTICE if role is Role.PROVIDER else OrgKind.PARTICIPANT
            org_id = create_organization(
                session, name=f"{role.value} {n}", kind=kind, now=now, state=state
            ).id
        user = create_user(
            session,
            name=f"{role.value} {n}",
            role=role,
            now=now,
            organization_id=org_id,
            state=state if role is Role.REVIEWER else None,
            npi=make_valid_npi(970_000 + n) if role is Role.REVIEWER else None,
            is_clinician=role is Role.REVIEWER,
            credentials="MD",
        )
        key = issue_key(session, user=user, now=now)
        session.commit()
    engine.dispose()
    return key


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the `wiserpa` command (from this interpreter) and capture its output."""
    return subprocess.run(
        [sys.executable, "-c", "from wiserpa.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@dataclass
class Server:
    """A `wiserpa serve` process group that can be killed with SIGKILL and started again."""

    database_url: str
    log_path: Path
    workers: int = 1
    port: int = 0
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        """Start and wait until /readyz answers 200."""
        self.port = self.port or free_port()
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from wiserpa.cli import main; main()",
                "serve",
                "--port",
                str(self.port),
                "--database-url",
                self.database_url,
                "--workers",
                str(self.workers),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "WISERPA_LOG_LEVEL": "WARNING", **(self.env or {})},
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(self.base_url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout}s; see {self.log_path}")

    def pids(self) -> list[int]:
        """The server process and its workers."""
        if self.proc is None:
            return []
        out = subprocess.run(["pgrep", "-g", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def kill(self) -> None:
        """SIGKILL the whole process group (no shutdown hooks run: a crash)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        """SIGTERM and wait (a clean shutdown)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()
        self.proc = None
