"""pre-aggregated report blocks (reporting/rollup.py)

Revision ID: 0008
Revises: 0001
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import wiserpa.store.base

revision = "0008"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_chunks",
        sa.Column("chunk", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("decisions", sa.Integer(), nullable=False),
        sa.Column("params", sa.String(length=64), nullable=False),
        sa.Column("built_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("chunk", name=op.f("pk_report_chunks")),
    )


def downgrade() -> None:
    op.drop_table("report_chunks")
