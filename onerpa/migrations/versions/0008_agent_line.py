"""agents on the line: sessions on and off the queue, pauses and their reasons

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 02:15:00
"""

import sqlalchemy as sa
from alembic import op

from onerpa.models import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "agent_sessions",
        sa.Column("id", BigId, nullable=False),
        sa.Column("user_id", BigId, nullable=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("interface", sa.String(100), nullable=False),
        sa.Column("member_name", sa.String(100), nullable=False),
        sa.Column("queue", sa.String(80), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("ended_by", sa.String(16), nullable=True),
        sa.CheckConstraint(
            "ended_by IN ('agent', 'supervisor', 'asterisk')",
            name=op.f("ck_agent_sessions_ended_by"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_agent_sessions_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_sessions")),
    )
    with op.batch_alter_table("agent_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_agent_sessions_started_at", ["started_at"], unique=False)
        batch_op.create_index(
            "uq_agent_sessions_open_interface",
            ["interface"],
            unique=True,
            sqlite_where=sa.text("ended_at IS NULL"),
            postgresql_where=sa.text("ended_at IS NULL"),
        )
    op.create_table(
        "agent_pauses",
        sa.Column("id", BigId, nullable=False),
        sa.Column("session_id", BigId, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["agent_sessions.id"],
            name=op.f("fk_agent_pauses_session_id_agent_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_pauses")),
    )
    with op.batch_alter_table("agent_pauses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_agent_pauses_session_id"), ["session_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("agent_pauses")
    op.drop_table("agent_sessions")
