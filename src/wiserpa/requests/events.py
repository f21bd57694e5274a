"""What follows a change of a request's outcome, in the same transaction: the one place other domains hook in.

The deadline ledger (R2) and PAS notifications (FHIR subscriptions) build on requests, so they are imported
here when called rather than at module load, which keeps `requests` free of import cycles.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from wiserpa.requests.models import PaRequest
    from wiserpa.runtime import Runtime


def outcome_changed(
    session: Session, rt: Runtime, request: PaRequest, *, now: dt.datetime, via: str, notify: bool = True
) -> None:
    """Record a deadline miss if the outcome came late, and queue the PAS notification for subscribers."""
    from wiserpa.deadlines.service import record_miss
    from wiserpa.fhir.subscriptions import enqueue_for_request

    record_miss(session, rt, request, now=now, via=via)
    if notify:
        enqueue_for_request(session, request, rt)
