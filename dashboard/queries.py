"""What the dashboard reads: live calls, history, a customer's records, an agent's call.

The only dashboard module that builds queries. Every list is bounded and every filter
lands on an index of ``calls`` (status; arrived_at; caller_e164 + arrived_at;
customer_id + arrived_at), so pages stay fast with millions of stored calls.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import ColumnElement, Row, Select, TextualSelect, func, literal, or_, select, text
from sqlalchemy.orm import Session

from onerpa import figures
from onerpa.callstatus import LIVE, CallStatus
from onerpa.models import (
    Call,
    CallEvent,
    Customer,
    Licence,
    PhoneNumber,
    Refusal,
    UTCDateTime,
)
from onerpa.staff import AuditEntry, User, Wrapup

# A call still "live" after this long lost its end signal; the sweep will close it.
MAX_LIVE_AGE = timedelta(hours=12)
MAX_LIVE_CALLS = 500
_UNION_CHUNK = 100  # SQLite allows 500 terms in one compound select

CALL_COLUMNS = (
    Call.id,
    Call.call_ref,
    Call.status,
    Call.step,
    Call.callerid_name,
    Call.callerid_raw,
    Call.caller_e164,
    Call.customer_id,
    Call.identified_by,
    Call.decision,
    Call.explanation,
    Call.evidence,
    Call.topic,
    Call.digits,
    Call.degraded,
    Call.agent,
    Call.agent_interface,
    Call.arrived_at,
    Call.decided_at,
    Call.queued_at,
    Call.answered_at,
    Call.ended_at,
    Call.ended_by,
    Customer.customer_number,
    Customer.organisation,
    Customer.contact_name,
    Customer.email,
)
RECENT_COLUMNS = (
    Call.id,
    Call.customer_id,
    Call.caller_e164,
    Call.arrived_at,
    Call.status,
    Call.decision,
    Call.topic,
)


class Agent(Protocol):
    """Who answered a call, as the queue names them."""

    @property
    def username(self) -> str: ...

    @property
    def member_interface(self) -> str | None: ...

    @property
    def member_name(self) -> str | None: ...


def calls_select() -> Select[Any]:
    """Return the select of a call with its customer, as the views show it."""
    statement = select(*CALL_COLUMNS).outerjoin(Customer, Customer.id == Call.customer_id)
    return cast("Select[Any]", statement)


def live_calls(session: Session, now: datetime) -> Sequence[Row[Any]]:
    """Return the calls in the IVR, waiting and talking, oldest first."""
    statement = (
        calls_select()
        .where(Call.status.in_([s.value for s in LIVE]), Call.arrived_at >= now - MAX_LIVE_AGE)
        .order_by(Call.arrived_at, Call.id)
        .limit(MAX_LIVE_CALLS)
    )
    return session.execute(statement).all()


CallerKey = tuple[str, Any]


def recent_calls(
    session: Session, keys: Iterable[CallerKey], limit: int
) -> dict[CallerKey, list[Row[Any]]]:
    """Return the last ``limit`` calls of each caller, newest first.

    A caller is their customer when identified, else their number: keys are
    ``("customer", id)`` or ``("phone", e164)``, as ``caller_key`` gives them.
    """
    wanted = set(keys)
    found: dict[CallerKey, list[Row[Any]]] = {key: [] for key in wanted}
    postgres = session.get_bind().dialect.name == "postgresql"
    for kind in ("customer", "phone"):
        values = [value for key_kind, value in wanted if key_kind == kind]
        if postgres and values:
            batches = [(_recent_lateral(kind, limit), {"keys": values})]
        else:
            batches = [
                (_recent_union(kind, len(chunk), limit), {f"k{n}": v for n, v in enumerate(chunk)})
                for chunk in _chunks(values, _UNION_CHUNK)
            ]
        for statement, params in batches:
            for row in session.execute(statement, params):
                found[_row_key(row)].append(row)
    for bucket in found.values():
        bucket.sort(key=lambda r: r.arrived_at, reverse=True)
    return found


def _chunks(values: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _row_key(row: Row[Any]) -> CallerKey:
    return ("customer", row.customer_id) if row.customer_id else ("phone", row.caller_e164)


def caller_key(call: Row[Any]) -> CallerKey | None:
    """Return how a call's caller is recognised: by customer, else by number."""
    if call.customer_id:
        return ("customer", call.customer_id)
    if call.caller_e164:
        return ("phone", call.caller_e164)
    return None


_RECENT_SELECT = "SELECT " + ", ".join(column.name for column in RECENT_COLUMNS) + " FROM calls"
_RECENT_WHERE = {
    "customer": "customer_id = :k{n}",
    "phone": "caller_e164 = :k{n} AND customer_id IS NULL",
}


_LATERAL_KEYS = {"customer": "CAST(:keys AS BIGINT[])", "phone": "CAST(:keys AS VARCHAR[])"}


@functools.lru_cache(maxsize=8)
def _recent_lateral(kind: str, limit: int) -> TextualSelect:
    """Return, for PostgreSQL, "the latest ``limit`` calls of each caller in :keys".

    One index range scan per caller (customer_id or caller_e164, then arrived_at) in a
    LATERAL join: one small statement whatever the number of callers.
    """
    where = _RECENT_WHERE[kind].replace(":k{n}", "k.v")
    sql = (
        f"SELECT r.* FROM unnest({_LATERAL_KEYS[kind]}) AS k(v) CROSS JOIN LATERAL "
        f"({_RECENT_SELECT} WHERE {where} ORDER BY arrived_at DESC LIMIT {int(limit)}) AS r"
    )
    return text(sql).columns(*RECENT_COLUMNS)


@functools.lru_cache(maxsize=64)
def _recent_union(kind: str, count: int, limit: int) -> TextualSelect:
    """Return one UNION ALL of "the latest ``limit`` calls of caller :kN", N < ``count``.

    The same index range scans for SQLite, which has no LATERAL. Written as text and kept
    per size: building 100 parts with the expression language on every poll would cost
    more than running them.
    """
    parts = [
        f"SELECT * FROM ({_RECENT_SELECT} WHERE {_RECENT_WHERE[kind].format(n=n)} "
        f"ORDER BY arrived_at DESC LIMIT {int(limit)}) AS r{n}"
        for n in range(count)
    ]
    return text(" UNION ALL ".join(parts)).columns(*RECENT_COLUMNS)


def agent_match(user: Agent) -> ColumnElement[bool] | None:
    """Return the condition "answered by ``user``", or None when no phone is linked."""
    conditions = []
    if user.member_interface:
        conditions.append(Call.agent_interface == user.member_interface)
    if user.member_name:
        conditions.append(Call.agent == user.member_name)
    return or_(*conditions) if conditions else None


def agent_calls(
    session: Session, user: Agent, now: datetime
) -> tuple[Row[Any] | None, Row[Any] | None]:
    """Return the call ``user`` is on now, and the last call they finished."""
    match = agent_match(user)
    if match is None:
        return None, None
    recent = calls_select().where(
        match, Call.arrived_at >= now - MAX_LIVE_AGE, Call.answered_at.is_not(None)
    )
    current = session.execute(
        recent.where(Call.status == CallStatus.TALKING.value)
        .order_by(Call.answered_at.desc())
        .limit(1)
    ).first()
    last = session.execute(
        recent.where(Call.status != CallStatus.TALKING.value)
        .order_by(Call.answered_at.desc())
        .limit(1)
    ).first()
    return current, last


@dataclass(frozen=True)
class CallFilter:
    """What the history page is asked to show."""

    start: datetime | None = None
    end: datetime | None = None
    decision: str | None = None
    outcome: str | None = None
    over_seconds: float | None = None
    agent: Agent | None = None
    e164: str | None = None
    customer_id: int | None = None


def filtered_calls(session: Session, wanted: CallFilter, now: datetime) -> Select[Any]:
    """Return the select of calls matching ``wanted``, newest first."""
    statement = calls_select()
    conditions: list[ColumnElement[bool]] = []
    if wanted.start is not None:
        conditions.append(Call.arrived_at >= wanted.start)
    if wanted.end is not None:
        conditions.append(Call.arrived_at < wanted.end)
    if wanted.decision:
        conditions.append(Call.decision == wanted.decision)
    if wanted.outcome:
        conditions.append(Call.status == wanted.outcome)
    if wanted.e164:
        conditions.append(Call.caller_e164 == wanted.e164)
    if wanted.customer_id is not None:
        conditions.append(Call.customer_id == wanted.customer_id)
    if wanted.agent is not None:
        match = agent_match(wanted.agent)
        conditions.append(match if match is not None else Call.agent == wanted.agent.username)
    if wanted.over_seconds is not None:
        end = func.coalesce(Call.ended_at, literal(now, UTCDateTime))
        dialect = session.get_bind().dialect.name
        talk = figures.seconds_between(dialect, Call.answered_at, end)
        conditions += [Call.answered_at.is_not(None), talk > wanted.over_seconds]
    return statement.where(*conditions).order_by(Call.arrived_at.desc(), Call.id.desc())


def history_page(
    session: Session, wanted: CallFilter, now: datetime, *, page: int, size: int
) -> tuple[Sequence[Row[Any]], bool]:
    """Return one page of matching calls and whether another page follows."""
    statement = filtered_calls(session, wanted, now).limit(size + 1).offset(page * size)
    rows = session.execute(statement).all()
    return rows[:size], len(rows) > size


def iter_calls(
    session: Session, wanted: CallFilter, now: datetime, *, limit: int
) -> Iterator[Row[Any]]:
    """Yield matching calls newest first, reading in batches."""
    statement = filtered_calls(session, wanted, now).limit(limit)
    yield from session.execute(statement.execution_options(yield_per=1000))


def latest_wrapups(session: Session, call_ids: Iterable[int]) -> dict[int, Wrapup]:
    """Return the newest wrap-up of each of ``call_ids`` that has one."""
    ids = list(call_ids)
    found: dict[int, Wrapup] = {}
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        rows = session.scalars(select(Wrapup).where(Wrapup.call_id.in_(chunk)).order_by(Wrapup.id))
        for wrapup in rows:
            found[wrapup.call_id] = wrapup
    return found


def call_detail(session: Session, call_id: int) -> Row[Any] | None:
    """Return one call with its customer."""
    columns = (Call.step_times, Call.hangup_cause)
    statement = calls_select().add_columns(*columns).where(Call.id == call_id)
    return session.execute(statement).first()


def call_events(session: Session, call_ref: str) -> Sequence[CallEvent]:
    return session.scalars(
        select(CallEvent).where(CallEvent.call_ref == call_ref).order_by(CallEvent.id).limit(200)
    ).all()


def wrapups_of(session: Session, call_id: int) -> Sequence[Wrapup]:
    return session.scalars(
        select(Wrapup).where(Wrapup.call_id == call_id).order_by(Wrapup.id.desc())
    ).all()


def customer_refusals(session: Session, customer: Customer) -> Sequence[Refusal]:
    """Return the refusals on a customer or on any of their numbers, newest first."""
    numbers = [phone.e164 for phone in customer.phones]
    target = Refusal.customer_id == customer.id
    if numbers:
        target = or_(target, Refusal.phone_e164.in_(numbers))
    return session.scalars(select(Refusal).where(target).order_by(Refusal.set_at.desc())).all()


def customer_calls(session: Session, customer_id: int, limit: int) -> Sequence[Row[Any]]:
    statement = (
        calls_select()
        .where(Call.customer_id == customer_id)
        .order_by(Call.arrived_at.desc(), Call.id.desc())
        .limit(limit)
    )
    return session.execute(statement).all()


def audit_entries(
    session: Session, *, target_type: str | None = None, target_id: str | None = None, limit: int
) -> Sequence[AuditEntry]:
    statement = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if target_type is not None:
        statement = statement.where(
            AuditEntry.target_type == target_type, AuditEntry.target_id == target_id
        )
    return session.scalars(statement).all()


def search_customers(
    session: Session, *, e164: str | None, text: str, limit: int
) -> Sequence[Customer]:
    """Return customers by phone number, customer or licence number, or organisation."""
    if e164:
        statement = select(Customer).join(PhoneNumber).where(PhoneNumber.e164 == e164)
    elif text.isdigit():
        owner = select(Licence.customer_id).where(Licence.licence_number == text)
        statement = select(Customer).where(
            or_(Customer.customer_number == text, Customer.id.in_(owner))
        )
    else:
        statement = select(Customer).where(or_(*_name_matches(text)))
    return session.scalars(statement.order_by(Customer.organisation).limit(limit)).all()


def _name_matches(text: str) -> list[ColumnElement[bool]]:
    """Match ``text`` anywhere in the organisation or contact name, ignoring case.

    SQLite folds case for ASCII letters only, so Cyrillic is also tried as typed,
    lower-case, capitalised and upper-case: "ромаш" finds "ООО Ромашка" there too.
    """
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    variants = dict.fromkeys(
        (escaped, escaped.lower(), escaped.capitalize(), escaped.upper(), escaped.title())
    )
    return [
        column.ilike(f"%{variant}%", escape="\\")
        for variant in variants
        for column in (Customer.organisation, Customer.contact_name)
    ]


def staff(session: Session) -> Sequence[User]:
    """Return every user, agents first, by name."""
    return session.scalars(select(User).order_by(User.role, User.username)).all()
