"""fhir: raw PAS bundles, R4 backport subscriptions and the notification outbox

Revision ID: 0006
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import wiserpa.store.base

revision = "0006"
down_revision = "0001"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "fhir_bundles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("bundle_identifier", sa.String(length=300), nullable=False),
        sa.Column("claim_identifier", sa.String(length=300), nullable=False),
        sa.Column("bundle", _json(), nullable=False),
        sa.Column("received_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_fhir_bundles_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["pa_requests.id"],
            name=op.f("fk_fhir_bundles_request_id_pa_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_bundles")),
    )
    with op.batch_alter_table("fhir_bundles", schema=None) as batch_op:
        batch_op.create_index(
            "ix_fhir_bundles_org_claim", ["organization_id", "claim_identifier"], unique=False
        )
        batch_op.create_index(
            "ix_fhir_bundles_org_bundle", ["organization_id", "bundle_identifier"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_fhir_bundles_request_id"), ["request_id"], unique=False)

    op.create_table(
        "fhir_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("created_by_user_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("endpoint", sa.String(length=1000), nullable=False),
        sa.Column("org_filter", _json(), nullable=False),
        sa.Column("headers", _json(), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("events_count", sa.Integer(), nullable=False),
        sa.Column("resource", _json(), nullable=False),
        sa.Column("created_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("updated_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name=op.f("fk_fhir_subscriptions_created_by_user_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_fhir_subscriptions_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_subscriptions")),
    )
    with op.batch_alter_table("fhir_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fhir_subscriptions_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "fhir_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("event_number", sa.Integer(), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("delivered_at", wiserpa.store.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["pa_requests.id"],
            name=op.f("fk_fhir_outbox_request_id_pa_requests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["fhir_subscriptions.id"],
            name=op.f("fk_fhir_outbox_subscription_id_fhir_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_outbox")),
    )
    with op.batch_alter_table("fhir_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_fhir_outbox_status_next", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_fhir_outbox_request_id"), ["request_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_fhir_outbox_subscription_id"), ["subscription_id"], unique=False)


def downgrade() -> None:
    op.drop_table("fhir_outbox")
    op.drop_table("fhir_subscriptions")
    op.drop_table("fhir_bundles")
