"""Shared fixtures: every storage test runs on SQLite and on PostgreSQL (when WISERPA_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from wiserpa.app import create_app
from wiserpa.auth.models import OrgKind, Role
from wiserpa.auth.service import create_organization, create_user, issue_key, principal_for
from wiserpa.config import Settings
from wiserpa.policy.clock import FixedClock
from wiserpa.policy.profiles import load_profile
from wiserpa.policy.validation import make_valid_npi
from wiserpa.reporting.service import clear_report_cache
from wiserpa.runtime import Runtime
from wiserpa.store.db import make_engine
from wiserpa.store.migrate import upgrade
from wiserpa.store.registry import Base

PG_ENV = "WISERPA_TEST_POSTGRES_URL"
# A Monday afternoon in Texas, inside business hours, well inside the model period.
T0 = dt.datetime(2026, 3, 2, 16, 0, tzinfo=dt.UTC)


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once is much faster)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # closing the last connection checkpoints the WAL into the file we copy
    return path


@contextmanager
def fresh_pg_database(base: str) -> Iterator[str]:
    """A new, migrated PostgreSQL database beside `base`, dropped on exit; yields its URL."""
    name = f"wiserpa_t_{_worker()}_{uuid.uuid4().hex[:8]}"
    admin = make_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.rsplit("/", 1)[0] + "/" + name
    try:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    """A migrated PostgreSQL database for this test process, dropped at the end."""
    base = os.environ.get(PG_ENV)
    if not base:
        yield None
        return
    with fresh_pg_database(base) as url:
        yield url


def sqlite_copy(template: Path, directory: Path) -> str:
    """The URL of a fresh copy of the migrated SQLite template in `directory`."""
    path = directory / "test.db"
    shutil.copy(template, path)
    return f"sqlite:///{path}"


def _truncate_pg(engine: Engine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables if t.name != "audit_head")
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        conn.execute(text("UPDATE audit_head SET last_id = 0, last_hash = :g"), {"g": "0" * 64})


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """A fresh, migrated, empty database on each backend."""
    if request.param == "sqlite":
        yield sqlite_copy(sqlite_template, tmp_path)
        return
    url = request.getfixturevalue("pg_database")
    if url is None:
        pytest.skip(f"{PG_ENV} not set")
    engine = make_engine(url)
    _truncate_pg(engine)
    engine.dispose()
    clear_report_cache()  # the same URL now holds other data: a report cached for the last test must not show
    yield url


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A fresh SQLite database only (for tests that are not about storage)."""
    return sqlite_copy(sqlite_template, tmp_path)


@pytest.fixture
def clock() -> FixedClock:
    """The injected clock every test controls."""
    return FixedClock(T0)


def build_runtime(url: str, clock: FixedClock, profile: str = "asa-reform") -> Runtime:
    """A runtime on a test database under a profile."""
    settings = Settings(database_url=url, profile=profile, sweep_interval_seconds=0)  # tests sweep explicitly
    return Runtime.build(settings, clock=clock, profile=load_profile(profile))


@pytest.fixture
def profile_name() -> str:
    """Override in a module to run its tests under another profile."""
    return "asa-reform"


@pytest.fixture
def rt(db_url: str, clock: FixedClock, profile_name: str) -> Iterator[Runtime]:
    """Runtime on both backends."""
    runtime = build_runtime(db_url, clock, profile_name)
    yield runtime
    runtime.engine.dispose()


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    """HTTP client against the app on both backends."""
    with TestClient(create_app(rt)) as c:
        yield c


@dataclass
class Actor:
    """A test user: its key, headers and principal."""

    key: str
    principal: Any
    organization_id: int | None = None

    @property
    def headers(self) -> dict[str, str]:
        """Authorization header for this user."""
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture
def make_actor(rt: Runtime) -> Callable[..., Actor]:
    """Create users of any role; practices and participants are created as needed."""
    counter = {"n": 0}

    def make(
        role: str = "provider",
        *,
        state: str = "TX",
        organization_id: int | None = None,
        clinician: bool = True,
        npi: str | None = None,
    ) -> Actor:
        counter["n"] += 1
        n = counter["n"]
        now = rt.clock.now()
        with rt.sessions() as session:
            role_ = Role(role)
            org_id = organization_id
            if org_id is None and role_ in (Role.PROVIDER, Role.REVIEWER):
                kind = OrgKind.PRACTICE if role_ is Role.PROVIDER else OrgKind.PARTICIPANT
                org_id = create_organization(
                    session, name=f"{role} org {n}", kind=kind, now=now, state=state
                ).id
            user = create_user(
                session,
                name=f"{role} user {n}",
                role=role_,
                now=now,
                organization_id=org_id,
                state=state if role_ is Role.REVIEWER else None,
                npi=npi or (make_valid_npi(880_000 + n) if role_ is Role.REVIEWER and clinician else None),
                specialty="Pain Medicine" if role_ is Role.REVIEWER else None,
                credentials="MD",
                is_clinician=clinician and role_ is Role.REVIEWER,
            )
            key = issue_key(session, user=user, now=now)
            session.commit()
            return Actor(key, principal_for(user), org_id)

    return make
