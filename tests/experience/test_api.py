"""Experience reports through the API: the identifier rule, cross-checks, patterns, export, brief, CLI."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.factories import body as request_body
from wiserpa.experience import service
from wiserpa.experience.models import ExperienceObstacle, ExperienceReport
from wiserpa.runtime import Runtime


def report(**extra):  # type: ignore[no-untyped-def]
    data = {
        "state": "WA",
        "service_code": "62323",
        "requested_on": "2026-02-02",
        "decided_on": "2026-02-21",
        "obstacles": ["portal_outage", "repeated_documentation_requests"],
        "impact": "delayed_care",
        "narrative": "The epidural was delayed 19 days; the portal rejected the upload three times.",
    }
    data.update(extra)
    return data


def stored(rt: Runtime) -> int:
    with rt.sessions() as s:
        return (s.scalar(select(func.count()).select_from(ExperienceReport)) or 0) + (
            s.scalar(select(func.count()).select_from(ExperienceObstacle)) or 0
        )


def test_report_is_stored_with_computed_delay(client: TestClient, make_actor) -> None:
    provider = make_actor("provider", state="WA")
    r = client.post("/api/v1/experience/reports", json=report(delay_days=25), headers=provider.headers)
    assert r.status_code == 201, r.text
    v = r.json()
    assert v["participant"] == "Virtix Health" and v["category"] == "epidural_steroid_injection"
    assert v["delay_days"] == 19.0 and v["reported_delay_days"] == 25.0
    assert v["week_start"] == "2026-02-02" and v["obstacles"] == [
        "portal_outage",
        "repeated_documentation_requests",
    ]
    assert client.get(f"/api/v1/experience/reports/{v['id']}", headers=provider.headers).status_code == 200
    other = make_actor("provider", state="WA")
    assert client.get(f"/api/v1/experience/reports/{v['id']}", headers=other.headers).status_code == 404
    assert (
        client.get(
            f"/api/v1/experience/reports/{v['id']}", headers=make_actor("reviewer", state="WA").headers
        ).status_code
        == 403
    )


PHI_CASES = {
    "mbi": "Beneficiary 1EG4-TE5-MK73 waited three weeks for the injection.",
    "phone": "Call the patient back at (555) 123-4567 about the delay.",
    "ssn": "The form asked for SSN 123-45-6789 although it is not needed.",
    "email": "The patient wrote to jane.doe@example.com about the denial.",
    "date_of_birth": "The request for the woman with DOB 3/4/1950 was lost twice.",
    "name": "The portal lost the documents for patient John Smith twice.",
}


@pytest.mark.parametrize("kind", sorted(PHI_CASES))
def test_narrative_with_identifier_is_rejected_and_nothing_written(
    client: TestClient, make_actor, rt: Runtime, kind: str
) -> None:
    provider = make_actor("provider", state="WA")
    r = client.post(
        "/api/v1/experience/reports", json=report(narrative=PHI_CASES[kind]), headers=provider.headers
    )
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert [f["field"] for f in err["fields"]] == ["narrative"]
    assert kind in err["fields"][0]["message"]
    assert stored(rt) == 0


def test_other_fields_are_named_too(client: TestClient, make_actor, rt: Runtime) -> None:
    provider = make_actor("provider", state="WA")
    bad = report(state="CA", service_code="99213", decided_on="2026-01-01", narrative="x" * 4001)
    r = client.post("/api/v1/experience/reports", json=bad, headers=provider.headers)
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "narrative"  # too long
    bad["narrative"] = "Patient Jones waited."
    r = client.post("/api/v1/experience/reports", json=bad, headers=provider.headers)
    fields = {f["field"] for f in r.json()["error"]["fields"]}
    assert fields == {"narrative", "state", "service_code", "decided_on"}
    r = client.post(
        "/api/v1/experience/reports", json=report(obstacles=["weather"]), headers=provider.headers
    )
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"].startswith("obstacles")
    assert stored(rt) == 0


def test_linked_request_is_cross_checked(client: TestClient, make_actor, rt: Runtime, clock) -> None:
    provider = make_actor("provider", state="TX")
    req = client.post("/api/v1/requests", json=request_body(case="unmet"), headers=provider.headers).json()
    assert req["status"] == "pended"
    clock.set(clock.now() + dt.timedelta(days=10))
    # The reporter remembers a much earlier request date and a decision that the record does not show.
    r = client.post(
        "/api/v1/experience/reports",
        json=report(
            state=None,
            service_code=None,
            request_id=req["id"],
            requested_on="2026-02-20",
            decided_on="2026-03-10",
            obstacles=["no_response"],
        ),
        headers=provider.headers,
    )
    assert r.status_code == 201, r.text
    v = r.json()
    assert v["state"] == "TX" and v["category"] == req["category"] and v["request_id"] == req["id"]
    check = v["timeline_check"]
    # asa-reform deems an undecided request affirmed at its due time (72 h after 2026-03-02 16:00 UTC).
    assert check["actual"]["status"] == "deemed_affirmed"
    assert check["actual"]["received_on"] == "2026-03-02" and check["actual"]["decided_on"] == "2026-03-05"
    assert check["actual"]["delay_days"] == 3.0
    assert {d["field"] for d in check["disagreements"]} == {"requested_on", "decided_on", "delay_days"}
    assert v["timeline_disagrees"] is True
    # A matching report agrees.
    ok = client.post(
        "/api/v1/experience/reports",
        json=report(
            state="TX",
            service_code=None,
            request_id=req["id"],
            requested_on="2026-03-02",
            decided_on="2026-03-05",
            obstacles=["no_response"],
        ),
        headers=provider.headers,
    ).json()
    assert ok["timeline_disagrees"] is False and ok["timeline_check"]["disagreements"] == []
    # Another organization's request cannot be linked (and its existence is not revealed).
    other = make_actor("provider", state="TX")
    r = client.post(
        "/api/v1/experience/reports", json=report(state="TX", request_id=req["id"]), headers=other.headers
    )
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "request_id"


def test_public_intake_is_off_by_default_then_rate_limited(
    client: TestClient, make_actor, rt: Runtime
) -> None:
    assert client.post("/api/v1/experience/public-reports", json=report()).status_code == 404
    client.app.state.experience_public_intake = True  # type: ignore[attr-defined]
    r = client.post("/api/v1/experience/public-reports", json=report())
    assert r.status_code == 201 and set(r.json()) == {"id", "status"}
    r = client.post("/api/v1/experience/public-reports", json=report(request_id=1))
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "request_id"
    r = client.post("/api/v1/experience/public-reports", json=report(narrative="Mr. Smith waited."))
    assert r.status_code == 422
    codes = [client.post("/api/v1/experience/public-reports", json=report()).status_code for _ in range(4)]
    assert codes[-1] == 429
    # Never shown individually: providers do not see public reports, and there is no public read route.
    provider = make_actor("provider", state="WA")
    assert client.get("/api/v1/experience/reports", headers=provider.headers).json()["total"] == 0
    assert client.get("/api/v1/experience/reports/1").status_code == 401


def _seed_spike(rt: Runtime, make_actor) -> None:  # type: ignore[no-untyped-def]
    """Twelve quiet weeks (one TX and two OK reports a week), then six TX portal outages in one week."""
    tx = make_actor("provider", state="TX")
    ok = make_actor("provider", state="OK")
    start = dt.date(2025, 11, 3)  # a Monday
    narratives = [
        "Portal down all morning, could not upload the records.",
        "Reviewer asked again for the same imaging report already sent.",
        "No answer after five days although the request was complete.",
    ]
    with rt.sessions() as s:
        for week in range(12):
            for actor, state in ((tx, "TX"), (ok, "OK"), (ok, "OK")):
                service.submit_report(
                    s,
                    rt,
                    principal=actor.principal,
                    state=state,
                    service_code="62323",
                    requested_on=start + dt.timedelta(weeks=week, days=1),
                    obstacles=["repeated_documentation_requests" if week % 2 else "no_response"],
                    impact="delayed_care",
                    narrative=narratives[(week + len(state)) % 3],
                )
        for i in range(6):
            service.submit_report(
                s,
                rt,
                principal=tx.principal,
                state="TX",
                service_code="64483",
                requested_on=start + dt.timedelta(weeks=12, days=i % 5),
                obstacles=["portal_outage"],
                impact="abandoned_care" if i == 0 else "delayed_care",
                narrative="The participant portal was down for the whole day and the upload failed.",
            )
        s.commit()


def test_patterns_find_the_injected_spike(client: TestClient, make_actor, rt: Runtime) -> None:
    _seed_spike(rt, make_actor)
    cms = make_actor("oversight")
    assert (
        client.get("/api/v1/experience/patterns", headers=make_actor("provider").headers).status_code == 403
    )
    p = client.get("/api/v1/experience/patterns?since=2025-10-01", headers=cms.headers).json()
    assert p["summary"]["reports"] == 42
    spikes = [s for s in p["spikes"] if s["by"] == ["participant", "obstacle"]]
    assert spikes and spikes[0]["key"] == ["Cohere Health", "portal_outage"]
    assert spikes[0]["week_start"] == "2026-01-26" and spikes[0]["observed"] == 6
    assert not any(s["key"][0] == "Humata Health" for s in p["spikes"])
    flagged = [o for o in p["overrepresentation"] if o["significant"]]
    assert [(o["participant"], o["obstacle"]) for o in flagged] == [("Cohere Health", "portal_outage")]
    # SQL counts: participant × category × obstacle × week.
    cell = [c for c in p["counts"] if c["obstacle"] == "portal_outage"]
    assert cell == [
        {
            "state": "TX",
            "participant": "Cohere Health",
            "category": "epidural_steroid_injection",
            "obstacle": "portal_outage",
            "week_start": "2026-01-26",
            "count": 6,
        }
    ]
    rate = next(
        r for r in p["rates"] if r["participant"] == "Cohere Health" and r["obstacle"] == "portal_outage"
    )
    assert (rate["count"], rate["reports"], rate["rate"]) == (6, 18, round(6 / 18, 4))
    assert p["themes"] and sum(t["size"] for t in p["themes"]) == 42
    # The state filter narrows everything.
    ok_only = client.get("/api/v1/experience/patterns?state=OK", headers=cms.headers).json()
    assert ok_only["summary"]["reports"] == 24 and ok_only["spikes"] == []


def test_export_csv_and_brief(client: TestClient, make_actor, rt: Runtime) -> None:
    _seed_spike(rt, make_actor)
    cms = make_actor("oversight")
    assert (
        client.get("/api/v1/experience/export.csv", headers=make_actor("provider").headers).status_code == 403
    )
    r = client.get("/api/v1/experience/export.csv?state=TX", headers=cms.headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 18 and tuple(rows[0]) == service.EXPORT_COLUMNS
    assert not {"organization_id", "reporter_user_id", "request_id"} & set(rows[0])
    b = client.get("/api/v1/experience/brief.md?since=2025-10-01", headers=cms.headers)
    assert b.status_code == 200 and b.headers["content-type"].startswith("text/markdown")
    assert b.text.startswith("# Evidence brief") and "Cohere Health" in b.text and "## Excerpts" in b.text


def test_cli_brief_prints_markdown(rt: Runtime, make_actor, db_url: str) -> None:
    from wiserpa.cli import app

    _seed_spike(rt, make_actor)
    res = CliRunner().invoke(
        app, ["experience", "brief", "--since", "2025-10-01", "--state", "TX", "--database-url", db_url]
    )
    assert res.exit_code == 0, res.output
    assert res.output.startswith("# Evidence brief")
    assert "- Scope: TX" in res.output and "Cohere Health · Participant portal unavailable" in res.output
