"""Schemathesis over the whole OpenAPI schema, in process: no 5xx, and every response matches its schema.

Every operation in `/openapi.json` joins automatically (new endpoints included). Each is driven with generated
valid and invalid input, deterministically (`derandomize`), with a bounded number of examples, authenticated
twice: as a provider and as a clinician reviewer, on a seeded SQLite database (a few requests exist, so
`{request_id}` paths hit real rows as well as missing ones).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import content_type_conformance, not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.conftest import Actor, build_runtime
from tests.factories import body
from wiserpa.app import create_app
from wiserpa.auth.models import OrgKind, Role
from wiserpa.auth.service import create_organization, create_user, issue_key, principal_for
from wiserpa.policy.clock import FixedClock
from wiserpa.policy.validation import make_valid_npi
from wiserpa.runtime import Runtime

MAX_EXAMPLES = int(os.environ.get("WISERPA_FUZZ_EXAMPLES", "25"))
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def _actor(rt: Runtime, role: Role, *, state: str = "TX", n: int = 1) -> Actor:
    now = rt.clock.now()
    with rt.sessions() as session:
        kind = OrgKind.PRACTICE if role is Role.PROVIDER else OrgKind.PARTICIPANT
        org = create_organization(session, name=f"fuzz {role.value}", kind=kind, now=now, state=state)
        user = create_user(
            session,
            name=f"fuzz {role.value}",
            role=role,
            now=now,
            organization_id=org.id,
            state=state if role is Role.REVIEWER else None,
            npi=make_valid_npi(990_000 + n) if role is Role.REVIEWER else None,
            is_clinician=role is Role.REVIEWER,
            credentials="MD",
        )
        key = issue_key(session, user=user, now=now)
        session.commit()
        return Actor(key, principal_for(user), org.id)


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[dict[str, Any]]:
    """A seeded SQLite database, the app, a provider key and a reviewer key."""
    from fastapi.testclient import TestClient

    path = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    shutil.copy(sqlite_template, path)
    from tests.conftest import T0

    rt = build_runtime(f"sqlite:///{path}", FixedClock(T0))
    rt.settings.auth_failure_limit = 1_000_000  # generated Authorization headers must not lock us out
    app = create_app(rt)
    provider = _actor(rt, Role.PROVIDER, n=1)
    reviewer = _actor(rt, Role.REVIEWER, n=2)
    with TestClient(app) as c:
        for seed, case in enumerate(("unmet", "complete", "unmet", "exempt"), start=1):
            r = c.post("/api/v1/requests", json=body(case=case, seed=seed), headers=provider.headers)
            assert r.status_code == 201, r.text
    yield {"app": app, "provider": provider, "reviewer": reviewer}
    rt.engine.dispose()


@pytest.fixture(scope="module")
def api_schema(fuzz_env: dict[str, Any]) -> Any:
    """The app's own OpenAPI schema, loaded in process (ASGI)."""
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_env["app"])


schema = schemathesis.pytest.from_fixture("api_schema")


def _run(case: Any, actor: Actor) -> None:
    headers = dict(case.headers or {})
    headers["Authorization"] = f"Bearer {actor.key}"
    case.headers = headers
    case.call_and_validate(checks=CHECKS)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_as_provider(case: Any, fuzz_env: dict[str, Any]) -> None:
    """Generated input as a provider: never a 5xx, always a documented shape."""
    _run(case, fuzz_env["provider"])


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_as_reviewer(case: Any, fuzz_env: dict[str, Any]) -> None:
    """Generated input as a clinician reviewer: never a 5xx, always a documented shape."""
    _run(case, fuzz_env["reviewer"])
