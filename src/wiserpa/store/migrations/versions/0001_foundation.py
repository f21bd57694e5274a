"""foundation: organizations, users, keys, requests, decisions, audit, idempotency, gold cards

Revision ID: 0001
Revises:
Create Date: 2026-11-29 03:59:01.071737
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import wiserpa.store.base

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    # The chain starts at a fixed genesis hash; the verifier checks the head against the last entry.
    audit_head = sa.table(
        "audit_head",
        sa.column("id", sa.Integer),
        sa.column("last_id", sa.Integer),
        sa.column("last_hash", sa.Text),
    )
    op.bulk_insert(audit_head, [{"id": 1, "last_id": 0, "last_hash": "0" * 64}])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("actor_role", sa.String(length=20), nullable=False),
        sa.Column("action", sa.String(length=50), nullable=False),
        sa.Column("object_type", sa.String(length=30), nullable=False),
        sa.Column("object_id", sa.String(length=50), nullable=True),
        sa.Column("outcome", sa.String(length=30), nullable=False),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_object_id"), ["object_id"], unique=False)

    op.create_table(
        "gold_cards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_npi", sa.String(length=10), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("granted_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("valid_from", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("valid_until", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("affirmation_rate", sa.Float(), nullable=False),
        sa.Column("volume", sa.Integer(), nullable=False),
        sa.Column("window_start", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("window_end", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("profile_id", sa.String(length=60), nullable=False),
        sa.Column("profile_version", sa.String(length=30), nullable=False),
        sa.Column("rescinded_at", wiserpa.store.base.UTCDateTime(), nullable=True),
        sa.Column("rescission_reason", sa.Text(), nullable=True),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gold_cards")),
    )
    with op.batch_alter_table("gold_cards", schema=None) as batch_op:
        batch_op.create_index("ix_gold_cards_npi_category", ["provider_npi", "category"], unique=False)

    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=100), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column(
            "response",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint("scope", "key", name="uq_idempotency_scope_key"),
    )
    op.create_table(
        "organizations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("npi", sa.String(length=10), nullable=True),
        sa.Column("state", sa.String(length=2), nullable=True),
        sa.Column("created_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
    )
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_organizations_npi"), ["npi"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=2), nullable=True),
        sa.Column("npi", sa.String(length=10), nullable=True),
        sa.Column("specialty", sa.String(length=100), nullable=True),
        sa.Column("credentials", sa.String(length=50), nullable=True),
        sa.Column("is_clinician", sa.Boolean(), nullable=False),
        sa.Column("created_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name=op.f("fk_users_organization_id_organizations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_organization_id"), ["organization_id"], unique=False)

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("created_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", wiserpa.store.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_api_keys_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_user_id"), ["user_id"], unique=False)

    op.create_table(
        "pa_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("utn", sa.String(length=14), nullable=True),
        sa.Column("state", sa.String(length=2), nullable=False),
        sa.Column("participant", sa.String(length=100), nullable=False),
        sa.Column("jurisdiction", sa.String(length=10), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("submitted_by_user_id", sa.Integer(), nullable=True),
        sa.Column("provider_npi", sa.String(length=10), nullable=False),
        sa.Column("beneficiary_mbi", sa.String(length=11), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("policy_id", sa.String(length=20), nullable=True),
        sa.Column("primary_code", sa.String(length=5), nullable=False),
        sa.Column("place_of_service", sa.String(length=2), nullable=False),
        sa.Column("date_of_service", sa.Date(), nullable=False),
        sa.Column("urgency", sa.String(length=10), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("received_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("mac_received_at", wiserpa.store.base.UTCDateTime(), nullable=True),
        sa.Column("clock_started_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("due_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("deems_on_due", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("decision_kind", sa.String(length=20), nullable=True),
        sa.Column("decided_at", wiserpa.store.base.UTCDateTime(), nullable=True),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("profile_id", sa.String(length=60), nullable=False),
        sa.Column("profile_version", sa.String(length=30), nullable=False),
        sa.Column("predecessor_id", sa.Integer(), nullable=True),
        sa.Column("exemption", sa.String(length=40), nullable=True),
        sa.Column("audit_sampled", sa.Boolean(), nullable=False),
        sa.Column("time_sensitive_attestation", sa.Boolean(), nullable=False),
        sa.Column(
            "diagnosis_codes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "clinical_facts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "criteria_results",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "attachments",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "raw_submission",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_pa_requests_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["predecessor_id"], ["pa_requests.id"], name=op.f("fk_pa_requests_predecessor_id_pa_requests")
        ),
        sa.ForeignKeyConstraint(
            ["submitted_by_user_id"], ["users.id"], name=op.f("fk_pa_requests_submitted_by_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pa_requests")),
        sa.UniqueConstraint("utn", name=op.f("uq_pa_requests_utn")),
    )
    with op.batch_alter_table("pa_requests", schema=None) as batch_op:
        batch_op.create_index("ix_pa_requests_mbi_category", ["beneficiary_mbi", "category"], unique=False)
        batch_op.create_index("ix_pa_requests_org_received", ["organization_id", "received_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_pa_requests_predecessor_id"), ["predecessor_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_pa_requests_provider_npi"), ["provider_npi"], unique=False)
        batch_op.create_index("ix_pa_requests_state_received", ["state", "received_at"], unique=False)
        batch_op.create_index("ix_pa_requests_status_due_at", ["status", "due_at"], unique=False)

    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("dedupe", sa.String(length=40), nullable=False),
        sa.Column("resulting_status", sa.String(length=24), nullable=False),
        sa.Column("effective", sa.Boolean(), nullable=False),
        sa.Column("decided_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.Column("reviewer_name", sa.String(length=200), nullable=True),
        sa.Column("reviewer_npi", sa.String(length=10), nullable=True),
        sa.Column("reviewer_specialty", sa.String(length=100), nullable=True),
        sa.Column("reviewer_credentials", sa.String(length=50), nullable=True),
        sa.Column(
            "reasons",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("profile_id", sa.String(length=60), nullable=False),
        sa.Column("profile_version", sa.String(length=30), nullable=False),
        sa.Column(
            "criteria_results",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "facts_used",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["actor_user_id"], ["users.id"], name=op.f("fk_decisions_actor_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["pa_requests.id"],
            name=op.f("fk_decisions_request_id_pa_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
        sa.UniqueConstraint("request_id", "kind", "dedupe", name="uq_decisions_once"),
    )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_decisions_request_id"), ["request_id"], unique=False)

    op.create_table(
        "request_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=5), nullable=False),
        sa.Column(
            "modifiers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=12), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=True),
        sa.Column("requested", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["pa_requests.id"],
            name=op.f("fk_request_lines_request_id_pa_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_lines")),
    )
    with op.batch_alter_table("request_lines", schema=None) as batch_op:
        batch_op.create_index("ix_request_lines_code", ["code"], unique=False)
        batch_op.create_index(batch_op.f("ix_request_lines_request_id"), ["request_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("request_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_request_lines_request_id"))
        batch_op.drop_index("ix_request_lines_code")

    op.drop_table("request_lines")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decisions_request_id"))

    op.drop_table("decisions")
    with op.batch_alter_table("pa_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_pa_requests_status_due_at")
        batch_op.drop_index("ix_pa_requests_state_received")
        batch_op.drop_index(batch_op.f("ix_pa_requests_provider_npi"))
        batch_op.drop_index(batch_op.f("ix_pa_requests_predecessor_id"))
        batch_op.drop_index("ix_pa_requests_org_received")
        batch_op.drop_index("ix_pa_requests_mbi_category")

    op.drop_table("pa_requests")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_user_id"))

    op.drop_table("api_keys")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_organization_id"))

    op.drop_table("users")
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organizations_npi"))

    op.drop_table("organizations")
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("gold_cards", schema=None) as batch_op:
        batch_op.drop_index("ix_gold_cards_npi_category")

    op.drop_table("gold_cards")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_object_id"))
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))

    op.drop_table("audit_log")
    op.drop_table("audit_head")
