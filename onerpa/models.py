"""The tables: customers and what they bought, etiquette refusals, and calls.

Moments are stored in UTC and always come back time-zone aware, on SQLite as on
PostgreSQL. Calendar days (purchase dates, subscription ends) are plain dates, read as
Moscow days by the entitlement rules.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A moment stored as UTC and returned aware, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("refusing to store a naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


# An id type that is BIGINT on PostgreSQL and the rowid alias on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_number: Mapped[str] = mapped_column(String(32), unique=True)
    organisation: Mapped[str] = mapped_column(String(300))
    contact_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    phones: Mapped[list[PhoneNumber]] = relationship(
        back_populates="customer", cascade="all, delete-orphan"
    )
    licences: Mapped[list[Licence]] = relationship(
        back_populates="customer", cascade="all, delete-orphan"
    )
    updates: Mapped[list[UpdatePurchase]] = relationship(
        back_populates="customer", cascade="all, delete-orphan"
    )
    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="customer", cascade="all, delete-orphan"
    )
    grants: Mapped[list[Grant]] = relationship(
        back_populates="customer", cascade="all, delete-orphan"
    )


class PhoneNumber(Base):
    __tablename__ = "phone_numbers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    e164: Mapped[str] = mapped_column(String(16), unique=True)
    label: Mapped[str] = mapped_column(String(100), default="")

    customer: Mapped[Customer] = relationship(back_populates="phones")


class Licence(Base):
    """A purchase of OneRPA software."""

    __tablename__ = "licences"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    licence_number: Mapped[str | None] = mapped_column(String(64), unique=True)
    product: Mapped[str] = mapped_column(String(200))
    purchased_on: Mapped[date] = mapped_column(Date)

    customer: Mapped[Customer] = relationship(back_populates="licences")


class UpdatePurchase(Base):
    """A purchase of software updates, buying ``months`` of free support."""

    __tablename__ = "update_purchases"
    __table_args__ = (CheckConstraint("months > 0", name="months_positive"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    purchased_on: Mapped[date] = mapped_column(Date)
    months: Mapped[int] = mapped_column(Integer, default=12)

    customer: Mapped[Customer] = relationship(back_populates="updates")


class Subscription(Base):
    """An online-service subscription; no ``ends_on`` means open-ended."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    service: Mapped[str] = mapped_column(String(200))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    customer: Mapped[Customer] = relationship(back_populates="subscriptions")


class Refusal(Base):
    """An etiquette refusal on a customer or on one number. Lifted, never deleted."""

    __tablename__ = "refusals"
    __table_args__ = (
        CheckConstraint("customer_id IS NOT NULL OR phone_e164 IS NOT NULL", name="has_target"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    phone_e164: Mapped[str | None] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(Text)
    set_by: Mapped[str] = mapped_column(String(100))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lifted_by: Mapped[str | None] = mapped_column(String(100))
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lift_reason: Mapped[str | None] = mapped_column(Text)


class Grant(Base):
    """Free support given to a customer as a gesture of goodwill, through ``until`` (Moscow)."""

    __tablename__ = "grants"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    until: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text)
    granted_by: Mapped[str] = mapped_column(String(100))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="grants")


class Call(Base):
    """One call to the line, written from its first moment and updated as it goes."""

    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_arrived_at", "arrived_at"),
        Index("ix_calls_caller_e164_arrived_at", "caller_e164", "arrived_at"),
        Index("ix_calls_customer_id_arrived_at", "customer_id", "arrived_at"),
        Index("ix_calls_status", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_ref: Mapped[str] = mapped_column(String(36), unique=True)
    uniqueid: Mapped[str] = mapped_column(String(64), default="", index=True)
    linkedid: Mapped[str] = mapped_column(String(64), default="", index=True)
    channel: Mapped[str] = mapped_column(Text, default="")
    callerid_raw: Mapped[str] = mapped_column(Text, default="")
    callerid_name: Mapped[str] = mapped_column(Text, default="")
    caller_e164: Mapped[str | None] = mapped_column(String(16))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    identified_by: Mapped[str | None] = mapped_column(String(16))
    digits: Mapped[str] = mapped_column(Text, default="")
    decision: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(32))
    explanation: Mapped[str] = mapped_column(Text, default="")
    topic: Mapped[str | None] = mapped_column(String(32))
    route: Mapped[str | None] = mapped_column(String(32))
    step: Mapped[str] = mapped_column(String(32), default="arrived")
    # Each IVR step the call reached with the moment it did: "greeting 10:00:00.125; ...".
    step_times: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Asterisk's HANGUPCAUSE (Q.850): 16 a normal end, 17 busy, 19 no answer, 34 congestion...
    hangup_cause: Mapped[int | None] = mapped_column(Integer)
    # The facts the decision was made on, as JSON (onerpa.evidence), frozen at that moment.
    evidence: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(24), default="in_ivr")
    degraded: Mapped[bool] = mapped_column(Boolean, default=False)
    server: Mapped[str] = mapped_column(String(100), default="")
    arrived_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    left_ivr_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    agent: Mapped[str | None] = mapped_column(String(100))
    agent_interface: Mapped[str | None] = mapped_column(String(100))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by: Mapped[str | None] = mapped_column(String(16))


class CallEvent(Base):
    """An append-only log of what happened to calls, in the order it was recorded.

    Readers that follow the line (metrics) keep the last ``id`` they saw and read only what
    came after it, so their cost does not grow with the history.
    """

    __tablename__ = "call_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    call_ref: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(16))
    agent: Mapped[str | None] = mapped_column(String(100))
    data: Mapped[str] = mapped_column(Text, default="")


class ApiToken(Base):
    """A sync-API token of one integration: only its SHA-256 is kept. Revoked, never deleted."""

    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint("scope IN ('read', 'write')", name="scope_known"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(48), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CustomerState(Base):
    """Whether a customer is active, and when the sync API or an import last changed it.

    A customer without a row is active and unchanged since it was created.
    """

    __tablename__ = "customer_states"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class SupportRequest(Base):
    """A caller the line could not serve live: a voice message or a call-back, with its
    deadline (72 hours for a written request, by the support rules) and its handling.

    ``kind``: ``message`` (a recording, or none when the caller hung up at the beep) or
    ``callback`` (keeps the caller's place: ``place_at`` is when the call arrived).
    ``status``: ``new``, ``in_work``, ``answered``, ``declined``. ``mail_state``: ``pending``,
    ``sent`` or ``failed`` (retried with back-off until ``mail_next_at``).
    """

    __tablename__ = "requests"
    __table_args__ = (
        Index("ix_requests_status_due_at", "status", "due_at"),
        Index("ix_requests_mail_state_mail_next_at", "mail_state", "mail_next_at"),
        CheckConstraint("kind IN ('message', 'callback')", name="kind"),
        CheckConstraint("status IN ('new', 'in_work', 'answered', 'declined')", name="status"),
        CheckConstraint("mail_state IN ('pending', 'sent', 'failed')", name="mail_state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="new")
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    caller_e164: Mapped[str | None] = mapped_column(String(20))
    callerid_raw: Mapped[str] = mapped_column(String(80), default="")
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    # The entitlement at that moment (reason code and the agent's line), as the call had it.
    decision: Mapped[str | None] = mapped_column(String(32))
    explanation: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    place_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recording_path: Mapped[str | None] = mapped_column(Text)
    recording_seconds: Mapped[float | None] = mapped_column(Float)
    recording_note: Mapped[str] = mapped_column(Text, default="")  # e.g. the disk was full
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # call-backs placed
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    taken_by: Mapped[str | None] = mapped_column(String(64))
    taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(64))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text, default="")
    mail_state: Mapped[str] = mapped_column(String(16), default="pending")
    mail_attempts: Mapped[int] = mapped_column(Integer, default=0)
    mail_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    mail_error: Mapped[str] = mapped_column(Text, default="")


class AgentSession(Base):
    """An agent's time on the line: from going on the line to going off it (or still on).

    Written by the dashboard when Asterisk has taken the agent into the queue (AMI QueueAdd),
    closed when Asterisk has let them go (QueueRemove, a supervisor, or Asterisk no longer
    listing them). At most one open session per interface.
    """

    __tablename__ = "agent_sessions"
    __table_args__ = (
        Index("ix_agent_sessions_started_at", "started_at"),
        CheckConstraint("ended_by IN ('agent', 'supervisor', 'asterisk')", name="ended_by"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    username: Mapped[str] = mapped_column(String(64))
    interface: Mapped[str] = mapped_column(String(100))
    member_name: Mapped[str] = mapped_column(String(100))
    queue: Mapped[str] = mapped_column(String(80))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by: Mapped[str | None] = mapped_column(String(16))


# One open session per interface, even with several dashboard processes reconciling at once.
Index(
    "uq_agent_sessions_open_interface",
    AgentSession.interface,
    unique=True,
    sqlite_where=AgentSession.ended_at.is_(None),
    postgresql_where=AgentSession.ended_at.is_(None),
)


class AgentPause(Base):
    """A pause within an agent's session, with its reason code (onerpa.agents.PAUSE_REASONS)."""

    __tablename__ = "agent_pauses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("agent_sessions.id", ondelete="CASCADE"), index=True
    )
    reason: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
