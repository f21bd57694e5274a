"""What follows a change of a request's outcome, in the same transaction: the one place other domains hook in.

The deadline ledger (R2) and PAS notifications (FHIR subscriptions) build on requests, so they are imported
here when called rather than at module load, which keeps `requests` free of import cycles.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from wiserpa.requests.schemas import Channel

if TYPE_CHECKING:
    from wiserpa.requests.models import PaRequest
    from wiserpa.runtime import Runtime


def outcome_changed(
    session: Session, rt: Runtime, request: PaRequest, *, now: dt.datetime, via: str, notify: bool = True
) -> None:
    """Record a deadline miss if the outcome came late, and queue the PAS notification for subscribers."""
    from wiserpa.deadlines.service import record_miss

    record_miss(session, rt, request, now=now, via=via)
    # Only a request that came through FHIR has a PAS Bundle to notify about (enqueue_for_request checks it
    # too). Checked here so that a process with no such request never imports the FHIR layer (httpx and all:
    # 0.18 s of CPU, which every simulator run paid at its first clinician decision).
    if notify and request.channel == Channel.FHIR.value:
        from wiserpa.fhir.subscriptions import enqueue_for_request

        enqueue_for_request(session, request, rt)
