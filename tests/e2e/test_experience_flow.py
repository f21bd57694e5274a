"""In a real browser: a practice files an experience report in the form; oversight sees it in patterns."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.browser


def test_report_filed_in_form_appears_in_oversight_view(
    live_server: LiveServer,
    page: Any,
    make_user: Callable[..., str],
    login: Callable[[Any, str], None],
    shot: Callable[[Any, str], Path],
) -> None:
    base = live_server.url
    provider_key = make_user("provider", state="WA")
    oversight_key = make_user("oversight")

    login(page, provider_key)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Report an obstacle").click()
    page.get_by_label("State (participant)").select_option("WA")
    page.get_by_label("Service code").select_option("62323")
    page.get_by_label("Requested on").fill("2026-02-02")
    page.get_by_label("Decided on").fill("2026-02-21")
    page.get_by_label("Participant portal unavailable").check()
    page.get_by_label("Impact on the patient").select_option("delayed_care")
    # First with an identifier: refused, and the form says why.
    page.get_by_label("Narrative").fill("Mrs. Jones waited 19 days; the portal rejected the upload.")
    page.get_by_role("button", name="Send report").click()
    assert "found: name" in page.locator(".field-error").first.inner_text()
    page.get_by_label("Narrative").fill(
        "The epidural waited 19 days; the portal rejected the upload three times."
    )
    shot(page, "experience-1-form")
    page.get_by_role("button", name="Send report").click()
    page.wait_for_url(f"{base}/experience/new")
    assert "received" in page.locator(".notice").inner_text()

    page.context.clear_cookies()
    login(page, oversight_key)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Experience patterns").click()
    page.wait_for_url(f"{base}/experience/patterns")
    assert page.locator("#report-count strong").inner_text() == "1"
    assert page.locator("table.counts").get_by_text("Participant portal unavailable").is_visible()
    assert page.locator("svg[role=img]").count() >= 1
    shot(page, "experience-2-patterns")
