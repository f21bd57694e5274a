"""The `wiserpa` command: a stable operator interface (serve, db, demo, keys, audit, profiles)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from wiserpa.auth.models import Role
from wiserpa.config import DEFAULT_DATABASE_URL, Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

app = typer.Typer(
    help="wiserpa: prior authorization for Medicare's WISeR model, with the physicians' safeguards.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
profiles_app = typer.Typer(help="Policy profiles.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(profiles_app, name="profiles")

err = Console(stderr=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url", help="SQLAlchemy URL; default $WISERPA_DATABASE_URL or sqlite:///wiserpa.db"
    ),
]


def _settings(database_url: str | None, **overrides: object) -> Settings:
    values: dict[str, object] = {k: v for k, v in overrides.items() if v is not None}
    if database_url:
        values["database_url"] = database_url
    return Settings(**values)  # type: ignore[arg-type]


def _engine(settings: Settings) -> Engine:
    from wiserpa.store.db import make_engine

    return make_engine(settings.database_url)


def _ensure_schema(settings: Settings, *, apply: bool) -> None:
    from wiserpa.store.migrate import schema_status, upgrade

    engine = _engine(settings)
    status = schema_status(engine)
    if not status.current:
        if not apply:
            err.print(
                f"[red]Database schema is at {status.current_revision or 'nothing'}, code needs "
                f"{status.head_revision}. Run: wiserpa db upgrade --database-url ...[/red]"
            )
            raise typer.Exit(2)
        upgrade(engine)
        err.print(f"Migrated database to {status.head_revision}.")
    engine.dispose()


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrl = None) -> None:
    """Apply all migrations (safe to run repeatedly, and from several hosts on PostgreSQL)."""
    from wiserpa.store.migrate import schema_status, upgrade

    settings = _settings(database_url)
    engine = _engine(settings)
    upgrade(engine)
    typer.echo(f"database at revision {schema_status(engine).current_revision}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    database_url: DatabaseUrl = None,
    workers: Annotated[int, typer.Option(help="Worker processes (use PostgreSQL for more than one)")] = 1,
    migrate: Annotated[bool, typer.Option(help="Apply pending migrations at start (else refuse)")] = True,
    profile: Annotated[str | None, typer.Option(help="Policy profile in force (name or YAML path)")] = None,
) -> None:
    """Run the HTTP service (REST, FHIR, web pages)."""
    import uvicorn

    settings = _settings(database_url, profile=profile)
    _ensure_schema(settings, apply=migrate)
    if workers > 1 and settings.database_url.startswith("sqlite"):
        err.print("[yellow]Several workers on SQLite share one writer; use PostgreSQL to scale out.[/yellow]")
    # Workers are separate processes: hand them the settings through the environment.
    os.environ["WISERPA_DATABASE_URL"] = settings.database_url
    os.environ["WISERPA_PROFILE"] = settings.profile
    if settings.demo:
        os.environ["WISERPA_DEMO"] = "1"
    err.print(
        f"wiserpa serving on http://{host}:{port} (profile {settings.profile}, {settings.database_url})"
    )
    uvicorn.run(
        "wiserpa.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="Default: sqlite:///wiserpa-demo.db (recreated)")
    ] = None,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve after creating the data")
    ] = True,
    requests: Annotated[int, typer.Option(help="How many synthetic requests to generate")] = 400,
    seed: Annotated[int, typer.Option(help="Random seed")] = 2026,
) -> None:
    """Create a demo database with synthetic data, print demo API keys per role, then serve."""
    from wiserpa.demo import build_demo

    url = database_url or "sqlite:///wiserpa-demo.db"
    if database_url is None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"wiserpa-demo.db{suffix}").unlink(missing_ok=True)
    settings = _settings(url, demo=True)
    _ensure_schema(settings, apply=True)
    keys = build_demo(settings, n_requests=requests, seed=seed, progress=True)
    typer.echo("Demo API keys (shown once; send as 'Authorization: Bearer <key>'):")
    for label, key in keys:
        typer.echo(f"  {label:<48} {key}")
    typer.echo(f"Web: http://{host}:{port}/   API docs: http://{host}:{port}/docs")
    if serve_after:
        os.environ["WISERPA_DEMO"] = "1"
        serve(host=host, port=port, database_url=url, workers=1, migrate=True, profile=None)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="provider | reviewer | oversight | admin")],
    organization: Annotated[
        str | None, typer.Option(help="Organization name (created if new) or numeric id")
    ] = None,
    state: Annotated[str | None, typer.Option(help="Reviewer scope: the participant's state")] = None,
    name: Annotated[str | None, typer.Option(help="Person or system using the key")] = None,
    npi: Annotated[str | None, typer.Option(help="Clinician NPI (reviewers who may non-affirm)")] = None,
    specialty: Annotated[str | None, typer.Option(help="Clinician specialty")] = None,
    clinician: Annotated[bool, typer.Option(help="The user is a licensed clinician")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a user and an API key; the key is printed alone on the last line (shown once)."""
    from wiserpa.auth.service import create_user, issue_key
    from wiserpa.policy.clock import SystemClock
    from wiserpa.policy.validation import is_valid_npi
    from wiserpa.store.db import make_sessionmaker

    try:
        role_ = Role(role)
    except ValueError:
        err.print(f"[red]--role must be one of: {', '.join(r.value for r in Role)}[/red]")
        raise typer.Exit(2) from None
    if npi is not None and not is_valid_npi(npi):
        err.print("[red]--npi is not a valid NPI[/red]")
        raise typer.Exit(2)
    settings = _settings(database_url)
    _ensure_schema(settings, apply=False)
    now = SystemClock().now()
    with make_sessionmaker(_engine(settings))() as session:
        org_id = _organization_id(session, organization, role_, state, now)
        if role_ is Role.PROVIDER and org_id is None:
            err.print("[red]a provider key needs --organization[/red]")
            raise typer.Exit(2)
        if role_ is Role.REVIEWER and not state:
            err.print("[red]a reviewer key needs --state[/red]")
            raise typer.Exit(2)
        user = create_user(
            session,
            name=name or f"{role_.value} user",
            role=role_,
            now=now,
            organization_id=org_id,
            state=state.upper() if state else None,
            npi=npi,
            specialty=specialty,
            is_clinician=clinician,
        )
        key = issue_key(session, user=user, now=now)
        session.commit()
    err.print(f"Created {role_.value} user {user.id}" + (f" in organization {org_id}" if org_id else ""))
    typer.echo(key)


def _organization_id(session: Session, organization: str | None, role: Role, state: str | None,
                     now: dt.datetime) -> int | None:
    from sqlalchemy import select

    from wiserpa.auth.models import Organization, OrgKind
    from wiserpa.auth.service import create_organization

    if organization is None:
        return None
    if organization.isdigit():
        org = session.get(Organization, int(organization))
        if org is None:
            err.print(f"[red]no organization {organization}[/red]")
            raise typer.Exit(2)
        return org.id
    org = session.scalars(select(Organization).where(Organization.name == organization)).first()
    if org is None:
        kind = {
            Role.PROVIDER: OrgKind.PRACTICE,
            Role.REVIEWER: OrgKind.PARTICIPANT,
            Role.OVERSIGHT: OrgKind.OVERSIGHT,
        }.get(role, OrgKind.OPERATOR)
        org = create_organization(session, name=organization, kind=kind, now=now, state=state)
    return org.id


@audit_app.command("verify")
def audit_verify(database_url: DatabaseUrl = None) -> None:
    """Walk the hash chain; exit 0 only when every entry is intact and none is missing."""
    from wiserpa.audit.service import verify
    from wiserpa.store.db import make_sessionmaker, read_session

    settings = _settings(database_url)
    with read_session(make_sessionmaker(_engine(settings))) as session:
        report = verify(session)
    if report.ok:
        typer.echo(f"audit chain intact: {report.entries} entries")
        return
    typer.echo(f"audit chain BROKEN ({report.entries} entries read):")
    for problem in report.problems:
        typer.echo(f"  - {problem}")
    raise typer.Exit(1)


@profiles_app.command("list")
def profiles_list() -> None:
    """Names of the packaged policy profiles."""
    from wiserpa.policy.profiles import list_profiles

    for name in list_profiles():
        typer.echo(name)


@profiles_app.command("show")
def profiles_show(name: Annotated[str, typer.Argument(help="Profile name or YAML path")]) -> None:
    """Print a profile, fully resolved, as YAML you can copy and edit."""
    import yaml

    from wiserpa.policy.profiles import load_profile

    profile = load_profile(name)
    typer.echo(yaml.safe_dump(profile.model_dump(mode="json"), sort_keys=False))


def main() -> None:
    """Entry point for `python -m wiserpa`."""
    app()


if __name__ == "__main__":
    main()

__all__ = ["DEFAULT_DATABASE_URL", "app"]
