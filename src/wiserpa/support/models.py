"""Technical-support tickets (R5), their response clocks and their message threads."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from wiserpa.store.base import Base, UTCDateTime


class SupportTicket(Base):
    """A practice's request for technical help from its state's participant."""

    __tablename__ = "support_tickets"
    __table_args__ = (
        Index("ix_support_tickets_org_opened", "organization_id", "opened_at"),
        Index("ix_support_tickets_state_status", "state", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    opened_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    state: Mapped[str] = mapped_column(String(2))
    participant: Mapped[str] = mapped_column(String(100))
    request_id: Mapped[int | None] = mapped_column(ForeignKey("pa_requests.id"), index=True)
    category: Mapped[str] = mapped_column(String(30))
    urgency: Mapped[str] = mapped_column(String(10))  # urgent | standard
    urgent_trigger: Mapped[str | None] = mapped_column(String(40))
    # Why: "trigger:<name>", "linked_request_expedited", "linked_request_exempt" or "none".
    urgency_reason: Mapped[str] = mapped_column(String(60))
    subject: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12))  # open | answered | resolved
    # The SLA window as it was when the ticket opened (a later profile change does not move old deadlines).
    sla_amount: Mapped[float] = mapped_column(Float)
    sla_unit: Mapped[str] = mapped_column(String(20))
    profile_id: Mapped[str] = mapped_column(String(60))
    profile_version: Mapped[str] = mapped_column(String(30))
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    cycles: Mapped[list[SupportCycle]] = relationship(
        back_populates="ticket", order_by="SupportCycle.seq", cascade="all, delete-orphan", lazy="selectin"
    )
    messages: Mapped[list[SupportMessage]] = relationship(
        back_populates="ticket", order_by="SupportMessage.id", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def current_cycle(self) -> SupportCycle:
        """The response clock in force: the one started by the latest opening or reopening."""
        return self.cycles[-1]


class SupportCycle(Base):
    """One response clock: started when the ticket opens (seq 1) or is reopened (seq 2, 3, ...).

    Compliance is measured over cycles, so a reopened ticket's first miss stays on the record and the
    reopening is measured on its own deadline.
    """

    __tablename__ = "support_cycles"
    __table_args__ = (
        UniqueConstraint("ticket_id", "seq", name="uq_support_cycles_ticket_seq"),
        Index("ix_support_cycles_participant_started", "participant", "started_at"),
        Index("ix_support_cycles_open_due", "responded_at", "due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("support_tickets.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    # Denormalized from the ticket so compliance is one GROUP BY over this table.
    state: Mapped[str] = mapped_column(String(2))
    participant: Mapped[str] = mapped_column(String(100))
    urgency: Mapped[str] = mapped_column(String(10))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    responded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    responded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Set when the ticket is resolved before anyone responded (e.g. the practice closed it itself).
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    ticket: Mapped[SupportTicket] = relationship(back_populates="cycles")


class SupportMessage(Base):
    """One entry in a ticket's thread: opening text, responses, comments, resolution and reopen notes."""

    __tablename__ = "support_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("support_tickets.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(12))  # response | comment | resolution | reopen
    author_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    author_role: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    ticket: Mapped[SupportTicket] = relationship(back_populates="messages")
