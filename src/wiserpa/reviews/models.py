"""Clinician review workflow records: requests for more information and peer-to-peer conversations."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from wiserpa.store.base import Base, JSONType, UTCDateTime


class InformationRequest(Base):
    """A reviewer asks the provider for what is missing; the due-time clock keeps running meanwhile."""

    __tablename__ = "information_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("pa_requests.id"), index=True)
    requested_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    criterion_ids: Mapped[list[str]] = mapped_column(
        JSONType, doc="the unmet/undocumented criteria asked about"
    )
    message: Mapped[str | None] = mapped_column(Text)
    responded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    responded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    response_note: Mapped[str | None] = mapped_column(Text)
    response_facts: Mapped[dict[str, Any] | None] = mapped_column(
        JSONType, doc="facts the provider supplied in answer, validated against the governing policy"
    )


class PeerToPeer(Base):
    """A peer-to-peer conversation about a request: requested, scheduled, and its outcome."""

    __tablename__ = "peer_to_peer"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("pa_requests.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), doc="requested | scheduled | completed")
    requested_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_by_role: Mapped[str] = mapped_column(String(20))
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    request_note: Mapped[str | None] = mapped_column(Text)
    scheduled_for: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    scheduled_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    outcome: Mapped[str | None] = mapped_column(String(30), doc="affirmed_on_discussion | upheld | no_show")
    outcome_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    outcome_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    outcome_note: Mapped[str | None] = mapped_column(Text)
