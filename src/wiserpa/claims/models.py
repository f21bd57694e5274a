"""Claims, their lines (each matched to an authorization or not), pre-payment reviews and appeals."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from wiserpa.store.base import Base, JSONType, UTCDateTime


class Claim(Base):
    """A claim as billed: one provider, one beneficiary, one state, one or more service lines."""

    __tablename__ = "claims"
    __table_args__ = (Index("ix_claims_org_received", "organization_id", "received_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    submitted_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    claim_type: Mapped[str] = mapped_column(String(14))  # professional | institutional
    billing_npi: Mapped[str] = mapped_column(String(10))
    beneficiary_mbi: Mapped[str] = mapped_column(String(11), index=True)
    state: Mapped[str] = mapped_column(String(2), index=True)
    participant: Mapped[str] = mapped_column(String(100))
    diagnosis_codes: Mapped[list[str]] = mapped_column(JSONType)
    channel: Mapped[str] = mapped_column(String(10))  # rest | fhir
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    profile_id: Mapped[str] = mapped_column(String(60))
    profile_version: Mapped[str] = mapped_column(String(30))
    fee_schedule: Mapped[str] = mapped_column(String(200))
    raw_submission: Mapped[dict[str, Any]] = mapped_column(JSONType)

    lines: Mapped[list[ClaimLine]] = relationship(
        back_populates="claim", order_by="ClaimLine.seq", cascade="all, delete-orphan", lazy="selectin"
    )


class ClaimLine(Base):
    """One billed code and what became of it: payable, denied, suspended for review, or outside WISeR."""

    __tablename__ = "claim_lines"
    __table_args__ = (
        UniqueConstraint("claim_id", "seq", name="uq_claim_lines_claim_seq"),
        # The participant's figures (denials, appeals, overturns) read lines by participant and outcome.
        Index("ix_claim_lines_participant_outcome", "participant", "outcome"),
        # The public report's live reads: denied lines, and overturned appeals (migration 0010).
        Index("ix_claim_lines_outcome", "outcome"),
        Index("ix_claim_lines_appeal_status", "appeal_status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(5))
    modifiers: Mapped[list[str]] = mapped_column(JSONType)
    units: Mapped[int] = mapped_column(Integer)
    date_of_service: Mapped[dt.date] = mapped_column(Date)
    rendering_npi: Mapped[str] = mapped_column(String(10))
    place_of_service: Mapped[str] = mapped_column(String(2))
    revenue_code: Mapped[str | None] = mapped_column(String(4))
    utn: Mapped[str | None] = mapped_column(String(14))
    role: Mapped[str] = mapped_column(String(12))  # primary | add_on | associated | other
    kind: Mapped[str | None] = mapped_column(String(12))  # associated: anesthesia | imaging | facility | ...
    category: Mapped[str | None] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(12))  # payable | denied | suspended | not_subject
    outcome_reason: Mapped[str] = mapped_column(Text)
    # The denial's reasons and citations, copied from the decision that made it.
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("pa_requests.id"), index=True)
    authorization_utn: Mapped[str | None] = mapped_column(String(14))
    matched_by: Mapped[str | None] = mapped_column(String(30))  # utn | beneficiary_code_date | ...
    prepayment_review_id: Mapped[int | None] = mapped_column(ForeignKey("prepayment_reviews.id"), index=True)
    # Who made the denial (or holds the review): overturned appeals count against this participant.
    participant: Mapped[str | None] = mapped_column(String(100))
    allowed_cents: Mapped[int | None] = mapped_column(Integer)
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    appeal_status: Mapped[str | None] = mapped_column(String(12))  # pending | upheld | overturned
    appealed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    appeal_reason: Mapped[str | None] = mapped_column(Text)
    appeal_decided_on: Mapped[dt.date | None] = mapped_column(Date)
    appeal_recorded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    appeal_note: Mapped[str | None] = mapped_column(Text)

    claim: Mapped[Claim] = relationship(back_populates="lines")


class PrepaymentReview(Base):
    """Medical review of a service billed without an authorization (WISeR's third path).

    One review per service episode (beneficiary, category, date of service): the facility, professional and
    anesthesia lines of one procedure share it, whoever bills them.
    """

    __tablename__ = "prepayment_reviews"
    __table_args__ = (
        # Lines of the same episode find its open review with one index lookup.
        Index("ix_prepayment_reviews_episode", "beneficiary_mbi", "category", "date_of_service"),
        Index("ix_prepayment_reviews_status_due", "status", "decision_due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(2), index=True)
    participant: Mapped[str] = mapped_column(String(100))
    beneficiary_mbi: Mapped[str] = mapped_column(String(11))
    category: Mapped[str] = mapped_column(String(40))
    policy_id: Mapped[str | None] = mapped_column(String(20))
    date_of_service: Mapped[dt.date] = mapped_column(Date)
    # awaiting_documentation | under_review | affirmed | non_affirmed | deemed_payable
    status: Mapped[str] = mapped_column(String(24))
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    documentation_due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    documentation_request: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    documents_received_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    decision_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # Snapshot of the profile's rule, so the deemed outcome can be computed on read (and in SQL).
    deems_on_miss: Mapped[bool] = mapped_column(Boolean)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    decision_kind: Mapped[str | None] = mapped_column(String(20))  # criteria | clinician | deemed
    diagnosis_codes: Mapped[list[str]] = mapped_column(JSONType)
    clinical_facts: Mapped[dict[str, Any]] = mapped_column(JSONType)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    criteria_results: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    events: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    reviewer_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewer_npi: Mapped[str | None] = mapped_column(String(10))
    reviewer_name: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    profile_id: Mapped[str] = mapped_column(String(60))
    profile_version: Mapped[str] = mapped_column(String(30))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
