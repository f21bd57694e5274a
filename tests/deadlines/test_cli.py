"""`wiserpa sweep --once` and `wiserpa goldcard evaluate` against a migrated database."""

from __future__ import annotations

import datetime as dt

from typer.testing import CliRunner

from tests.deadlines.conftest import insert_open
from wiserpa.cli import app


def test_sweep_once_and_goldcard_evaluate(rt, clock, db_url: str) -> None:
    # The CLI reads the wall clock, so these requests are due long before "now".
    insert_open(rt, 4, due_at=dt.datetime(2026, 1, 10, tzinfo=dt.UTC))
    runner = CliRunner()
    out = runner.invoke(app, ["sweep", "--once", "--database-url", db_url])
    assert out.exit_code == 0, out.output
    assert "4 deemed affirmed, 4 misses recorded" in out.output
    again = runner.invoke(app, ["sweep", "--once", "--database-url", db_url])
    assert "0 deemed affirmed, 0 misses recorded" in again.output

    ev = runner.invoke(app, ["goldcard", "evaluate", "--database-url", db_url])
    assert ev.exit_code == 0, ev.output
    assert "provider x service pairs" in ev.output or "gold cards are off" in ev.output
