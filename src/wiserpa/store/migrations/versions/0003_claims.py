"""claims: claims, claim lines, pre-payment reviews

Revision ID: 0003
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import wiserpa.store.base

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "claims",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("submitted_by_user_id", sa.Integer(), nullable=True),
        sa.Column("claim_type", sa.String(length=14), nullable=False),
        sa.Column("billing_npi", sa.String(length=10), nullable=False),
        sa.Column("beneficiary_mbi", sa.String(length=11), nullable=False),
        sa.Column("state", sa.String(length=2), nullable=False),
        sa.Column("participant", sa.String(length=100), nullable=False),
        sa.Column("diagnosis_codes", _json(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("received_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("profile_id", sa.String(length=60), nullable=False),
        sa.Column("profile_version", sa.String(length=30), nullable=False),
        sa.Column("fee_schedule", sa.String(length=200), nullable=False),
        sa.Column("raw_submission", _json(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name=op.f("fk_claims_organization_id_organizations")
        ),
        sa.ForeignKeyConstraint(
            ["submitted_by_user_id"], ["users.id"], name=op.f("fk_claims_submitted_by_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claims")),
    )
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_claims_beneficiary_mbi"), ["beneficiary_mbi"], unique=False)
        batch_op.create_index(batch_op.f("ix_claims_state"), ["state"], unique=False)
        batch_op.create_index("ix_claims_org_received", ["organization_id", "received_at"], unique=False)

    op.create_table(
        "prepayment_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=2), nullable=False),
        sa.Column("participant", sa.String(length=100), nullable=False),
        sa.Column("beneficiary_mbi", sa.String(length=11), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("policy_id", sa.String(length=20), nullable=True),
        sa.Column("date_of_service", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("opened_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("documentation_due_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("documentation_request", _json(), nullable=False),
        sa.Column("documents_received_at", wiserpa.store.base.UTCDateTime(), nullable=True),
        sa.Column("decision_due_at", wiserpa.store.base.UTCDateTime(), nullable=True),
        sa.Column("deems_on_miss", sa.Boolean(), nullable=False),
        sa.Column("decided_at", wiserpa.store.base.UTCDateTime(), nullable=True),
        sa.Column("decision_kind", sa.String(length=20), nullable=True),
        sa.Column("diagnosis_codes", _json(), nullable=False),
        sa.Column("clinical_facts", _json(), nullable=False),
        sa.Column("attachments", _json(), nullable=False),
        sa.Column("criteria_results", _json(), nullable=False),
        sa.Column("reasons", _json(), nullable=False),
        sa.Column("events", _json(), nullable=False),
        sa.Column("reviewer_user_id", sa.Integer(), nullable=True),
        sa.Column("reviewer_npi", sa.String(length=10), nullable=True),
        sa.Column("reviewer_name", sa.String(length=200), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("profile_id", sa.String(length=60), nullable=False),
        sa.Column("profile_version", sa.String(length=30), nullable=False),
        sa.Column("updated_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["reviewer_user_id"], ["users.id"], name=op.f("fk_prepayment_reviews_reviewer_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prepayment_reviews")),
    )
    with op.batch_alter_table("prepayment_reviews", schema=None) as batch_op:
        batch_op.create_index(
            "ix_prepayment_reviews_episode", ["beneficiary_mbi", "category", "date_of_service"], unique=False
        )
        batch_op.create_index("ix_prepayment_reviews_status_due", ["status", "decision_due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_prepayment_reviews_state"), ["state"], unique=False)

    op.create_table(
        "claim_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("claim_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=5), nullable=False),
        sa.Column("modifiers", _json(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("date_of_service", sa.Date(), nullable=False),
        sa.Column("rendering_npi", sa.String(length=10), nullable=False),
        sa.Column("place_of_service", sa.String(length=2), nullable=False),
        sa.Column("revenue_code", sa.String(length=4), nullable=True),
        sa.Column("utn", sa.String(length=14), nullable=True),
        sa.Column("role", sa.String(length=12), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=True),
        sa.Column("category", sa.String(length=40), nullable=True),
        sa.Column("outcome", sa.String(length=12), nullable=False),
        sa.Column("outcome_reason", sa.Text(), nullable=False),
        sa.Column("reasons", _json(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("authorization_utn", sa.String(length=14), nullable=True),
        sa.Column("matched_by", sa.String(length=30), nullable=True),
        sa.Column("prepayment_review_id", sa.Integer(), nullable=True),
        sa.Column("participant", sa.String(length=100), nullable=True),
        sa.Column("allowed_cents", sa.Integer(), nullable=True),
        sa.Column("decided_at", wiserpa.store.base.UTCDateTime(), nullable=False),
        sa.Column("appeal_status", sa.String(length=12), nullable=True),
        sa.Column("appealed_at", wiserpa.store.base.UTCDateTime(), nullable=True),
        sa.Column("appeal_reason", sa.Text(), nullable=True),
        sa.Column("appeal_decided_on", sa.Date(), nullable=True),
        sa.Column("appeal_recorded_at", wiserpa.store.base.UTCDateTime(), nullable=True),
        sa.Column("appeal_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["claim_id"], ["claims.id"], name=op.f("fk_claim_lines_claim_id_claims"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["pa_requests.id"], name=op.f("fk_claim_lines_request_id_pa_requests")
        ),
        sa.ForeignKeyConstraint(
            ["prepayment_review_id"],
            ["prepayment_reviews.id"],
            name=op.f("fk_claim_lines_prepayment_review_id_prepayment_reviews"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claim_lines")),
        sa.UniqueConstraint("claim_id", "seq", name="uq_claim_lines_claim_seq"),
    )
    with op.batch_alter_table("claim_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_claim_lines_claim_id"), ["claim_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_claim_lines_request_id"), ["request_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_claim_lines_prepayment_review_id"), ["prepayment_review_id"], unique=False
        )
        batch_op.create_index("ix_claim_lines_participant_outcome", ["participant", "outcome"], unique=False)


def downgrade() -> None:
    op.drop_table("claim_lines")
    op.drop_table("prepayment_reviews")
    op.drop_table("claims")
