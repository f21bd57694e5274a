"""API keys (hashed at rest, compared in constant time) and the principals they authenticate."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from wiserpa.audit.service import Actor
from wiserpa.auth.models import ApiKey, Organization, OrgKind, Role, User

KEY_PREFIX = "wpa"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller and the scope its role grants."""

    user_id: int
    name: str
    role: Role
    organization_id: int | None = None
    state: str | None = None
    npi: str | None = None
    specialty: str | None = None
    credentials: str | None = None
    is_clinician: bool = False
    key_id: int | None = None

    @property
    def actor(self) -> Actor:
        """How the audit log names this caller."""
        return Actor(f"user:{self.user_id}", self.role.value)


def _digest(secret: str) -> str:
    # Keys carry 256 bits of randomness, so a plain SHA-256 is enough (no password stretching needed).
    return hashlib.sha256(secret.encode()).hexdigest()


def create_organization(
    session: Session,
    *,
    name: str,
    kind: OrgKind,
    now: dt.datetime,
    npi: str | None = None,
    state: str | None = None,
) -> Organization:
    """Add an organization (flushes, does not commit)."""
    org = Organization(name=name, kind=kind.value, npi=npi, state=state, created_at=now)
    session.add(org)
    session.flush()
    return org


def create_user(
    session: Session,
    *,
    name: str,
    role: Role,
    now: dt.datetime,
    organization_id: int | None = None,
    state: str | None = None,
    npi: str | None = None,
    specialty: str | None = None,
    credentials: str | None = None,
    is_clinician: bool = False,
) -> User:
    """Add a user (flushes, does not commit)."""
    if role is Role.PROVIDER and organization_id is None:
        raise ValueError("a provider user needs an organization")
    if role is Role.REVIEWER and state is None:
        raise ValueError("a reviewer user needs the participant's state")
    user = User(
        name=name,
        role=role.value,
        organization_id=organization_id,
        state=state,
        npi=npi,
        specialty=specialty,
        credentials=credentials,
        is_clinician=is_clinician,
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def issue_key(
    session: Session,
    *,
    user: User,
    now: dt.datetime,
    label: str | None = None,
    expires_at: dt.datetime | None = None,
) -> str:
    """Create a key for `user` and return it; only its digest is stored, so it is shown once. A key with
    `expires_at` stops authenticating at that instant; without, it lasts until revoked."""
    if expires_at is not None and expires_at <= now:
        raise ValueError("a key must expire after it is created")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    session.add(
        ApiKey(
            prefix=prefix, secret_sha256=_digest(secret), user_id=user.id, label=label, created_at=now,
            expires_at=expires_at,
        )
    )  # fmt: skip
    session.flush()
    return f"{KEY_PREFIX}_{prefix}_{secret}"


def revoke_key(session: Session, *, prefix: str, now: dt.datetime) -> bool:
    """Revoke a key by its prefix; True when one was revoked."""
    key = session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).first()
    if key is None or key.revoked_at is not None:
        return False
    key.revoked_at = now
    return True


_PREFIX_ALPHABET = frozenset("0123456789abcdef")
_PREFIX_MAX = 16  # api_keys.prefix column width; issued prefixes are 12 hex digits


def _is_prefix(text: str) -> bool:
    """Whether `text` could be a prefix we issued: 1-16 lowercase hex digits."""
    return len(text) <= _PREFIX_MAX and _PREFIX_ALPHABET.issuperset(text)


# Built once: authentication runs on every request, and building a statement costs more than running it.
_KEY_LOOKUP = (
    select(
        ApiKey.id,
        ApiKey.secret_sha256,
        ApiKey.revoked_at,
        ApiKey.expires_at,
        User.id,
        User.name,
        User.role,
        User.organization_id,
        User.state,
        User.npi,
        User.specialty,
        User.credentials,
        User.is_clinician,
    )
    .join(User, User.id == ApiKey.user_id)
    .where(ApiKey.prefix == bindparam("prefix"))
)


def authenticate(session: Session, token: str, *, now: dt.datetime) -> Principal | None:
    """The principal for a presented key at `now`, or None (unknown, malformed, revoked or expired)."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    # Only a prefix of the shape we issue (hex digits) is looked up: anything else names no key, and some
    # characters cannot even be sent (PostgreSQL text refuses NUL, which a cookie or form field can carry).
    row = session.execute(_KEY_LOOKUP, {"prefix": parts[1]}).first() if _is_prefix(parts[1]) else None
    if row is None:
        # Spend the same work as a real comparison so timing does not reveal which prefixes exist.
        hmac.compare_digest(_digest(parts[2]), "0" * 64)
        return None
    (
        key_id,
        secret_sha256,
        revoked_at,
        expires_at,
        user_id,
        name,
        role,
        org_id,
        state,
        npi,
        specialty,
        creds,
        clin,
    ) = row
    if not hmac.compare_digest(_digest(parts[2]), secret_sha256) or revoked_at is not None:
        return None
    if expires_at is not None and now >= expires_at:
        return None
    return Principal(
        user_id=user_id,
        name=name,
        role=Role(role),
        organization_id=org_id,
        state=state,
        npi=npi,
        specialty=specialty,
        credentials=creds,
        is_clinician=bool(clin),
        key_id=key_id,
    )


def principal_for(user: User, *, key_id: int | None = None) -> Principal:
    """Build the Principal for a stored user."""
    return Principal(
        user_id=user.id,
        name=user.name,
        role=Role(user.role),
        organization_id=user.organization_id,
        state=user.state,
        npi=user.npi,
        specialty=user.specialty,
        credentials=user.credentials,
        is_clinician=user.is_clinician,
        key_id=key_id,
    )
