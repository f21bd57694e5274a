"""Object-level scope: `load_in_scope` finds an object in scope, by its prebuilt statement or from the session,
and answers another organization's object as a missing one (404, audited)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.factories import body
from wiserpa.audit.models import AuditEntry
from wiserpa.errors import NotFound
from wiserpa.requests import service as requests
from wiserpa.requests.models import PaRequest
from wiserpa.runtime import Runtime


def test_load_in_scope_by_statement_and_from_the_session(
    client: TestClient, make_actor: Callable[..., Any], rt: Runtime
) -> None:
    provider, other = make_actor("provider"), make_actor("provider")
    rid = client.post("/api/v1/requests", json=body(), headers=provider.headers).json()["id"]
    for with_children in (True, False, False):  # the second light load reuses the statement
        with rt.sessions() as s:
            got = requests.load_visible(
                s, rt, provider.principal, rid, action="t", with_children=with_children
            )
            assert got.id == rid and ("lines" in got.__dict__) is with_children
            assert requests.load_visible(s, rt, provider.principal, rid, action="t") is got  # held: no query
            assert [ln.code for ln in got.lines]
    with rt.sessions() as s:
        refused = select(func.count()).select_from(AuditEntry).where(AuditEntry.outcome == "not_found")
        before = s.scalar(refused)
        for principal, rid_ in ((other.principal, rid), (provider.principal, rid + 10_000)):
            with pytest.raises(NotFound):
                requests.load_visible(s, rt, principal, rid_, action="t", with_children=False)
        assert s.scalar(refused) == before + 2
        assert s.get(PaRequest, rid) is not None


def test_loader_options_built_once_find_the_same_statement_as_options_built_per_call() -> None:
    from sqlalchemy import inspect
    from sqlalchemy.orm import lazyload

    from wiserpa.auth.scope import LoaderOptions, _by_id

    mapper = inspect(PaRequest)
    once = LoaderOptions(lazyload(PaRequest.lines), lazyload(PaRequest.decisions))
    assert list(once) == list(once) and len(once) == 2 and once.keys is not None
    for lock in (False, True):
        per_call = (lazyload(PaRequest.lines), lazyload(PaRequest.decisions))
        assert _by_id(mapper, once, lock) is _by_id(mapper, per_call, lock)
    assert _by_id(mapper, once, False) is not _by_id(mapper, LoaderOptions(lazyload(PaRequest.lines)), False)
