"""The `wiserpa` command: a stable operator interface (serve, db, demo, keys, audit, profiles)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from wiserpa.auth.models import Role
from wiserpa.config import DEFAULT_DATABASE_URL, Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session


def _one_line(exc: BaseException) -> str:
    """The first line of an exception's message, without SQLAlchemy's background link."""
    from sqlalchemy.exc import DBAPIError

    source: BaseException = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    if isinstance(source, OSError) and source.strerror:
        text_ = f"{source.filename}: {source.strerror}" if source.filename else source.strerror
    else:
        text_ = str(source).strip() or type(source).__name__
    return text_.splitlines()[0]


class _Commands(TyperGroup):
    """The root command: expected operator mistakes end in one clear line and a non-zero exit."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context, not public API
        """Run the subcommand; bad input, an unreachable database or an unwritable path is one line."""
        from sqlalchemy.exc import ArgumentError, OperationalError

        try:
            return super().invoke(ctx)
        except ArgumentError as exc:
            err.print(
                f"error: --database-url is not a usable SQLAlchemy URL ({_one_line(exc)})",
                markup=False,
                soft_wrap=True,
            )
            raise typer.Exit(2) from None
        except OperationalError as exc:
            err.print(f"error: cannot use the database: {_one_line(exc)}", markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except OSError as exc:
            err.print(f"error: {_one_line(exc)}", markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except ValueError as exc:  # ProfileError, unknown state and other refused input
            err.print(f"error: {_one_line(exc)}", markup=False, soft_wrap=True)
            raise typer.Exit(2) from None


app = typer.Typer(
    help="wiserpa: prior authorization for Medicare's WISeR model, with the physicians' safeguards.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=_Commands,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
profiles_app = typer.Typer(help="Policy profiles.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(profiles_app, name="profiles")
experience_app = typer.Typer(help="Provider experience reports (R9).", no_args_is_help=True)
app.add_typer(experience_app, name="experience")

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


def _wiser_state(state: str, option: str = "--state") -> str:
    """The two-letter state upper-cased, or a usage error naming `option` when it is not a WISeR state."""
    from wiserpa.policy.catalog import load_catalog

    states = load_catalog().states
    code = state.strip().upper()
    if code not in states:
        raise typer.BadParameter(
            f"{state!r} is not a WISeR state (one of {', '.join(sorted(states))})", param_hint=option
        )
    return code


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

    from wiserpa.policy.profiles import load_profile

    settings = _settings(database_url, profile=profile)
    load_profile(settings.profile)  # an unknown profile is refused before "serving on ..." is printed
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
    requests: Annotated[int, typer.Option(min=0, help="How many synthetic requests to generate")] = 1000,
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


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="The key's prefix (between 'wpa_' and the next '_')")],
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke an API key by its prefix (takes effect on the next request, on every worker)."""
    from wiserpa.audit.service import Actor, record
    from wiserpa.auth.service import revoke_key
    from wiserpa.policy.clock import SystemClock
    from wiserpa.store.db import make_sessionmaker

    settings = _settings(database_url)
    _ensure_schema(settings, apply=False)
    # Accept a whole key too, and use only its prefix (the secret is never needed to revoke).
    parts = prefix.split("_")
    prefix = parts[1] if len(parts) >= 3 and parts[0] == "wpa" else prefix
    now = SystemClock().now()
    with make_sessionmaker(_engine(settings))() as session:
        if not revoke_key(session, prefix=prefix, now=now):
            err.print(f"[red]no active key with prefix {prefix}[/red]")
            raise typer.Exit(1)
        record(
            session,
            actor=Actor("cli", "admin"),
            action="key.revoke",
            object_type="api_key",
            object_id=prefix,
            outcome="revoked",
            at=now,
        )
        session.commit()
    typer.echo(f"revoked key {prefix}")


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
    expires_in_days: Annotated[
        int | None,
        typer.Option(min=1, max=3660, help="The key stops working after this many days (default: never)"),
    ] = None,
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
    if state is not None:
        state = _wiser_state(state)
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
        expires_at = now + dt.timedelta(days=expires_in_days) if expires_in_days else None
        key = issue_key(session, user=user, now=now, expires_at=expires_at)
        session.commit()
    err.print(
        f"Created {role_.value} user {user.id}"
        + (f" in organization {org_id}" if org_id else "")
        + (f"; the key expires {expires_at.isoformat(timespec='seconds')}" if expires_at else "")
    )
    typer.echo(key)


def _organization_id(
    session: Session, organization: str | None, role: Role, state: str | None, now: dt.datetime
) -> int | None:
    from sqlalchemy import select

    from wiserpa.auth.models import Organization, OrgKind
    from wiserpa.auth.service import create_organization
    from wiserpa.ids import parse_id

    if organization is None:
        return None
    org_id = parse_id(organization)
    if org_id is not None:
        org = session.get(Organization, org_id)
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


@experience_app.command("brief")
def experience_brief(
    since: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="Reports from YYYY-MM-DD")],
    state: Annotated[str | None, typer.Option(help="Two-letter state; default all states")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Print the Markdown evidence brief (small counts suppressed, excerpts anonymised)."""
    from wiserpa.experience.service import brief_markdown
    from wiserpa.runtime import Runtime

    if state is not None:
        state = _wiser_state(state)
    settings = _settings(database_url)
    _ensure_schema(settings, apply=False)
    rt = Runtime.build(settings)
    with rt.sessions() as session:
        typer.echo(brief_markdown(session, rt, since=since.date(), state=state), nl=False)
    rt.engine.dispose()


goldcard_app = typer.Typer(help="Gold cards (R4).", no_args_is_help=True)
app.add_typer(goldcard_app, name="goldcard")


@app.command()
def sweep(
    once: Annotated[
        bool, typer.Option("--once", help="Sweep once and exit (default: every interval)")
    ] = False,
    interval: Annotated[
        float | None, typer.Option(help="Seconds between sweeps (default from settings)")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Materialize deemed approvals and record missed deadlines (safe beside other sweepers)."""
    from wiserpa.deadlines.service import run_cli_sweep

    settings = _settings(database_url)
    _ensure_schema(settings, apply=False)
    run_cli_sweep(settings, once=once, interval=interval, echo=typer.echo)


@goldcard_app.command("evaluate")
def goldcard_evaluate(database_url: DatabaseUrl = None) -> None:
    """Evaluate every provider and service for a gold card: grant, renew or let lapse."""
    from wiserpa.goldcard.service import run_cli_evaluation

    settings = _settings(database_url)
    _ensure_schema(settings, apply=False)
    run_cli_evaluation(settings, echo=typer.echo)


fhir_app = typer.Typer(help="FHIR PAS notifications.", no_args_is_help=True)
app.add_typer(fhir_app, name="fhir")


@fhir_app.command("deliver")
def fhir_deliver(
    once: Annotated[bool, typer.Option("--once", help="One delivery pass, then exit")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between passes")] = 5.0,
    database_url: DatabaseUrl = None,
) -> None:
    """Send due subscription notifications from the outbox (retries with backoff; safe beside the app)."""
    from wiserpa.fhir.subscriptions import run_cli_delivery

    settings = _settings(database_url)
    _ensure_schema(settings, apply=False)
    run_cli_delivery(settings, once=once, interval=interval, echo=typer.echo)


@app.command()
def simulate(
    state: Annotated[str, typer.Option(help="WISeR state")] = "WA",
    year: Annotated[int, typer.Option(help="Performance year")] = 2026,
    profiles: Annotated[str, typer.Option(help="Comma-separated policy profiles")] = "wiser-2026,asa-reform",
    scale: Annotated[
        float, typer.Option(help="Fraction of the state's volume (and reviewer capacity)")
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same results)")] = 2026,
    out: Annotated[Path | None, typer.Option(help="Write CSV, SVG charts and report.html here")] = None,
    compare: Annotated[bool, typer.Option("--compare", help="Add each asa-reform section alone")] = False,
    png: Annotated[bool, typer.Option("--png", help="Also a PNG chart (matplotlib)")] = False,
    clinicians: Annotated[
        float | None, typer.Option(help="Reviewer clinicians (default: assumptions)")
    ] = None,
    store: Annotated[bool, typer.Option("--store", help="Store the run for the oversight page")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Simulate a year of WISeR under each policy profile, through the real services."""
    from wiserpa.policy.catalog import load_catalog
    from wiserpa.sim.engine import Scenario
    from wiserpa.sim.outputs import run_cli

    if not scale > 0:
        raise typer.BadParameter("must be greater than 0", param_hint="--scale")
    if clinicians is not None and not clinicians > 0:
        raise typer.BadParameter("must be greater than 0", param_hint="--clinicians")
    catalog = load_catalog()
    first, last = catalog.model_start.year, catalog.model_end.year
    if not first <= year <= last:
        raise typer.BadParameter(f"the model runs {first}-{last}", param_hint="--year")
    state = _wiser_state(state)
    if out is not None:
        # Refuse an unwritable --out before a long run, not after it.
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise typer.BadParameter(f"cannot create {out}: {exc.strerror}", param_hint="--out") from None
        if not os.access(out, os.W_OK):
            raise typer.BadParameter(f"{out} is not writable", param_hint="--out")
    scenario = Scenario(
        state=state,
        year=year,
        profiles=tuple(p.strip() for p in profiles.split(",")),
        scale=scale,
        seed=seed,
        compare=compare,
        clinicians=clinicians,
    )
    store_url = None
    if store:
        settings = _settings(database_url)
        _ensure_schema(settings, apply=False)
        store_url = settings.database_url
    run_cli(scenario, out=out, png=png, store_url=store_url, echo=typer.echo)


def main() -> None:
    """Entry point for `python -m wiserpa`."""
    app()


if __name__ == "__main__":
    main()

__all__ = ["DEFAULT_DATABASE_URL", "app"]
