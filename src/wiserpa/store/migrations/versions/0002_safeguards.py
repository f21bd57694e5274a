"""safeguards: deadline misses (R2/R3) and exemption audits (R1)

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import wiserpa.store.base

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deadline_misses",
        sa.Column("request_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("participant", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=2), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("provider_npi", sa.String(length=10), nullable=False),
        sa.Column("urgency", sa.String(length=10), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("received_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("mac_received_at", wiserpa.store.base.UTCDateTime(), nullable=True),
        sa.Column("forwarding_delay_seconds", sa.Integer(), nullable=True),
        sa.Column("clock_started_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("due_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("detected_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("detected_by", sa.String(length=30), nullable=False),
        sa.Column("resolution", sa.String(length=20), nullable=False),
        sa.Column("resolved_at", wiserpa.store.base.UTCDateTime(), nullable=True),
        sa.Column("late_seconds", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.String(length=60), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["pa_requests.id"],
            name=op.f("fk_deadline_misses_request_id_pa_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_deadline_misses")),
    )
    with op.batch_alter_table("deadline_misses", schema=None) as batch_op:
        batch_op.create_index("ix_deadline_misses_participant_month", ["participant", "month"], unique=False)
        batch_op.create_index("ix_deadline_misses_state_month", ["state", "month"], unique=False)
        batch_op.create_index("ix_deadline_misses_resolution", ["resolution"], unique=False)

    op.create_table(
        "exemption_audits",
        sa.Column("request_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("provider_npi", sa.String(length=10), nullable=False),
        sa.Column("state", sa.String(length=2), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("exemption", sa.String(length=40), nullable=False),
        sa.Column("sampled", sa.Boolean(), nullable=False),
        sa.Column("appropriate", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("auditor_user_id", sa.Integer(), nullable=True),
        sa.Column("auditor_name", sa.String(length=200), nullable=False),
        sa.Column("auditor_role", sa.String(length=20), nullable=False),
        sa.Column("audited_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["auditor_user_id"], ["users.id"], name=op.f("fk_exemption_audits_auditor_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["pa_requests.id"],
            name=op.f("fk_exemption_audits_request_id_pa_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_exemption_audits")),
    )
    with op.batch_alter_table("exemption_audits", schema=None) as batch_op:
        batch_op.create_index("ix_exemption_audits_npi", ["provider_npi"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("exemption_audits", schema=None) as batch_op:
        batch_op.drop_index("ix_exemption_audits_npi")
    op.drop_table("exemption_audits")
    with op.batch_alter_table("deadline_misses", schema=None) as batch_op:
        batch_op.drop_index("ix_deadline_misses_resolution")
        batch_op.drop_index("ix_deadline_misses_state_month")
        batch_op.drop_index("ix_deadline_misses_participant_month")
    op.drop_table("deadline_misses")
