"""Organizations, users and their API keys."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from wiserpa.store.base import Base, UTCDateTime


class Role(StrEnum):
    """What a principal may do; object-level scope comes with it."""

    PROVIDER = "provider"  # practice staff: own organization's requests only
    REVIEWER = "reviewer"  # participant clinician/staff: own participant's state only
    OVERSIGHT = "oversight"  # CMS, societies: read everything
    ADMIN = "admin"  # operators: keys and configuration


class OrgKind(StrEnum):
    """Kinds of organizations known to the service."""

    PRACTICE = "practice"
    PARTICIPANT = "participant"
    OVERSIGHT = "oversight"
    OPERATOR = "operator"


class Organization(Base):
    """A practice, a participant company, an oversight body or the operator."""

    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    npi: Mapped[str | None] = mapped_column(String(10), index=True)
    state: Mapped[str | None] = mapped_column(String(2))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class User(Base):
    """A person or system acting through API keys; clinicians carry NPI and specialty."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"), index=True)
    state: Mapped[str | None] = mapped_column(String(2), doc="reviewer scope: the participant's state")
    npi: Mapped[str | None] = mapped_column(String(10))
    specialty: Mapped[str | None] = mapped_column(String(100))
    credentials: Mapped[str | None] = mapped_column(String(50), doc="e.g. MD, DO, RN")
    is_clinician: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ApiKey(Base):
    """An API key: only a prefix (for lookup) and a SHA-256 digest of the secret are stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    label: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())  # None: until revoked
