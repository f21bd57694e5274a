"""Gold cards granted to providers per service category, and their evaluations."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from wiserpa.store.base import Base, JSONType, UTCDateTime


class GoldCard(Base):
    """An exemption from prior authorization for one provider (NPI) and one service category."""

    __tablename__ = "gold_cards"
    __table_args__ = (Index("ix_gold_cards_npi_category", "provider_npi", "category"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider_npi: Mapped[str] = mapped_column(String(10))
    category: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))  # active | expired | rescinded
    granted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    valid_from: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    valid_until: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    affirmation_rate: Mapped[float] = mapped_column(Float)
    volume: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    window_end: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    profile_id: Mapped[str] = mapped_column(String(60))
    profile_version: Mapped[str] = mapped_column(String(30))
    rescinded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    rescission_reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
