"""simulation runs shown on the oversight page

Revision ID: 0007
Revises: 0001
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import wiserpa.store.base

revision = "0007"
down_revision = "0001"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "sim_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=2), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("scale", sa.Float(), nullable=False),
        sa.Column("partial", sa.Boolean(), nullable=False),
        sa.Column("scenario", _json(), nullable=False),
        sa.Column("summary", _json(), nullable=False),
        sa.Column("charts", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sim_runs")),
    )
    op.create_index("ix_sim_runs_created_at", "sim_runs", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_sim_runs_created_at", table_name="sim_runs")
    op.drop_table("sim_runs")
