"""api_keys.expires_at: a key may be issued to stop authenticating at an instant (None: until revoked)

Revision ID: 0012
Revises: 0001
Create Date: 2026-11-29 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import wiserpa.store.base

revision = "0012"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no backfill: keys issued before this migration keep lasting until revoked.
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", wiserpa.store.base.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("expires_at")
