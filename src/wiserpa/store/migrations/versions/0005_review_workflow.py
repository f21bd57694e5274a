"""review workflow: information requests and peer-to-peer conversations

Revision ID: 0005
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import wiserpa.store.base

revision = "0005"
down_revision = "0001"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "information_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("requested_by_user_id", sa.Integer(), nullable=False),
        sa.Column("requested_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("criterion_ids", _JSON, nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("responded_at", wiserpa.store.base.UTCDateTime(), nullable=True),
        sa.Column("responded_by_user_id", sa.Integer(), nullable=True),
        sa.Column("response_note", sa.Text(), nullable=True),
        sa.Column("response_facts", _JSON, nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"], ["pa_requests.id"], name=op.f("fk_information_requests_request_id_pa_requests")
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_user_id"],
            ["users.id"],
            name=op.f("fk_information_requests_requested_by_user_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["responded_by_user_id"],
            ["users.id"],
            name=op.f("fk_information_requests_responded_by_user_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_information_requests")),
    )
    with op.batch_alter_table("information_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_information_requests_request_id"), ["request_id"], unique=False)
    op.create_table(
        "peer_to_peer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("requested_by_user_id", sa.Integer(), nullable=False),
        sa.Column("requested_by_role", sa.String(length=20), nullable=False),
        sa.Column("requested_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("request_note", sa.Text(), nullable=True),
        sa.Column("scheduled_for", wiserpa.store.base.UTCDateTime(), nullable=True),
        sa.Column("scheduled_by_user_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=30), nullable=True),
        sa.Column("outcome_at", wiserpa.store.base.UTCDateTime(), nullable=True),
        sa.Column("outcome_by_user_id", sa.Integer(), nullable=True),
        sa.Column("outcome_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"], ["pa_requests.id"], name=op.f("fk_peer_to_peer_request_id_pa_requests")
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_user_id"], ["users.id"], name=op.f("fk_peer_to_peer_requested_by_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["scheduled_by_user_id"], ["users.id"], name=op.f("fk_peer_to_peer_scheduled_by_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["outcome_by_user_id"], ["users.id"], name=op.f("fk_peer_to_peer_outcome_by_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_peer_to_peer")),
    )
    with op.batch_alter_table("peer_to_peer", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_peer_to_peer_request_id"), ["request_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("peer_to_peer", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_peer_to_peer_request_id"))
    op.drop_table("peer_to_peer")
    with op.batch_alter_table("information_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_information_requests_request_id"))
    op.drop_table("information_requests")
