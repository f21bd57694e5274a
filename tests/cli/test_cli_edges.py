"""The CLI given bad arguments: one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wiserpa.cli import app as cli

runner = CliRunner()


def _refused(args: list[str], *, code: int) -> str:
    """Run the CLI, assert it exits `code` without a traceback, and return what it printed."""
    result = runner.invoke(cli, args)
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result.output


def test_a_profile_that_does_not_exist_is_one_line() -> None:
    """`profiles show nope` names the profile and where it looked."""
    out = _refused(["profiles", "show", "nope"], code=2)
    assert out.strip().splitlines() == [out.strip()] and "profile 'nope' not found" in out


def test_a_database_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    """A SQLite file in a missing directory, or a refused PostgreSQL port, is a clear error, not a traceback."""
    missing = f"sqlite:///{tmp_path}/no/such/dir/x.db"
    for args in (
        ["db", "upgrade", "--database-url", missing],
        ["audit", "verify", "--database-url", missing],
        ["keys", "create", "--role", "provider", "--organization", "A", "--database-url", missing],
        ["sweep", "--once", "--database-url", "postgresql+psycopg://nobody@127.0.0.1:1/none"],
    ):
        out = _refused(args, code=1)
        assert out.startswith("error: cannot use the database:") and len(out.strip().splitlines()) == 1, out


def test_a_database_url_that_is_not_a_url_names_the_option() -> None:
    """An unknown dialect names --database-url."""
    out = _refused(["audit", "verify", "--database-url", "bogus://x"], code=2)
    assert "--database-url" in out and len(out.strip().splitlines()) == 1


def test_simulate_refuses_an_unknown_state_profile_or_scale() -> None:
    """simulate names the unknown state or profile, and refuses a scale of zero or less before running."""
    out = _refused(["simulate", "--state", "ZZ", "--scale", "0.001"], code=2)
    assert "--state" in out and "'ZZ' is not a WISeR state" in out
    assert "profile 'nope' not found" in _refused(
        ["simulate", "--profiles", "nope", "--scale", "0.001"], code=2
    )
    for scale in ("0", "-1"):
        assert "--scale" in _refused(["simulate", "--scale", scale], code=2)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_simulate_refuses_an_unwritable_out_before_running(tmp_path: Path) -> None:
    """--out to a read-only directory is refused up front, naming --out."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        out = _refused(["simulate", "--scale", "0.001", "--out", str(locked / "run")], code=2)
    finally:
        locked.chmod(0o700)
    assert "--out" in out and "simulated requests/s" not in out


def test_simulate_refuses_an_out_that_cannot_be_created_before_running(tmp_path: Path) -> None:
    """--out under a regular file cannot be created: refused up front, naming --out."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = _refused(["simulate", "--scale", "0.001", "--out", str(blocker / "run")], code=2)
    assert "--out" in out and "simulated requests/s" not in out


def test_serve_refuses_an_unknown_profile_before_announcing_itself(tmp_path: Path) -> None:
    """`serve --profile nope` names the profile and never prints that it is serving."""
    url = f"sqlite:///{tmp_path}/s.db"
    assert runner.invoke(cli, ["db", "upgrade", "--database-url", url]).exit_code == 0
    out = _refused(["serve", "--profile", "nope", "--database-url", url, "--port", "1"], code=2)
    assert "profile 'nope' not found" in out and "serving on" not in out


def test_an_unknown_state_is_refused_by_keys_and_experience(tmp_path: Path) -> None:
    """A reviewer key or an evidence brief for a non-WISeR state is refused, naming --state, and no key made."""
    url = f"sqlite:///{tmp_path}/k.db"
    assert runner.invoke(cli, ["db", "upgrade", "--database-url", url]).exit_code == 0
    out = _refused(["keys", "create", "--role", "reviewer", "--state", "ZZ", "--database-url", url], code=2)
    assert "--state" in out and "wpa_" not in out
    out = _refused(
        ["experience", "brief", "--since", "2026-01-01", "--state", "ZZ", "--database-url", url], code=2
    )
    assert "--state" in out and "not a WISeR state" in out
    made = runner.invoke(
        cli, ["keys", "create", "--role", "reviewer", "--state", "tx", "--database-url", url]
    )
    assert made.exit_code == 0 and made.output.strip().splitlines()[-1].startswith("wpa_")


def test_simulate_refuses_a_year_outside_the_model_and_negative_clinicians() -> None:
    """A year outside the model, or zero or fewer clinicians, is refused before the run, naming the option."""
    assert "--year" in _refused(["simulate", "--year", "1999", "--scale", "0.001"], code=2)
    assert "--clinicians" in _refused(["simulate", "--clinicians", "-5", "--scale", "0.001"], code=2)


def test_demo_refuses_a_negative_request_count(tmp_path: Path) -> None:
    """`demo --requests -5` is a usage error naming --requests, and builds nothing."""
    url = f"sqlite:///{tmp_path}/d.db"
    out = _refused(["demo", "--no-serve", "--requests", "-5", "--database-url", url], code=2)
    assert "--requests" in out and not (tmp_path / "d.db").exists()
