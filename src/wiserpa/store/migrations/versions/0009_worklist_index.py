"""index for the reviewer worklist: open requests of one state by due time

Revision ID: 0009
Revises: 0001
Create Date: 2026-12-03 00:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Without it a planner without statistics (SQLite) walks every request of the state on each worklist read,
    # so a participant's worklist got slower with every request ever submitted there.
    op.create_index("ix_pa_requests_state_status_due_at", "pa_requests", ["state", "status", "due_at"])


def downgrade() -> None:
    op.drop_index("ix_pa_requests_state_status_due_at", table_name="pa_requests")
