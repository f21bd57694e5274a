"""Settings, read once at the edge from the environment (prefix WISERPA_) or passed explicitly."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///wiserpa.db"


class Settings(BaseSettings):
    """Everything an operator can set. There are no default secrets: API keys are created per deployment."""

    model_config = SettingsConfigDict(env_prefix="WISERPA_", extra="ignore")

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL, description="SQLAlchemy URL (sqlite:/// or postgresql+psycopg://)"
    )
    profile: str = Field(
        default="asa-reform", description="Policy profile in force (name or path to a YAML file)"
    )
    profile_dirs: list[Path] = Field(
        default_factory=list, description="Extra folders holding custom profiles"
    )
    demo: bool = Field(default=False, description="Demo mode: synthetic data and printed demo keys")
    max_body_bytes: int = Field(default=1_048_576, description="Largest accepted request body")
    max_page_size: int = Field(default=200)
    auth_failure_limit: int = Field(default=20, description="Failed authentications per client per minute")
    sweep_interval_seconds: float = Field(
        default=30.0, description="How often each worker runs the deadline sweep; 0 = off"
    )
    webhook_allow_private: bool = Field(
        default=False, description="Allow subscription delivery to loopback/private hosts (tests only)"
    )
    fee_schedule: Path | None = Field(
        default=None,
        description="CSV of allowed amounts per code (default: the packaged 2026 national table)",
    )
    experience_public_intake: bool = Field(
        default=False,
        description="Accept anonymous experience reports (rate-limited, never shown one by one)",
    )
    log_json: bool = True
