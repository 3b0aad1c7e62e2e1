"""Staff who sign in to the dashboard, after-call wrap-ups, and the audit log.

They share ``onerpa.models.Base``, so one Alembic history covers the whole schema.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from onerpa.models import Base, BigId, UTCDateTime, utcnow


class Role(StrEnum):
    """What a member of staff may do: agents take calls, supervisors also oversee."""

    AGENT = "agent"
    SUPERVISOR = "supervisor"


class WrapTopic(StrEnum):
    """What the call turned out to be about, as the agent records it afterwards."""

    BUG = "bug"
    HOWTO = "howto"
    LICENSING = "licensing"
    OTHER = "other"


class User(Base):
    """A member of staff who signs in to the dashboard."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('agent', 'supervisor')", name="role_known"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    # How the queue names this agent: calls.agent_interface and calls.agent.
    member_interface: Mapped[str | None] = mapped_column(String(100), index=True)
    member_name: Mapped[str | None] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def is_supervisor(self) -> bool:
        return self.role == Role.SUPERVISOR

    @property
    def label(self) -> str:
        return self.display_name or self.username


class Wrapup(Base):
    """What the agent recorded after a call; a correction adds a row, the newest counts."""

    __tablename__ = "wrapups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    username: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(32))
    about_onerpa: Mapped[bool] = mapped_column(Boolean)
    bug_confirmed: Mapped[bool | None] = mapped_column(Boolean)
    notes: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEntry(Base):
    """One change made through the dashboard or its commands. Append-only."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_target", "target_type", "target_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(48))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[str] = mapped_column(Text, default="")
