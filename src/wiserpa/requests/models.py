"""Prior-authorization requests, their service lines and every decision made on them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from wiserpa.store.base import Base, JSONType, UTCDateTime


class PaRequest(Base):
    """A request for one service (primary and add-on codes) for one beneficiary."""

    __tablename__ = "pa_requests"
    __table_args__ = (
        # The deadline sweep and the worklist read open requests by due time: this index keeps the
        # sweep's cost proportional to what is due, not to everything open.
        Index("ix_pa_requests_status_due_at", "status", "due_at"),
        # The deadline sweep: open requests it still has work for, by due time (migration 0011).
        Index("ix_pa_requests_sweep", "status", "sweep_settled", "due_at"),
        # The reviewer worklist: one state's open requests by due time (migration 0009).
        Index("ix_pa_requests_state_status_due_at", "state", "status", "due_at"),
        Index("ix_pa_requests_mbi_category", "beneficiary_mbi", "category"),
        Index("ix_pa_requests_org_received", "organization_id", "received_at"),
        Index("ix_pa_requests_state_received", "state", "received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    utn: Mapped[str | None] = mapped_column(String(14), unique=True)
    state: Mapped[str] = mapped_column(String(2))
    participant: Mapped[str] = mapped_column(String(100))
    jurisdiction: Mapped[str] = mapped_column(String(10))
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    submitted_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    provider_npi: Mapped[str] = mapped_column(String(10), index=True)
    beneficiary_mbi: Mapped[str] = mapped_column(String(11))
    category: Mapped[str] = mapped_column(String(40))
    policy_id: Mapped[str | None] = mapped_column(String(20))
    primary_code: Mapped[str] = mapped_column(String(5))
    place_of_service: Mapped[str] = mapped_column(String(2))
    date_of_service: Mapped[dt.date] = mapped_column(Date)
    urgency: Mapped[str] = mapped_column(String(10))
    channel: Mapped[str] = mapped_column(String(20))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    mac_received_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    clock_started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # Snapshot of the profile's deemed-approval rule at submission, so status can be computed in SQL.
    deems_on_due: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(24))
    decision_kind: Mapped[str | None] = mapped_column(String(20))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    valid_until: Mapped[dt.date | None] = mapped_column(Date)
    profile_id: Mapped[str] = mapped_column(String(60))
    profile_version: Mapped[str] = mapped_column(String(30))
    predecessor_id: Mapped[int | None] = mapped_column(ForeignKey("pa_requests.id"), index=True)
    exemption: Mapped[str | None] = mapped_column(String(40))
    audit_sampled: Mapped[bool] = mapped_column(Boolean, default=False)
    # True once the sweep has nothing left to do while the request stays open: its deadline miss is recorded
    # and its profile has no deemed approval. Lets the sweep skip the overdue backlog instead of re-checking it.
    sweep_settled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    time_sensitive_attestation: Mapped[bool] = mapped_column(Boolean, default=False)
    diagnosis_codes: Mapped[list[str]] = mapped_column(JSONType)
    clinical_facts: Mapped[dict[str, Any]] = mapped_column(JSONType)
    criteria_results: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    raw_submission: Mapped[dict[str, Any]] = mapped_column(JSONType)
    notes: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    lines: Mapped[list[RequestLine]] = relationship(
        back_populates="request", order_by="RequestLine.seq", cascade="all, delete-orphan", lazy="selectin"
    )
    decisions: Mapped[list[Decision]] = relationship(
        back_populates="request", order_by="Decision.id", cascade="all, delete-orphan", lazy="selectin"
    )

    __mapper_args__ = {"version_id_col": version}


class RequestLine(Base):
    """One code on a request; associated services (anesthesia, imaging, facility) share its fate."""

    __tablename__ = "request_lines"
    __table_args__ = (Index("ix_request_lines_code", "code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("pa_requests.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(5))
    modifiers: Mapped[list[str]] = mapped_column(JSONType)
    units: Mapped[int] = mapped_column(Integer, default=1)
    role: Mapped[str] = mapped_column(String(12))  # primary | add_on | associated
    kind: Mapped[str | None] = mapped_column(String(12))  # for associated: anesthesia | imaging | facility
    requested: Mapped[bool] = mapped_column(Boolean, default=True)  # false: added from the catalog

    request: Mapped[PaRequest] = relationship(back_populates="lines")


class Decision(Base):
    """An event that decided (or tried to decide) a request; the history is never rewritten."""

    __tablename__ = "decisions"
    __table_args__ = (UniqueConstraint("request_id", "kind", "dedupe", name="uq_decisions_once"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("pa_requests.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    # Makes one-time events (the deemed approval) unique per request; "" for repeatable events.
    dedupe: Mapped[str] = mapped_column(String(40), default="")
    resulting_status: Mapped[str] = mapped_column(String(24))
    effective: Mapped[bool] = mapped_column(Boolean, default=True)
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewer_name: Mapped[str | None] = mapped_column(String(200))
    reviewer_npi: Mapped[str | None] = mapped_column(String(10))
    reviewer_specialty: Mapped[str | None] = mapped_column(String(100))
    reviewer_credentials: Mapped[str | None] = mapped_column(String(50))
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    note: Mapped[str | None] = mapped_column(Text)
    profile_id: Mapped[str] = mapped_column(String(60))
    profile_version: Mapped[str] = mapped_column(String(30))
    criteria_results: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    facts_used: Mapped[dict[str, Any]] = mapped_column(JSONType)

    request: Mapped[PaRequest] = relationship(back_populates="decisions")
