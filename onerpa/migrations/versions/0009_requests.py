"""requests: voice messages and call-backs with their deadlines and deliveries

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 02:15:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("id", BigId, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("call_id", BigId, nullable=True),
        sa.Column("caller_e164", sa.String(20), nullable=True),
        sa.Column("callerid_raw", sa.String(80), nullable=False),
        sa.Column("customer_id", BigId, nullable=True),
        sa.Column("decision", sa.String(32), nullable=True),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("place_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recording_path", sa.Text(), nullable=True),
        sa.Column("recording_seconds", sa.Float(), nullable=True),
        sa.Column("recording_note", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("taken_by", sa.String(64), nullable=True),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(64), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("mail_state", sa.String(16), nullable=False),
        sa.Column("mail_attempts", sa.Integer(), nullable=False),
        sa.Column("mail_next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("mail_error", sa.Text(), nullable=False),
        sa.CheckConstraint("kind IN ('message', 'callback')", name=op.f("ck_requests_kind")),
        sa.CheckConstraint(
            "status IN ('new', 'in_work', 'answered', 'declined')", name=op.f("ck_requests_status")
        ),
        sa.CheckConstraint(
            "mail_state IN ('pending', 'sent', 'failed')", name=op.f("ck_requests_mail_state")
        ),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_requests_call_id_calls"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_requests_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requests")),
    )
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.create_index("ix_requests_status_due_at", ["status", "due_at"], unique=False)
        batch_op.create_index(
            "ix_requests_mail_state_mail_next_at", ["mail_state", "mail_next_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_requests_customer_id"), ["customer_id"], unique=False)


def downgrade() -> None:
    op.drop_table("requests")
