"""One row per request that was still undecided when its review timeline ran out (R2)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from wiserpa.store.base import Base, UTCDateTime


class Resolution:
    """How a miss ended (or that it has not)."""

    DEEMED = "deemed"
    CLINICIAN_DECISION = "clinician_decision"
    WITHDRAWN = "withdrawn"
    STILL_OPEN = "still_open"

    ALL = (DEEMED, CLINICIAN_DECISION, WITHDRAWN, STILL_OPEN)


class DeadlineMiss(Base):
    """A missed timeline. The request id is the key, so a miss can only ever be recorded once."""

    __tablename__ = "deadline_misses"
    __table_args__ = (
        Index("ix_deadline_misses_participant_month", "participant", "month"),
        Index("ix_deadline_misses_state_month", "state", "month"),
        Index("ix_deadline_misses_resolution", "resolution"),
    )

    request_id: Mapped[int] = mapped_column(
        ForeignKey("pa_requests.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    participant: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(2))
    category: Mapped[str] = mapped_column(String(40))
    provider_npi: Mapped[str] = mapped_column(String(10))
    urgency: Mapped[str] = mapped_column(String(10))
    channel: Mapped[str] = mapped_column(String(20))
    # The month of the due date in the state's zone: the ledger period the miss is priced in.
    month: Mapped[str] = mapped_column(String(7))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    mac_received_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # Participant receipt minus MAC receipt: how long the MAC took to forward (None if not forwarded).
    forwarding_delay_seconds: Mapped[int | None] = mapped_column(Integer)
    clock_started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    detected_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # sweep | clinician_decision | withdrawal | deemed; reads also show `time` for a miss not stored yet
    # (deadlines.service.unrecorded_misses), which the sweep or a decision stores later.
    detected_by: Mapped[str] = mapped_column(String(30))
    resolution: Mapped[str] = mapped_column(String(20))
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # Seconds from the due time to the resolution; for a still-open miss, to the last time it was seen.
    late_seconds: Mapped[int] = mapped_column(Integer)
    profile_id: Mapped[str] = mapped_column(String(60))
