"""Tables of the FHIR door: raw PAS Bundles, R4 Subscriptions (backport) and the notification outbox."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from wiserpa.store.base import Base, JSONType, UTCDateTime


class FhirBundle(Base):
    """A PAS Bundle exactly as received, linked to the request it created, updated or cancelled."""

    __tablename__ = "fhir_bundles"
    __table_args__ = (
        Index("ix_fhir_bundles_org_claim", "organization_id", "claim_identifier"),
        Index("ix_fhir_bundles_org_bundle", "organization_id", "bundle_identifier"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("pa_requests.id", ondelete="CASCADE"), index=True
    )
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    kind: Mapped[str] = mapped_column(String(10))  # new | update | cancel
    bundle_identifier: Mapped[str] = mapped_column(String(300))
    claim_identifier: Mapped[str] = mapped_column(String(300))
    bundle: Mapped[dict[str, Any]] = mapped_column(JSONType)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class FhirSubscription(Base):
    """A rest-hook Subscription to the PAS topic, owned by one provider organization (spec-59)."""

    __tablename__ = "fhir_subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(12))  # active | off | error
    topic: Mapped[str] = mapped_column(String(200))
    endpoint: Mapped[str] = mapped_column(String(1000))
    org_filter: Mapped[list[str]] = mapped_column(JSONType)
    headers: Mapped[list[str]] = mapped_column(JSONType)
    secret: Mapped[str] = mapped_column(String(100))  # HMAC-SHA256 key for the signature header
    events_count: Mapped[int] = mapped_column(Integer, default=0)
    resource: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class FhirOutbox(Base):
    """One notification to deliver, written in the same transaction as the decision it reports."""

    __tablename__ = "fhir_outbox"
    __table_args__ = (Index("ix_fhir_outbox_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("fhir_subscriptions.id", ondelete="CASCADE"), index=True
    )
    request_id: Mapped[int] = mapped_column(ForeignKey("pa_requests.id", ondelete="CASCADE"), index=True)
    event_number: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(12))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
