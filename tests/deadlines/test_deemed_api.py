"""Deemed approval through the API, driven by the injected clock: the exact due instant, anesthesia lines."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from wiserpa.deadlines.service import sweep


def _due(view: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(view["due_at"].replace("Z", "+00:00"))


def _status(client: TestClient, view: dict) -> dict:
    r = client.get(f"/api/v1/requests/{view['id']}", headers=view["_headers"])
    assert r.status_code == 200, r.text
    return r.json()


def test_deadline_one_second_before_at_and_after(client: TestClient, rt, clock, submit_pended) -> None:
    view = submit_pended()
    due = _due(view)
    assert due == clock.now() + dt.timedelta(hours=72)

    clock.set(due - dt.timedelta(seconds=1))
    before = _status(client, view)
    assert before["status"] == "pended" and before["overdue"] is False

    clock.set(due)
    at = _status(client, view)
    assert at["status"] == "deemed_affirmed" and at["decision_kind"] == "deemed"
    assert at["decided_at"] == view["due_at"]

    clock.set(due + dt.timedelta(seconds=1))
    assert _status(client, view)["status"] == "deemed_affirmed"


def test_deemed_epidural_affirms_its_anesthesia_line(client: TestClient, rt, clock, submit_pended) -> None:
    view = submit_pended()
    anesthesia = [ln for ln in view["lines"] if ln["kind"] == "anesthesia"]
    assert any(ln["code"] == "01992" for ln in anesthesia)
    assert all(ln["status"] == "pended" for ln in anesthesia)

    clock.set(_due(view))
    read = _status(client, view)  # computed on read, before any sweep
    assert {ln["code"]: ln["status"] for ln in read["lines"] if ln["kind"] == "anesthesia"}["01992"] == (
        "deemed_affirmed"
    )

    with rt.sessions() as s:
        assert sweep(s, rt).deemed == 1
    stored = _status(client, view)
    assert stored["status"] == "deemed_affirmed"
    assert all(ln["status"] == "deemed_affirmed" for ln in stored["lines"])
    assert [d["kind"] for d in stored["decisions"]].count("deemed") == 1
