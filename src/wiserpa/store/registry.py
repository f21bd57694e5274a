"""Imports every table module so `Base.metadata` is complete (Alembic and tests rely on it)."""

from wiserpa.audit import models as audit_models
from wiserpa.auth import models as auth_models
from wiserpa.goldcard import models as goldcard_models
from wiserpa.requests import models as request_models
from wiserpa.store import idempotency
from wiserpa.store.base import Base

__all__ = ["Base", "audit_models", "auth_models", "goldcard_models", "idempotency", "request_models"]
