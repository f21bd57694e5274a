"""Alembic, driven from code: upgrade, and tell whether a database's schema is current."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine


def alembic_config(engine: Engine) -> Config:
    """An Alembic config pointing at the packaged migrations and the given engine."""
    location = Path(str(resources.files("wiserpa.store") / "migrations"))
    cfg = Config()
    cfg.set_main_option("script_location", str(location))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Apply migrations up to `revision` (PostgreSQL: under an advisory lock, so workers can race safely)."""
    cfg = alembic_config(engine)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT pg_advisory_lock(724011)")
            try:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                conn.commit()
            finally:
                conn.exec_driver_sql("SELECT pg_advisory_unlock(724011)")
                conn.commit()
        return
    command.upgrade(cfg, revision)


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database stands against the packaged migrations."""

    current_revisions: tuple[str, ...]
    head_revisions: tuple[str, ...]

    @property
    def current(self) -> bool:
        """True when the database is at every head (domains may add independent migration branches)."""
        return set(self.current_revisions) == set(self.head_revisions)

    @property
    def empty(self) -> bool:
        """True for a database no migration has touched."""
        return not self.current_revisions

    @property
    def current_revision(self) -> str | None:
        """The database's revisions, comma-separated (None when empty)."""
        return ",".join(sorted(self.current_revisions)) or None

    @property
    def head_revision(self) -> str | None:
        """The code's newest revisions, comma-separated."""
        return ",".join(sorted(self.head_revisions)) or None

    def as_dict(self) -> dict[str, str | None]:
        """JSON form."""
        return {"revision": self.current_revision, "head": self.head_revision}


def schema_status(engine: Engine) -> SchemaStatus:
    """Compare the database's revision with the newest packaged one."""
    script = ScriptDirectory.from_config(alembic_config(engine))
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_heads()
    return SchemaStatus(tuple(current), tuple(script.get_heads()))
