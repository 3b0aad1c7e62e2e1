"""Find a caller in the customer directory and load what the support rules need.

This runs on every call, inside the caller's time budget, so it uses a handful of indexed
Core queries rather than loading ORM objects. The statements are built once, here, on the
tables themselves: building an ORM-annotated statement per query cost several times the
query itself (a look-up took over 1 ms on SQLite; see docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, or_, select
from sqlalchemy.orm import Session

from onerpa import entitlement
from onerpa.models import Base

_CUSTOMERS = Base.metadata.tables["customers"]
_PHONES = Base.metadata.tables["phone_numbers"]
_LICENCES = Base.metadata.tables["licences"]
_UPDATES = Base.metadata.tables["update_purchases"]
_SUBSCRIPTIONS = Base.metadata.tables["subscriptions"]
_REFUSALS = Base.metadata.tables["refusals"]

_CARD_BY_PHONE = (
    select(
        _PHONES.c.customer_id,
        _CUSTOMERS.c.customer_number,
        _CUSTOMERS.c.organisation,
        _CUSTOMERS.c.contact_name,
        _CUSTOMERS.c.email,
    )
    .join(_CUSTOMERS, _CUSTOMERS.c.id == _PHONES.c.customer_id)
    .where(_PHONES.c.e164 == bindparam("e164"))
)
_CUSTOMER_BY_NUMBER = select(_CUSTOMERS.c.id).where(
    _CUSTOMERS.c.customer_number == bindparam("digits")
)
_OWNER_OF_LICENCE = select(_LICENCES.c.customer_id).where(
    _LICENCES.c.licence_number == bindparam("digits")
)
_CUSTOMER = select(
    _CUSTOMERS.c.customer_number,
    _CUSTOMERS.c.organisation,
    _CUSTOMERS.c.contact_name,
    _CUSTOMERS.c.email,
).where(_CUSTOMERS.c.id == bindparam("cid"))
_LICENCES_OF = select(_LICENCES.c.product, _LICENCES.c.purchased_on).where(
    _LICENCES.c.customer_id == bindparam("cid")
)
_UPDATES_OF = select(_UPDATES.c.purchased_on, _UPDATES.c.months).where(
    _UPDATES.c.customer_id == bindparam("cid")
)
_SUBSCRIPTIONS_OF = select(
    _SUBSCRIPTIONS.c.service,
    _SUBSCRIPTIONS.c.starts_on,
    _SUBSCRIPTIONS.c.ends_on,
    _SUBSCRIPTIONS.c.cancelled_at,
).where(_SUBSCRIPTIONS.c.customer_id == bindparam("cid"))
_FLAG = select(
    _REFUSALS.c.set_at, _REFUSALS.c.reason, _REFUSALS.c.expires_at, _REFUSALS.c.lifted_at
)
_REFUSALS_OF_PHONE = _FLAG.where(_REFUSALS.c.phone_e164 == bindparam("e164"))
_REFUSALS_OF_CUSTOMER = _FLAG.where(_REFUSALS.c.customer_id == bindparam("cid"))
_REFUSALS_OF_CUSTOMER_OR_PHONE = _FLAG.where(
    or_(_REFUSALS.c.customer_id == bindparam("cid"), _REFUSALS.c.phone_e164 == bindparam("e164"))
)


@dataclass(frozen=True)
class CustomerCard:
    """Who the caller is, as the agent sees it, and their records for the rules."""

    customer_id: int
    customer_number: str
    organisation: str
    contact_name: str
    email: str
    records: entitlement.CallerRecords


def find_by_phone(session: Session, e164: str) -> CustomerCard | None:
    """Return the customer who owns the number ``e164``, or None."""
    conn = session.connection()
    row = conn.execute(_CARD_BY_PHONE, {"e164": e164}).first()
    if row is None:
        return None
    customer_id, number, organisation, contact, email = row
    records = _records(conn, customer_id, e164)
    return CustomerCard(customer_id, number, organisation, contact, email, records)


def find_by_number(session: Session, digits: str) -> CustomerCard | None:
    """Return the customer whose customer or licence number is ``digits``, or None."""
    if not digits or not digits.isdigit():
        return None
    conn = session.connection()
    customer_id = conn.execute(_CUSTOMER_BY_NUMBER, {"digits": digits}).scalar() or (
        conn.execute(_OWNER_OF_LICENCE, {"digits": digits}).scalar()
    )
    if customer_id is None:
        return None
    return load_card(session, customer_id)


def refusals_for_phone(session: Session, e164: str) -> tuple[entitlement.RefusalFlag, ...]:
    """Return refusals set on the number itself (a caller not in the directory)."""
    rows = session.connection().execute(_REFUSALS_OF_PHONE, {"e164": e164})
    return tuple(entitlement.RefusalFlag(*row) for row in rows)


def load_card(session: Session, customer_id: int, phone: str | None = None) -> CustomerCard | None:
    """Return the card of customer ``customer_id`` (refusals on ``phone`` included)."""
    conn = session.connection()
    row = conn.execute(_CUSTOMER, {"cid": customer_id}).first()
    if row is None:
        return None
    return CustomerCard(customer_id, *row, records=_records(conn, customer_id, phone))


def _records(conn: Connection, customer_id: int, phone: str | None) -> entitlement.CallerRecords:
    params = {"cid": customer_id, "e164": phone}
    refusals = _REFUSALS_OF_CUSTOMER if phone is None else _REFUSALS_OF_CUSTOMER_OR_PHONE
    return entitlement.CallerRecords(
        licences=tuple(entitlement.Licence(*r) for r in conn.execute(_LICENCES_OF, params)),
        updates=tuple(entitlement.UpdatePlan(*r) for r in conn.execute(_UPDATES_OF, params)),
        subscriptions=tuple(
            entitlement.Subscription(*r) for r in conn.execute(_SUBSCRIPTIONS_OF, params)
        ),
        refusals=tuple(entitlement.RefusalFlag(*r) for r in conn.execute(refusals, params)),
    )
