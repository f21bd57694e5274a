"""pa_requests.sweep_settled: the sweep skips open requests whose miss is recorded and that time cannot deem

Revision ID: 0011
Revises: 0009, 0002
Create Date: 2026-11-29 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = ("0009", "0002")  # after 0002: the backfill reads deadline_misses
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Without it every sweep walked every overdue open request under a profile without deemed approval (its miss
    # already recorded), checking NOT EXISTS for each: a cost that grew with the backlog, not with what fell due.
    with op.batch_alter_table("pa_requests") as batch:
        batch.add_column(sa.Column("sweep_settled", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(
        "UPDATE pa_requests SET sweep_settled = "
        "(NOT deems_on_due AND EXISTS (SELECT 1 FROM deadline_misses WHERE request_id = pa_requests.id))"
    )
    op.create_index("ix_pa_requests_sweep", "pa_requests", ["status", "sweep_settled", "due_at"])


def downgrade() -> None:
    op.drop_index("ix_pa_requests_sweep", table_name="pa_requests")
    with op.batch_alter_table("pa_requests") as batch:
        batch.drop_column("sweep_settled")
