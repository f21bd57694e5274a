"""Experience-report edge cases: identifier forms the intake must refuse, blank text, CSV and brief leaks."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from wiserpa.experience.models import ExperienceObstacle, ExperienceReport
from wiserpa.runtime import Runtime


def report(**extra: Any) -> dict[str, Any]:
    """A valid report body (WA, an epidural delayed 19 days) with ``extra`` fields replaced."""
    data: dict[str, Any] = {
        "state": "WA",
        "service_code": "62323",
        "requested_on": "2026-02-02",
        "decided_on": "2026-02-21",
        "obstacles": ["portal_outage"],
        "impact": "delayed_care",
        "narrative": "The epidural was delayed 19 days; the portal rejected the upload three times.",
    }
    data.update(extra)
    return data


def stored(rt: Runtime) -> int:
    """Rows written for experience reports and their obstacles."""
    with rt.sessions() as s:
        return (s.scalar(select(func.count()).select_from(ExperienceReport)) or 0) + (
            s.scalar(select(func.count()).select_from(ExperienceObstacle)) or 0
        )


@pytest.mark.parametrize(
    "mbi",
    [
        "1EG4 TE5 MK73",  # the printed card's groups, typed with spaces
        "1eg4 te5 mk73",
        "1EG4-TE5MK73",  # a dash typed only between the first groups
        "1EG4–TE5–MK73",  # en dashes, as word processors turn hyphens
        "1EG4 - TE5 - MK73",
    ],
)
def test_mbi_typed_with_spaces_or_other_dashes_is_refused_and_nothing_stored(
    client: TestClient, make_actor: Any, rt: Runtime, mbi: str
) -> None:
    """An MBI in any everyday written form is a 422 on narrative naming `mbi`, with no row written."""
    provider = make_actor("provider", state="WA")
    narrative = f"The portal rejected member {mbi} three times before the epidural."
    r = client.post("/api/v1/experience/reports", json=report(narrative=narrative), headers=provider.headers)
    assert r.status_code == 422, r.text
    fields = r.json()["error"]["fields"]
    assert fields[0]["field"] == "narrative" and "found: mbi" in fields[0]["message"]
    assert stored(rt) == 0


@pytest.mark.parametrize("lead", ["\t", "\r", " ", "\n"])
def test_export_neutralises_formulas_behind_leading_whitespace(
    client: TestClient, make_actor: Any, lead: str
) -> None:
    """A narrative starting with whitespace then `=` leaves the CSV as text, not as a spreadsheet formula."""
    provider = make_actor("provider", state="WA")
    narrative = lead + '=HYPERLINK("http://evil.example","portal")'
    r = client.post("/api/v1/experience/reports", json=report(narrative=narrative), headers=provider.headers)
    assert r.status_code == 201, r.text
    cms = make_actor("oversight")
    out = client.get("/api/v1/experience/export.csv", headers=cms.headers)
    assert out.status_code == 200
    rows = list(csv.DictReader(io.StringIO(out.text)))
    assert len(rows) == 1
    cell = rows[0]["narrative"]
    assert cell.startswith("'") and "HYPERLINK" in cell


def test_blank_narrative_is_refused_naming_the_field(
    client: TestClient, make_actor: Any, rt: Runtime
) -> None:
    """A narrative of only spaces and newlines carries no evidence: a 422 on narrative, nothing stored."""
    provider = make_actor("provider", state="WA")
    r = client.post("/api/v1/experience/reports", json=report(narrative=" \n\t "), headers=provider.headers)
    assert r.status_code == 422, r.text
    assert [f["field"] for f in r.json()["error"]["fields"]] == ["narrative"]
    assert stored(rt) == 0


def test_brief_does_not_let_a_small_participant_count_be_worked_out_from_the_total(
    client: TestClient, make_actor: Any
) -> None:
    """Total 15 with one participant at 12 would give the other's 3 away: both are withheld, the total stays."""
    wa = make_actor("provider", state="WA")
    tx = make_actor("provider", state="TX")
    for actor, state, n in ((wa, "WA", 12), (tx, "TX", 3)):
        for _ in range(n):
            r = client.post("/api/v1/experience/reports", json=report(state=state), headers=actor.headers)
            assert r.status_code == 201, r.text
    cms = make_actor("oversight")
    md = client.get("/api/v1/experience/brief.md", headers=cms.headers)
    assert md.status_code == 200
    lines = md.text.splitlines()
    assert "| Reports | 15 |" in lines
    virtix = next(line for line in lines if line.startswith("| Virtix Health |"))
    cohere = next(line for line in lines if line.startswith("| Cohere Health |"))
    assert cohere == "| Cohere Health | 1–10 (suppressed) |"
    assert virtix == "| Virtix Health | suppressed |"
    # The impact breakdown has one value equal to the total: nothing to hide there.
    assert "| Care delayed | 15 |" in lines


def test_brief_withholds_the_other_participants_share_when_it_rests_on_a_small_count(
    client: TestClient, make_actor: Any
) -> None:
    """With two participants, "others 25.0%" of 12 published reports would reveal the other's count of 3."""
    wa = make_actor("provider", state="WA")
    tx = make_actor("provider", state="TX")
    bodies = [(wa, report(state="WA"))] * 15
    bodies += [(tx, report(state="TX"))] * 3
    bodies += [(tx, report(state="TX", obstacles=["repeated_documentation_requests"]))] * 9
    for actor, body in bodies:
        r = client.post("/api/v1/experience/reports", json=body, headers=actor.headers)
        assert r.status_code == 201, r.text
    md = client.get("/api/v1/experience/brief.md", headers=make_actor("oversight").headers).text
    lines = md.splitlines()
    assert "| Cohere Health | 12 |" in lines and "| Virtix Health | 15 |" in lines
    row = next(line for line in lines if line.startswith("| Virtix Health | Participant portal unavailable"))
    assert "| 15 | 100.0% | suppressed |" in row
    assert "25.0%" not in md
