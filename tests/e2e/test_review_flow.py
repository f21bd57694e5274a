"""In a real browser: a provider submits through the form, a reviewer non-affirms from the worklist."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import LiveServer
from tests.factories import DOS, body
from wiserpa.policy.examples import VIOLATIONS

pytestmark = pytest.mark.browser

CATEGORY = "hypoglossal_nerve_stimulation"


def test_provider_submits_and_reviewer_decides(
    live_server: LiveServer,
    page: Any,
    make_user: Callable[..., str],
    login: Callable[[Any, str], None],
    shot: Callable[[Any, str], Path],
) -> None:
    base = live_server.url
    provider_key = make_user("provider")
    reviewer_key = make_user("reviewer")
    fact, bad, criterion_id = VIOLATIONS[CATEGORY]
    data = body(CATEGORY, state="TX")
    code = data["lines"][0]["code"]

    # The provider picks the service; the checklist appears (JS re-submits the "show checklist" step).
    login(page, provider_key)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="New request").click()
    page.get_by_label("State").select_option("TX")
    page.get_by_label("Date of service").fill(DOS.isoformat())
    page.get_by_label("Service code (CPT/HCPCS)").select_option(code)
    page.wait_for_selector(f'[name="clinical_facts.{fact}"]')
    assert page.locator("cite.citation").first.is_visible()
    for name, value in data["clinical_facts"].items():
        if name == fact:
            value = bad
        field = page.locator(f'[name="clinical_facts.{name}"]')
        if isinstance(value, bool):
            page.locator(f'[name="clinical_facts.{name}"][value="{str(value).lower()}"]').check()
        elif field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(str(value))
        else:
            field.fill(str(value))
    page.get_by_label("Requesting clinician NPI").fill(data["provider"]["npi"])
    page.get_by_label("Beneficiary MBI").fill(data["beneficiary"]["mbi"])
    page.get_by_label("Diagnosis codes (ICD-10-CM)").fill(", ".join(data["diagnosis_codes"]))
    shot(page, "review-flow-1-provider-form")
    page.get_by_role("button", name="Submit request").click()
    page.wait_for_url(f"{base}/requests/*")
    request_url = page.url
    assert "pended" in page.locator(".status").first.inner_text()
    shot(page, "review-flow-2-provider-pended")

    # The reviewer finds it on the worklist, with its unmet criterion, and non-affirms citing it.
    page.context.clear_cookies()
    login(page, reviewer_key)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Worklist").click()
    row = page.locator("tr", has_text=criterion_id)
    assert row.locator("time.countdown").inner_text().endswith("left")
    shot(page, "review-flow-3-worklist")
    row.get_by_role("link", name="Review").click()
    page.get_by_label("Non-affirm").check()
    page.locator(f'input[name="reasons"][value="{criterion_id}"]').check()
    page.get_by_label("Note to the provider").fill("BMI above the policy limit.")
    shot(page, "review-flow-4-decision-form")
    page.get_by_role("button", name="Record decision").click()
    page.wait_for_url(f"{base}/review")
    assert "Non-affirmed" in page.locator(".notice").inner_text()

    # The provider sees the cited criterion and what would satisfy it.
    page.context.clear_cookies()
    login(page, provider_key)
    page.goto(request_url)
    reasons = page.locator(".reason").first
    assert criterion_id in reasons.inner_text()
    assert "L38385" in reasons.inner_text()
    assert "What would satisfy it" in reasons.inner_text()
    shot(page, "review-flow-5-provider-sees-citation")
