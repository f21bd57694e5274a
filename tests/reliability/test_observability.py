"""Request ids, JSON logs, /metrics and /readyz (both databases)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Actor
from tests.factories import body
from wiserpa.observability import JsonFormatter, count_decision, redact
from wiserpa.policy.clock import FixedClock
from wiserpa.policy.validation import make_valid_mbi


def test_request_id_is_honoured_or_generated(client: TestClient) -> None:
    """A sane X-Request-ID comes back unchanged; a missing or hostile one is replaced."""
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    generated = client.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32
    hostile = client.get("/healthz", headers={"X-Request-ID": 'x" \\n{"level":"fake"}'}).headers[
        "x-request-id"
    ]
    assert hostile != 'x" \\n{"level":"fake"}'


def test_access_log_is_json_with_route_template(
    client: TestClient, make_actor: Callable[..., Actor], caplog: pytest.LogCaptureFixture
) -> None:
    """One JSON access line per request: route template (never the raw path or query), status, request id."""
    provider = make_actor("provider")
    caplog.set_level(logging.INFO, logger="wiserpa.access")
    mbi = make_valid_mbi(4242)
    client.get(f"/api/v1/requests/12345?mbi={mbi}", headers={**provider.headers, "X-Request-ID": "rid-1"})
    line = json.loads(JsonFormatter().format(next(r for r in caplog.records if r.name == "wiserpa.access")))
    assert line["route"] == "/api/v1/requests/{request_id}" and line["status"] == 404
    assert line["request_id"] == "rid-1" and line["role"] == "provider"
    assert "12345" not in json.dumps(line) and mbi not in json.dumps(line)


def test_redaction() -> None:
    """Keys, bearer tokens, cookies and MBIs are scrubbed from any message."""
    mbi = make_valid_mbi(99)
    text = redact(f"key wpa_0123456789ab_SECRETSECRETSECRET Bearer abcdefghijkl wiserpa_key=zzz mbi {mbi}")
    assert "SECRET" not in text and "abcdefghijkl" not in text and "zzz" not in text and mbi not in text


def test_metrics(client: TestClient, make_actor: Callable[..., Actor], clock: FixedClock) -> None:
    """Requests by route and status, latency, decisions, and the SQL gauges (due buckets, misses, lag)."""
    import datetime as dt

    provider = make_actor("provider")
    r = client.post("/api/v1/requests", json=body(case="unmet"), headers=provider.headers)
    assert r.status_code == 201 and r.json()["status"] == "pended"
    count_decision("pended", 0.5)
    text = client.get("/metrics").text
    assert 'wiserpa_http_requests_total{method="POST",route="/api/v1/requests",status="201"}' in text
    assert "wiserpa_http_request_duration_seconds_bucket" in text
    assert 'wiserpa_decisions_total{outcome="pended"}' in text
    assert 'wiserpa_open_requests{due_bucket="24-72h"} 1.0' in text or 'due_bucket="72h+"} 1.0' in text
    assert "wiserpa_sweep_lag_seconds 0.0" in text
    clock.advance(dt.timedelta(days=10))  # past due, not yet swept: counted as a miss, lag grows
    text = client.get("/metrics").text
    assert 'wiserpa_open_requests{due_bucket="overdue"} 1.0' in text
    assert 'wiserpa_deadline_misses{state="TX"} 1.0' in text
    lag = float(
        next(ln for ln in text.splitlines() if ln.startswith("wiserpa_sweep_lag_seconds ")).split()[1]
    )
    assert lag > 6 * 86400


def test_readyz(client: TestClient) -> None:
    """Ready when the database answers and migrations are current."""
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
