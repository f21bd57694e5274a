"""The operator interface: keys, database, demo, profiles."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import func, select, text
from typer.testing import CliRunner

from wiserpa.auth.service import authenticate
from wiserpa.cli import app as cli
from wiserpa.policy.clock import SystemClock
from wiserpa.requests.models import PaRequest
from wiserpa.store.db import make_engine, make_sessionmaker

runner = CliRunner()


def test_db_upgrade_then_keys_create_prints_the_key_last(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ops.db"
    up = runner.invoke(cli, ["db", "upgrade", "--database-url", url])
    assert up.exit_code == 0, up.output
    made = runner.invoke(
        cli, ["keys", "create", "--role", "provider", "--organization", "Spine Clinic", "--database-url", url]
    )
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("wpa_")
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        principal = authenticate(session, key, now=SystemClock().now())
        assert principal is not None and principal.role.value == "provider"
        # Only a digest is stored: the secret part of the key appears nowhere in the database.
        secret = key.split("_", 2)[2]
        dump = "\n".join(str(r) for r in session.execute(text("SELECT * FROM api_keys")))
        assert secret not in dump
    engine.dispose()


def test_keys_create_refuses_bad_input(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ops.db"
    runner.invoke(cli, ["db", "upgrade", "--database-url", url])
    assert runner.invoke(cli, ["keys", "create", "--role", "emperor", "--database-url", url]).exit_code == 2
    assert runner.invoke(cli, ["keys", "create", "--role", "provider", "--database-url", url]).exit_code == 2
    assert runner.invoke(cli, ["keys", "create", "--role", "reviewer", "--database-url", url]).exit_code == 2
    bad_npi = runner.invoke(
        cli,
        [
            "keys",
            "create",
            "--role",
            "reviewer",
            "--state",
            "TX",
            "--npi",
            "1234567890",
            "--database-url",
            url,
        ],
    )
    assert bad_npi.exit_code == 2


def test_keys_create_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/empty.db"
    r = runner.invoke(cli, ["keys", "create", "--role", "admin", "--database-url", url])
    assert r.exit_code == 2
    assert "db upgrade" in r.output


def test_demo_no_serve_builds_data_and_prints_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/demo.db"
    r = runner.invoke(cli, ["demo", "--no-serve", "--requests", "40", "--database-url", url])
    assert r.exit_code == 0, r.output
    labels = [line for line in r.stdout.splitlines() if "wpa_" in line]
    assert any("provider" in line for line in labels) and any("reviewer" in line for line in labels)
    assert any("oversight" in line for line in labels) and any("admin" in line for line in labels)
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        assert session.scalar(select(func.count()).select_from(PaRequest)) == 40
        states = set(session.scalars(select(PaRequest.state).distinct()))
    engine.dispose()
    assert len(states) >= 4
    verify = runner.invoke(cli, ["audit", "verify", "--database-url", url])
    assert verify.exit_code == 0, verify.output


def test_profiles_list_and_show() -> None:
    listed = runner.invoke(cli, ["profiles", "list"])
    assert {"wiser-2026", "asa-reform"} <= set(listed.stdout.split())
    shown = runner.invoke(cli, ["profiles", "show", "wiser-2026"])
    assert shown.exit_code == 0 and "deemed_approval" in shown.stdout


def test_keys_create_with_an_expiry_makes_a_key_that_stops_working_then(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ops.db"
    assert runner.invoke(cli, ["db", "upgrade", "--database-url", url]).exit_code == 0
    args = ["keys", "create", "--role", "oversight", "--expires-in-days", "30", "--database-url", url]
    made = runner.invoke(cli, args)
    assert made.exit_code == 0, made.output
    assert "the key expires" in made.stderr
    key = made.stdout.strip().splitlines()[-1]
    now = SystemClock().now()
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        assert authenticate(session, key, now=now) is not None
        assert authenticate(session, key, now=now + dt.timedelta(days=31)) is None
    engine.dispose()
    for bad in ("0", "-1", "x"):
        refused = runner.invoke(cli, [*args[:4], "--expires-in-days", bad, "--database-url", url])
        assert refused.exit_code == 2, (bad, refused.output)
