"""Shared browser fixtures: the real app under uvicorn on a free port, and Debian's chromium via Playwright.

Reuse: `live_server` (base URL + runtime), `browser` (session-wide chromium), `page` (fresh context per test),
`make_user(role, state=...)` (returns an API key), `login(page, key)` and `shot(page, name)`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import T0
from wiserpa.app import create_app
from wiserpa.auth.models import OrgKind, Role
from wiserpa.auth.service import create_organization, create_user, issue_key
from wiserpa.config import Settings
from wiserpa.policy.clock import FixedClock
from wiserpa.policy.profiles import load_profile
from wiserpa.policy.validation import make_valid_npi
from wiserpa.runtime import Runtime

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@dataclass
class LiveServer:
    """A running app: its base URL and the runtime behind it."""

    url: str
    rt: Runtime


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[LiveServer]:
    """The app under uvicorn in a background thread, on a temp SQLite file."""
    uvicorn = pytest.importorskip("uvicorn")
    import shutil

    path = tmp_path_factory.mktemp("e2e") / "e2e.db"
    shutil.copy(sqlite_template, path)
    settings = Settings(database_url=f"sqlite:///{path}", profile="asa-reform", sweep_interval_seconds=0)
    # A fixed clock keeps dates of service inside the model period whatever today is.
    rt = Runtime.build(settings, clock=FixedClock(T0), profile=load_profile("asa-reform"))
    port = _free_port()
    config = uvicorn.Config(create_app(rt), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield LiveServer(f"http://127.0.0.1:{port}", rt)
    server.should_exit = True
    thread.join(timeout=10)
    rt.engine.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's chromium (never a downloaded browser); the test is skipped when it is not installed."""
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (own cookies) and page per test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.set_default_timeout(15_000)
    yield p
    context.close()


@pytest.fixture
def make_user(live_server: LiveServer) -> Callable[..., str]:
    """Create a user of a role in the live server's database and return its API key."""
    counter = {"n": 0}

    def make(role: str = "provider", *, state: str = "TX", clinician: bool = True) -> str:
        counter["n"] += 1
        n = counter["n"]
        rt = live_server.rt
        now = rt.clock.now()
        with rt.sessions() as s:
            role_ = Role(role)
            org_id = None
            if role_ in (Role.PROVIDER, Role.REVIEWER):
                kind = OrgKind.PRACTICE if role_ is Role.PROVIDER else OrgKind.PARTICIPANT
                org_id = create_organization(
                    s, name=f"e2e {role} org {n}", kind=kind, now=now, state=state
                ).id
            user = create_user(
                s,
                name=f"Dr. E2E {role.title()} {n}",
                role=role_,
                now=now,
                organization_id=org_id,
                state=state if role_ is Role.REVIEWER else None,
                npi=make_valid_npi(990_000 + n) if role_ is Role.REVIEWER and clinician else None,
                specialty="Sleep Medicine" if role_ is Role.REVIEWER else None,
                credentials="MD",
                is_clinician=clinician and role_ is Role.REVIEWER,
            )
            key = issue_key(s, user=user, now=now)
            s.commit()
            return key

    return make


@pytest.fixture
def login(live_server: LiveServer) -> Callable[[Any, str], None]:
    """Sign a page in through the login form."""

    def do(page: Any, key: str) -> None:
        page.goto(f"{live_server.url}/login")
        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{live_server.url}/")

    return do


@pytest.fixture
def shot() -> Callable[[Any, str], Path]:
    """Save a full-page screenshot to test-artifacts/<name>.png."""
    ARTIFACTS.mkdir(exist_ok=True)

    def take(page: Any, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
