"""support tickets with response cycles (R5); experience reports and their obstacles (R9)

Revision ID: 0004
Revises: 0001
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import wiserpa.store.base

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "support_tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("opened_by_user_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=2), nullable=False),
        sa.Column("participant", sa.String(length=100), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("category", sa.String(length=30), nullable=False),
        sa.Column("urgency", sa.String(length=10), nullable=False),
        sa.Column("urgent_trigger", sa.String(length=40), nullable=True),
        sa.Column("urgency_reason", sa.String(length=60), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("sla_amount", sa.Float(), nullable=False),
        sa.Column("sla_unit", sa.String(length=20), nullable=False),
        sa.Column("profile_id", sa.String(length=60), nullable=False),
        sa.Column("profile_version", sa.String(length=30), nullable=False),
        sa.Column("opened_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("resolved_at", wiserpa.store.base.UTCDateTime(), nullable=True),
        sa.Column("reopen_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_support_tickets_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["opened_by_user_id"], ["users.id"], name=op.f("fk_support_tickets_opened_by_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["pa_requests.id"], name=op.f("fk_support_tickets_request_id_pa_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_tickets")),
    )
    with op.batch_alter_table("support_tickets", schema=None) as batch_op:
        batch_op.create_index("ix_support_tickets_org_opened", ["organization_id", "opened_at"], unique=False)
        batch_op.create_index("ix_support_tickets_state_status", ["state", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_support_tickets_request_id"), ["request_id"], unique=False)

    op.create_table(
        "support_cycles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=2), nullable=False),
        sa.Column("participant", sa.String(length=100), nullable=False),
        sa.Column("urgency", sa.String(length=10), nullable=False),
        sa.Column("started_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("due_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("responded_at", wiserpa.store.base.UTCDateTime(), nullable=True),
        sa.Column("responded_by_user_id", sa.Integer(), nullable=True),
        sa.Column("closed_at", wiserpa.store.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["support_tickets.id"],
            name=op.f("fk_support_cycles_ticket_id_support_tickets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["responded_by_user_id"], ["users.id"], name=op.f("fk_support_cycles_responded_by_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_cycles")),
        sa.UniqueConstraint("ticket_id", "seq", name="uq_support_cycles_ticket_seq"),
    )
    with op.batch_alter_table("support_cycles", schema=None) as batch_op:
        batch_op.create_index(
            "ix_support_cycles_participant_started", ["participant", "started_at"], unique=False
        )
        batch_op.create_index("ix_support_cycles_open_due", ["responded_at", "due_at"], unique=False)

    op.create_table(
        "support_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("author_user_id", sa.Integer(), nullable=False),
        sa.Column("author_role", sa.String(length=20), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["support_tickets.id"],
            name=op.f("fk_support_messages_ticket_id_support_tickets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["author_user_id"], ["users.id"], name=op.f("fk_support_messages_author_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_messages")),
    )
    with op.batch_alter_table("support_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_support_messages_ticket_id"), ["ticket_id"], unique=False)

    op.create_table(
        "experience_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submitted_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("reporter_user_id", sa.Integer(), nullable=True),
        sa.Column("organization_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=2), nullable=False),
        sa.Column("participant", sa.String(length=100), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("service_code", sa.String(length=5), nullable=True),
        sa.Column("requested_on", sa.Date(), nullable=True),
        sa.Column("decided_on", sa.Date(), nullable=True),
        sa.Column("care_on", sa.Date(), nullable=True),
        sa.Column("delay_days", sa.Float(), nullable=True),
        sa.Column("reported_delay_days", sa.Float(), nullable=True),
        sa.Column("event_on", sa.Date(), nullable=False),
        sa.Column("week_start", sa.Date(), nullable=False),
        sa.Column("impact", sa.String(length=20), nullable=False),
        sa.Column("narrative", sa.Text(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("timeline_check", _json(), nullable=True),
        sa.Column("timeline_disagrees", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["reporter_user_id"], ["users.id"], name=op.f("fk_experience_reports_reporter_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_experience_reports_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["pa_requests.id"], name=op.f("fk_experience_reports_request_id_pa_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experience_reports")),
    )
    with op.batch_alter_table("experience_reports", schema=None) as batch_op:
        batch_op.create_index("ix_experience_reports_state_week", ["state", "week_start"], unique=False)
        batch_op.create_index(
            "ix_experience_reports_participant_week", ["participant", "week_start"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_experience_reports_organization_id"), ["organization_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_experience_reports_request_id"), ["request_id"], unique=False)

    op.create_table(
        "experience_obstacles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("obstacle", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["experience_reports.id"],
            name=op.f("fk_experience_obstacles_report_id_experience_reports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experience_obstacles")),
        sa.UniqueConstraint("report_id", "obstacle", name="uq_experience_obstacles_report_obstacle"),
    )
    with op.batch_alter_table("experience_obstacles", schema=None) as batch_op:
        batch_op.create_index("ix_experience_obstacles_obstacle", ["obstacle"], unique=False)


def downgrade() -> None:
    op.drop_table("experience_obstacles")
    op.drop_table("experience_reports")
    op.drop_table("support_messages")
    op.drop_table("support_cycles")
    op.drop_table("support_tickets")
