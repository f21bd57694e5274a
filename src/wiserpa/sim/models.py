"""Stored simulation runs: what the oversight page shows (metrics, charts and the scenario that made them)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from wiserpa.store.base import Base, JSONType, UTCDateTime


class SimRun(Base):
    """One `wiserpa simulate --store` run: a scenario and its per-profile results."""

    __tablename__ = "sim_runs"
    __table_args__ = (Index("ix_sim_runs_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    label: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(2))
    year: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    scale: Mapped[float] = mapped_column(Float)
    partial: Mapped[bool] = mapped_column(Boolean)
    # Scenario (as_dict), and per profile: metrics, outcomes, checks, throughput; plus calibration.
    scenario: Mapped[dict[str, Any]] = mapped_column(JSONType)
    summary: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # Chart name -> standalone SVG (from wiserpa.reporting.charts), shown as-is.
    charts: Mapped[dict[str, Any]] = mapped_column(JSONType)
