"""Imports every table module so `Base.metadata` is complete (Alembic, tests and reports rely on it)."""

from wiserpa.audit import models as audit_models
from wiserpa.auth import models as auth_models
from wiserpa.claims import models as claim_models
from wiserpa.deadlines import models as deadline_models
from wiserpa.exemptions import models as exemption_models
from wiserpa.experience import models as experience_models
from wiserpa.fhir import models as fhir_models
from wiserpa.goldcard import models as goldcard_models
from wiserpa.reporting import models as reporting_models
from wiserpa.requests import models as request_models
from wiserpa.reviews import models as review_models
from wiserpa.sim import models as sim_models
from wiserpa.store import idempotency
from wiserpa.store.base import Base
from wiserpa.support import models as support_models

__all__ = [
    "Base",
    "audit_models",
    "auth_models",
    "claim_models",
    "deadline_models",
    "exemption_models",
    "experience_models",
    "fhir_models",
    "goldcard_models",
    "idempotency",
    "reporting_models",
    "request_models",
    "review_models",
    "sim_models",
    "support_models",
]
