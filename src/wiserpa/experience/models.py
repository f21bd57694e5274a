"""Provider experience reports (R9) and their obstacles (one row each, so SQL can group by obstacle)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Date, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from wiserpa.store.base import Base, JSONType, UTCDateTime


class ExperienceReport(Base):
    """One report of a delay or obstacle. Narratives never carry identifiers: intake rejects them."""

    __tablename__ = "experience_reports"
    __table_args__ = (
        Index("ix_experience_reports_state_week", "state", "week_start"),
        Index("ix_experience_reports_participant_week", "participant", "week_start"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(10))  # provider | public
    # Reporter identity: kept for scope and abuse handling, never exported or shown in patterns.
    reporter_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"), index=True)
    state: Mapped[str] = mapped_column(String(2))
    participant: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(40))
    service_code: Mapped[str | None] = mapped_column(String(5))
    requested_on: Mapped[dt.date | None] = mapped_column(Date)
    decided_on: Mapped[dt.date | None] = mapped_column(Date)
    care_on: Mapped[dt.date | None] = mapped_column(Date)
    delay_days: Mapped[float | None] = mapped_column(Float)
    reported_delay_days: Mapped[float | None] = mapped_column(Float)
    # The date the experience happened (requested_on, else the submission date) and its ISO week's Monday.
    event_on: Mapped[dt.date] = mapped_column(Date)
    week_start: Mapped[dt.date] = mapped_column(Date)
    impact: Mapped[str] = mapped_column(String(20))
    narrative: Mapped[str] = mapped_column(Text)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("pa_requests.id"), index=True)
    # The linked request's actual timeline at submission, and where the report disagrees with it.
    timeline_check: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    timeline_disagrees: Mapped[bool] = mapped_column(Boolean, default=False)

    obstacles: Mapped[list[ExperienceObstacle]] = relationship(
        back_populates="report",
        order_by="ExperienceObstacle.id",
        cascade="all, delete-orphan",
        lazy="selectin",
    )

    @property
    def obstacle_values(self) -> list[str]:
        """The report's obstacle keys in the order given."""
        return [o.obstacle for o in self.obstacles]


class ExperienceObstacle(Base):
    """One obstacle named in a report."""

    __tablename__ = "experience_obstacles"
    __table_args__ = (
        UniqueConstraint("report_id", "obstacle", name="uq_experience_obstacles_report_obstacle"),
        Index("ix_experience_obstacles_obstacle", "obstacle"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("experience_reports.id", ondelete="CASCADE"))
    obstacle: Mapped[str] = mapped_column(String(40))

    report: Mapped[ExperienceReport] = relationship(back_populates="obstacles")
