"""Find a caller in the customer directory and load what the support rules need.

This runs on every call, inside the caller's time budget, so a look-up is one statement:
a ``UNION ALL`` of the customer's card, licences, update purchases, subscriptions, goodwill
grants and etiquette refusals, one branch per kind of row, each branch filling its own columns and
leaving the others NULL. One statement is one round trip to PostgreSQL and a handful of
SQLite steps, where a query per kind cost five of each (see docs/benchmarks.md).

The statements are built once, here, on the tables themselves: building an ORM-annotated
statement per query cost several times the query itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    CompoundSelect,
    Connection,
    Date,
    Integer,
    Select,
    String,
    bindparam,
    cast,
    exists,
    func,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from onerpa import entitlement
from onerpa.models import Base, UTCDateTime

_CUSTOMERS = Base.metadata.tables["customers"]
_PHONES = Base.metadata.tables["phone_numbers"]
_LICENCES = Base.metadata.tables["licences"]
_UPDATES = Base.metadata.tables["update_purchases"]
_SUBSCRIPTIONS = Base.metadata.tables["subscriptions"]
_REFUSALS = Base.metadata.tables["refusals"]
_GRANTS = Base.metadata.tables["grants"]
_STATES = Base.metadata.tables["customer_states"]

# The union's columns after "kind", with their types: the first branch's types decide how
# each column is read back (dates and UTC timestamps on SQLite are stored as text).
_COLUMNS: dict[str, TypeEngine[Any]] = {
    "customer_id": BigInteger(),
    "customer_number": String(),
    "organisation": String(),
    "contact_name": String(),
    "email": String(),
    "product": String(),
    "licence_number": String(),
    "purchased_on": Date(),
    "months": Integer(),
    "service": String(),
    "starts_on": Date(),
    "ends_on": Date(),
    "cancelled_at": UTCDateTime(),
    "set_at": UTCDateTime(),
    "reason": String(),
    "expires_at": UTCDateTime(),
    "lifted_at": UTCDateTime(),
    "phone_e164": String(),
    "until": Date(),
    "granted_by": String(),
}
_CARD, _LICENCE, _UPDATE, _SUBSCRIPTION, _REFUSAL, _GRANT = range(6)


def _branch(kind: int, table: Any, **columns: ColumnElement[Any]) -> Select[Any]:
    """One kind of row: its own columns filled, every other one a NULL of the right type.

    The NULLs are cast: PostgreSQL types an untyped NULL in a union as text.
    """
    return select(
        literal_column(str(kind), Integer()).label("kind"),
        *(columns.get(name, cast(null(), type_)).label(name) for name, type_ in _COLUMNS.items()),
    ).select_from(table)


def _caller_rows(customer: ColumnElement[Any], phone: ColumnElement[Any]) -> CompoundSelect:
    """Everything about the customer ``customer`` and the refusals on the number ``phone``."""
    c, lic, upd, sub, ref, grant = (
        _CUSTOMERS.c,
        _LICENCES.c,
        _UPDATES.c,
        _SUBSCRIPTIONS.c,
        _REFUSALS.c,
        _GRANTS.c,
    )
    return union_all(
        _branch(
            _CARD,
            _CUSTOMERS,
            customer_id=c.id,
            customer_number=c.customer_number,
            organisation=c.organisation,
            contact_name=c.contact_name,
            email=c.email,
        ).where(c.id == customer),
        _branch(
            _LICENCE,
            _LICENCES,
            product=lic.product,
            licence_number=lic.licence_number,
            purchased_on=lic.purchased_on,
        ).where(lic.customer_id == customer),
        _branch(_UPDATE, _UPDATES, purchased_on=upd.purchased_on, months=upd.months).where(
            upd.customer_id == customer
        ),
        _branch(
            _SUBSCRIPTION,
            _SUBSCRIPTIONS,
            service=sub.service,
            starts_on=sub.starts_on,
            ends_on=sub.ends_on,
            cancelled_at=sub.cancelled_at,
        ).where(sub.customer_id == customer),
        _branch(
            _REFUSAL,
            _REFUSALS,
            set_at=ref.set_at,
            reason=ref.reason,
            expires_at=ref.expires_at,
            lifted_at=ref.lifted_at,
            phone_e164=ref.phone_e164,
        ).where(or_(ref.customer_id == customer, ref.phone_e164 == phone)),
        _branch(
            _GRANT,
            _GRANTS,
            until=grant.until,
            reason=grant.reason,
            granted_by=grant.granted_by,
            set_at=grant.granted_at,
        ).where(grant.customer_id == customer),
    )


def _active(customer: ColumnElement[Any]) -> ColumnElement[bool]:
    """True unless the customer was deactivated (by the sync API): no longer a customer."""
    states = _STATES.c
    return ~exists().where(states.customer_id == customer, states.active.is_(False))


_OWNER_OF_PHONE = (
    select(_PHONES.c.customer_id)
    .where(_PHONES.c.e164 == bindparam("e164"), _active(_PHONES.c.customer_id))
    .scalar_subquery()
)
_OWNER_OF_NUMBER = func.coalesce(
    select(_CUSTOMERS.c.id)
    .where(_CUSTOMERS.c.customer_number == bindparam("digits"), _active(_CUSTOMERS.c.id))
    .scalar_subquery(),
    select(_LICENCES.c.customer_id)
    .where(_LICENCES.c.licence_number == bindparam("digits"), _active(_LICENCES.c.customer_id))
    .scalar_subquery(),
)  # fmt: skip
_BY_PHONE = _caller_rows(_OWNER_OF_PHONE, bindparam("e164"))
_BY_NUMBER = _caller_rows(_OWNER_OF_NUMBER, bindparam("e164"))
_BY_ID = _caller_rows(bindparam("cid"), bindparam("e164"))


@dataclass(frozen=True)
class CustomerCard:
    """Who the caller is, as the agent sees it, and their records for the rules."""

    customer_id: int
    customer_number: str
    organisation: str
    contact_name: str
    email: str
    records: entitlement.CallerRecords


@dataclass(frozen=True)
class PhoneLookup:
    """What one caller ID tells: the customer owning it, and refusals set on the number."""

    card: CustomerCard | None
    number_refusals: tuple[entitlement.RefusalFlag, ...] = ()


def look_up_phone(db: Session | Connection, e164: str) -> PhoneLookup:
    """Return the owner of ``e164`` with their records, and the refusals on ``e164`` itself."""
    rows = _connection(db).execute(_BY_PHONE, {"e164": e164})
    return _assemble(rows, e164)


def find_by_phone(db: Session | Connection, e164: str) -> CustomerCard | None:
    """Return the customer who owns the number ``e164``, or None."""
    return look_up_phone(db, e164).card


def find_by_number(db: Session | Connection, digits: str) -> CustomerCard | None:
    """Return the customer whose customer or licence number is ``digits``, or None."""
    if not digits or not digits.isdigit():
        return None
    rows = _connection(db).execute(_BY_NUMBER, {"digits": digits, "e164": None})
    return _assemble(rows, None).card


def refusals_for_phone(db: Session | Connection, e164: str) -> tuple[entitlement.RefusalFlag, ...]:
    """Return refusals set on the number itself (a caller not in the directory)."""
    return look_up_phone(db, e164).number_refusals


def load_card(
    db: Session | Connection, customer_id: int, phone: str | None = None
) -> CustomerCard | None:
    """Return the card of customer ``customer_id`` (refusals on ``phone`` included)."""
    rows = _connection(db).execute(_BY_ID, {"cid": customer_id, "e164": phone})
    return _assemble(rows, phone).card


def _connection(db: Session | Connection) -> Connection:
    return db.connection() if isinstance(db, Session) else db


def _assemble(rows: Iterable[Any], phone: str | None) -> PhoneLookup:
    """Sort the union's rows into a card (when the customer exists) and number refusals."""
    head: Mapping[str, Any] | None = None
    licences: list[entitlement.Licence] = []
    updates: list[entitlement.UpdatePlan] = []
    subscriptions: list[entitlement.Subscription] = []
    refusals: list[entitlement.RefusalFlag] = []
    grants: list[entitlement.Grant] = []
    on_number: list[entitlement.RefusalFlag] = []
    for row in rows:
        r = row._mapping
        kind = r["kind"]
        if kind == _CARD:
            head = r
        elif kind == _LICENCE:
            licences.append(
                entitlement.Licence(r["product"], r["purchased_on"], r["licence_number"])
            )
        elif kind == _UPDATE:
            updates.append(entitlement.UpdatePlan(r["purchased_on"], r["months"]))
        elif kind == _SUBSCRIPTION:
            subscriptions.append(
                entitlement.Subscription(
                    r["service"], r["starts_on"], r["ends_on"], r["cancelled_at"]
                )
            )
        elif kind == _GRANT:
            grants.append(entitlement.Grant(r["until"], r["reason"], r["granted_by"], r["set_at"]))
        else:
            flag = entitlement.RefusalFlag(
                r["set_at"], r["reason"], r["expires_at"], r["lifted_at"]
            )
            refusals.append(flag)
            if phone is not None and r["phone_e164"] == phone:
                on_number.append(flag)
    if head is None:
        return PhoneLookup(None, tuple(on_number))
    records = entitlement.CallerRecords(
        licences=tuple(licences),
        updates=tuple(updates),
        subscriptions=tuple(subscriptions),
        refusals=tuple(refusals),
        grants=tuple(grants),
    )
    card = CustomerCard(
        head["customer_id"],
        head["customer_number"],
        head["organisation"],
        head["contact_name"],
        head["email"],
        records,
    )
    return PhoneLookup(card, tuple(on_number))
