"""In a real browser: a practice withdraws its pended request from the request page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import LiveServer
from tests.factories import body

pytestmark = pytest.mark.browser


def test_provider_withdraws_a_pended_request(
    live_server: LiveServer,
    page: Any,
    make_user: Callable[..., str],
    login: Callable[[Any, str], None],
    shot: Callable[[Any, str], Path],
) -> None:
    key = make_user("provider")
    made = page.request.post(
        f"{live_server.url}/api/v1/requests",
        data=body("epidural_steroid_injection", state="TX", case="incomplete"),
        headers={"Authorization": f"Bearer {key}"},
    )
    assert made.status == 201, made.text()
    rid = made.json()["id"]

    login(page, key)
    page.goto(f"{live_server.url}/requests/{rid}")
    assert "pended" in page.locator(".status").first.inner_text()
    page.get_by_label("Reason (optional)").fill("Procedure cancelled by the patient.")
    shot(page, "withdraw-1-form")
    page.get_by_role("button", name="Withdraw request").click()
    page.wait_for_url(f"{live_server.url}/requests/{rid}")
    assert f"Request {rid} withdrawn." in page.locator(".notice").first.inner_text()
    assert "withdrawn" in page.locator(".status").first.inner_text()
    assert page.get_by_role("button", name="Withdraw request").count() == 0
    withdrawal = page.locator("tr", has_text="Procedure cancelled by the patient.")  # in the decision history
    assert "the practice" in withdrawal.inner_text()
    shot(page, "withdraw-2-withdrawn")
