"""call events log and the agent's queue interface on calls

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 13:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "call_events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("call_ref", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("agent", sa.String(length=100), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_events")),
    )
    with op.batch_alter_table("call_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_call_events_call_ref"), ["call_ref"], unique=False)
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agent_interface", sa.String(length=100), nullable=True))
        # The hooks' fallback when a call id is missing: find the call by the caller's linkedid.
        batch_op.create_index(batch_op.f("ix_calls_linkedid"), ["linkedid"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calls_linkedid"))
        batch_op.drop_column("agent_interface")
    with op.batch_alter_table("call_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_events_call_ref"))
    op.drop_table("call_events")
