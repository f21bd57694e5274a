"""Retrospective audits of exempt requests: was the time-sensitive attestation appropriate (R1)?"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from wiserpa.store.base import Base, UTCDateTime


class ExemptionAudit(Base):
    """The one audit finding on one exempt request (request id is the key: audited once)."""

    __tablename__ = "exemption_audits"
    __table_args__ = (Index("ix_exemption_audits_npi", "provider_npi"),)

    request_id: Mapped[int] = mapped_column(
        ForeignKey("pa_requests.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    provider_npi: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(2))
    category: Mapped[str] = mapped_column(String(40))
    exemption: Mapped[str] = mapped_column(String(40))
    sampled: Mapped[bool] = mapped_column(Boolean)  # picked by the deterministic sample, or a targeted audit
    appropriate: Mapped[bool] = mapped_column(Boolean)  # False: the attestation was false
    note: Mapped[str | None] = mapped_column(Text)
    auditor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    auditor_name: Mapped[str] = mapped_column(String(200))
    auditor_role: Mapped[str] = mapped_column(String(20))
    audited_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
