"""indexes for the public report's live claim reads: denied lines, overturned appeals

Revision ID: 0010
Revises: 0003
Create Date: 2026-12-04 00:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The report reads claims live (appeals change after a request settles): only denied lines and overturned
    # appeals matter, a small share of all lines, so each read follows its index instead of scanning every line.
    op.create_index("ix_claim_lines_outcome", "claim_lines", ["outcome"])
    op.create_index("ix_claim_lines_appeal_status", "claim_lines", ["appeal_status"])


def downgrade() -> None:
    op.drop_index("ix_claim_lines_appeal_status", table_name="claim_lines")
    op.drop_index("ix_claim_lines_outcome", table_name="claim_lines")
