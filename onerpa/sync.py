"""The customer directory written one whole customer at a time: the sync API's data layer.

An integration (the vendor's billing or CRM) sends a customer as it should be: its card,
phone numbers, licences, update purchases and subscriptions. ``parse_customer`` checks it
with the CSV import's own validator (``onerpa.importer.FieldChecker``: same rules, same
messages), ``upsert`` makes the stored customer exactly that, writing nothing when it already
is. Unlike the import, a number or licence that belongs to another customer is refused, not
moved: an integration should not take a number away from a customer it does not name.

Each write locks the customer first (``BEGIN IMMEDIATE`` on SQLite, ``SELECT … FOR UPDATE``
on PostgreSQL), so two integrations writing the same customer at once take turns and the
result is one of them, never a mix. The caller owns the transaction, so the audit row goes in
with the change, and runs the whole transaction again when ``is_race`` says its error was a
lost race (a unique key taken by a concurrent insert, a deadlock, a lock waited out).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, selectinload

from onerpa.importer import DEFAULT_UPDATE_MONTHS, FieldChecker, Problem
from onerpa.models import (
    Customer,
    CustomerState,
    Licence,
    PhoneNumber,
    Subscription,
    UpdatePurchase,
    UTCDateTime,
)

FIELDS = (
    "customer_number",
    "organisation",
    "contact_name",
    "email",
    "phones",
    "licences",
    "updates",
    "subscriptions",
    "active",
)
# Each kind of record: its JSON fields and the CSV columns the validator knows them by.
RECORDS = {
    "licences": {
        "licence_number": "licence_number",
        "product": "product",
        "purchased_on": "purchased_on",
    },
    "updates": {"purchased_on": "updates_purchased_on", "months": "updates_months"},
    "subscriptions": {
        "service": "subscription_service",
        "starts_on": "subscription_starts_on",
        "ends_on": "subscription_ends_on",
        "cancelled_at": "subscription_cancelled_at",
    },
}
MAX_PAGE = 500


class Invalid(Exception):
    """The request is refused as a whole; ``problems`` name every field at fault."""

    def __init__(self, code: str, problems: list[Problem]) -> None:
        super().__init__(code, problems)
        self.code = code
        self.problems = problems


class Conflict(Exception):
    """What was sent clashes with another customer (a phone or licence number of theirs)."""

    def __init__(self, code: str, field_: str, message: str) -> None:
        super().__init__(code, field_, message)
        self.code = code
        self.field = field_
        self.message = message


@dataclass(frozen=True, order=True)
class LicenceRecord:
    purchased_on: date
    product: str
    licence_number: str | None


@dataclass(frozen=True, order=True)
class UpdateRecord:
    purchased_on: date
    months: int


@dataclass(frozen=True, order=True)
class SubscriptionRecord:
    starts_on: date
    service: str
    ends_on: date | None
    cancelled_at: datetime | None


@dataclass(frozen=True)
class CustomerRecord:
    """A whole customer as the API sends and shows it; children sorted, each once."""

    customer_number: str
    organisation: str
    contact_name: str = ""
    email: str = ""
    phones: tuple[str, ...] = ()
    licences: tuple[LicenceRecord, ...] = ()
    updates: tuple[UpdateRecord, ...] = ()
    subscriptions: tuple[SubscriptionRecord, ...] = ()
    active: bool = True


@dataclass(frozen=True)
class Outcome:
    """What a write did: ``created``, ``updated`` or ``unchanged``, and which parts changed."""

    result: str
    customer_id: int
    changed: tuple[str, ...] = field(default=())


# --- reading what was sent --------------------------------------------------------------------


def parse_customer(number: str, body: Any) -> CustomerRecord:
    """Check a customer sent as JSON for customer number ``number``; raise ``Invalid``."""
    if not isinstance(body, dict):
        raise Invalid("invalid_type", [Problem("", "тело запроса должно быть объектом JSON")])
    unknown = _unknown_fields(body)
    if unknown:
        raise Invalid("unknown_field", unknown)
    problems: list[Problem] = []
    texts = {name: _text(body, name, name, problems) for name in FIELDS[1:4]}
    sent_number = _text(body, "customer_number", "customer_number", problems)
    if sent_number and sent_number != number:
        problems.append(
            Problem("customer_number", f"{sent_number!r} — не номер клиента из адреса ({number})")
        )
    check = FieldChecker({"customer_number": number, **texts}, problems=problems)
    card = check.customer()
    phones = check.phone_list("phones", _strings(body, "phones", problems))
    licences = _licences(_records(body, "licences", problems), problems)
    updates = _updates(_records(body, "updates", problems), problems)
    subscriptions = _subscriptions(_records(body, "subscriptions", problems), problems)
    active = body.get("active", True)
    if not isinstance(active, bool):
        problems.append(Problem("active", "должно быть true или false"))
    if problems:
        raise Invalid("invalid_value", problems)
    return CustomerRecord(
        **card,
        phones=tuple(sorted(phones)),
        licences=tuple(sorted(set(licences), key=_licence_order)),
        updates=tuple(sorted(set(updates))),
        subscriptions=tuple(sorted(subscriptions, key=_subscription_order)),
        active=active,
    )


def _unknown_fields(body: Mapping[str, Any]) -> list[Problem]:
    found = [
        Problem(name, f"неизвестное поле; поля клиента: {', '.join(FIELDS)}")
        for name in body
        if name not in FIELDS
    ]
    for kind, names in RECORDS.items():
        items = body.get(kind)
        for i, item in enumerate(items if isinstance(items, list) else ()):
            for name in item if isinstance(item, dict) else ():
                if name not in names:
                    found.append(
                        Problem(
                            f"{kind}[{i}].{name}", f"неизвестное поле; поля: {', '.join(names)}"
                        )
                    )
    return found


def _text(body: Mapping[str, Any], name: str, label: str, problems: list[Problem]) -> str:
    """Return a JSON string (null and absent as empty) for the validator, which reads text."""
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        problems.append(Problem(label, "должно быть строкой"))
        return ""
    return value


def _strings(body: Mapping[str, Any], name: str, problems: list[Problem]) -> list[str]:
    items = body.get(name) or []
    if not isinstance(items, list):
        problems.append(Problem(name, "должно быть списком строк"))
        return []
    strings = [item for item in items if isinstance(item, str)]
    if len(strings) != len(items):
        problems.append(Problem(name, "должно быть списком строк"))
    return strings


def _records(body: Mapping[str, Any], kind: str, problems: list[Problem]) -> list[FieldChecker]:
    """Return a validator for each record of ``kind``, its values converted to text."""
    items = body.get(kind) or []
    if not isinstance(items, list):
        problems.append(Problem(kind, "должно быть списком объектов"))
        return []
    checkers = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(Problem(f"{kind}[{i}]", "должно быть объектом"))
            continue
        names = {column: f"{kind}[{i}].{name}" for name, column in RECORDS[kind].items()}
        values = {}
        for name, column in RECORDS[kind].items():
            value = item.get(name)
            if name != "months":
                values[column] = _text(item, name, names[column], problems)
            elif value is None or type(value) is int:  # bool is an int too, but not a number
                values[column] = "" if value is None else str(value)
            else:
                problems.append(Problem(names[column], "должно быть целым числом"))
        checkers.append(FieldChecker(values, names, problems))
    return checkers


def _licences(checkers: list[FieldChecker], problems: list[Problem]) -> list[LicenceRecord]:
    found: list[LicenceRecord] = []
    numbered: dict[str, tuple[str, LicenceRecord | None]] = {}
    for check in checkers:
        values = check.licence(required=True)
        if values["product"] is None or values["purchased_on"] is None:
            continue
        record = LicenceRecord(values["purchased_on"], values["product"], values["licence_number"])
        number = record.licence_number
        if number is not None:
            first = numbered.setdefault(number, (check.label("licence_number"), record))
            if first[1] != record:
                problems.append(
                    Problem(check.label("licence_number"), f"{number} в {first[0]} указан иначе")
                )
                continue
        found.append(record)
    return found


def _updates(checkers: list[FieldChecker], problems: list[Problem]) -> list[UpdateRecord]:
    found = []
    for check in checkers:
        values = check.updates(required=True)
        if values["updates_purchased_on"] is not None:
            months = values["updates_months"] or DEFAULT_UPDATE_MONTHS
            found.append(UpdateRecord(values["updates_purchased_on"], months))
    return found


def _subscriptions(
    checkers: list[FieldChecker], problems: list[Problem]
) -> list[SubscriptionRecord]:
    found: dict[tuple[str, date], SubscriptionRecord] = {}  # a later one wins, as in the CSV
    for check in checkers:
        values = check.subscription(required=True)
        service, starts = values["subscription_service"], values["subscription_starts_on"]
        if service is None or starts is None:
            continue
        found[(service, starts)] = SubscriptionRecord(
            starts, service, values["subscription_ends_on"], values["subscription_cancelled_at"]
        )
    return list(found.values())


def _licence_order(record: LicenceRecord) -> tuple[Any, ...]:
    return (record.purchased_on, record.product, record.licence_number or "")


def _subscription_order(record: SubscriptionRecord) -> tuple[Any, ...]:
    return (record.starts_on, record.service)


# --- writing ----------------------------------------------------------------------------------


def lock(session: Session, number: str) -> Customer | None:
    """Start the write: take the lock that makes writers of ``number`` wait their turn.

    Must be the session's first statement of its transaction.
    """
    if session.get_bind().dialect.name == "sqlite":
        # pysqlite would begin a deferred transaction at the first write, after the reads
        # the diff needs; taking the write lock now makes those reads the latest.
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")
        query = select(Customer)
    else:
        query = select(Customer).with_for_update(of=Customer)
    return session.scalar(query.where(Customer.customer_number == number))


def upsert(session: Session, record: CustomerRecord, now: datetime) -> Outcome:
    """Make the stored customer exactly ``record``; write nothing if it already is."""
    customer = lock(session, record.customer_number)
    _check_conflicts(session, record)
    if customer is None:
        return _create(session, record, now)
    state = session.get(CustomerState, customer.id)
    changed = _apply(session, customer, record)
    if (state.active if state is not None else True) != record.active:
        changed.append("active")
    if not changed:
        return Outcome("unchanged", customer.id)
    if state is None:
        session.add(CustomerState(customer_id=customer.id, active=record.active, updated_at=now))
    else:
        state.active, state.updated_at = record.active, now
    session.flush()
    return Outcome("updated", customer.id, tuple(changed))


def deactivate(session: Session, number: str, now: datetime) -> Outcome | None:
    """Mark the customer ``number`` inactive, keeping every record; None: no such customer."""
    customer = lock(session, number)
    if customer is None:
        return None
    state = session.get(CustomerState, customer.id)
    if state is not None and not state.active:
        return Outcome("unchanged", customer.id)
    if state is None:
        session.add(CustomerState(customer_id=customer.id, active=False, updated_at=now))
    else:
        state.active, state.updated_at = False, now
    session.flush()
    return Outcome("updated", customer.id, ("active",))


def is_race(err: IntegrityError | OperationalError) -> bool:
    """Tell a lost race (unique key, deadlock, a lock held too long) from a real failure."""
    if isinstance(err, IntegrityError):
        return True
    if getattr(err.orig, "sqlstate", None) in ("40001", "40P01", "55P03"):
        return True
    return "database is locked" in str(err.orig)


def _check_conflicts(session: Session, record: CustomerRecord) -> None:
    """Refuse a phone or licence number that another customer holds.

    "Another" by customer number: a writer of the same customer that got in first (and
    created it meanwhile) is not another customer; its insert loses the race instead.
    """
    own = record.customer_number
    phone = _held_elsewhere(session, PhoneNumber.e164, PhoneNumber.customer_id, record.phones, own)
    if phone is not None:
        raise Conflict(
            "phone_taken",
            "phones",
            f"номер {phone[0]} уже записан за клиентом {phone[1]}; "
            "сначала уберите его у того клиента",
        )
    numbers = [r.licence_number for r in record.licences if r.licence_number]
    licence = _held_elsewhere(session, Licence.licence_number, Licence.customer_id, numbers, own)
    if licence is not None:
        raise Conflict(
            "licence_taken",
            "licences",
            f"лицензия {licence[0]} уже записана за клиентом {licence[1]}; "
            "сначала уберите её у того клиента",
        )


def _held_elsewhere(
    session: Session, key: Any, owner: Any, values: Iterable[str], own: str
) -> tuple[str, str] | None:
    """Return the first of ``values`` held by a customer other than ``own``, with its number."""
    values = list(values)
    if not values:
        return None
    query = (
        select(key, Customer.customer_number)
        .join(Customer, Customer.id == owner)
        .where(key.in_(values), Customer.customer_number != own)
        .order_by(key)
    )
    found = session.execute(query).first()
    return (found[0], found[1]) if found is not None else None


def _create(session: Session, record: CustomerRecord, now: datetime) -> Outcome:
    customer = Customer(
        customer_number=record.customer_number,
        organisation=record.organisation,
        contact_name=record.contact_name,
        email=record.email,
        created_at=now,
    )
    session.add(customer)
    _add_children(customer, record.phones, record.licences, record.updates)
    customer.subscriptions.extend(_subscription_row(s) for s in record.subscriptions)
    session.flush()
    session.add(CustomerState(customer_id=customer.id, active=record.active, updated_at=now))
    session.flush()
    return Outcome("created", customer.id)


def _add_children(
    customer: Customer,
    phones: Iterable[str],
    licences: Iterable[LicenceRecord],
    updates: Iterable[UpdateRecord],
) -> None:
    customer.phones.extend(PhoneNumber(e164=e164) for e164 in phones)
    customer.licences.extend(
        Licence(licence_number=r.licence_number, product=r.product, purchased_on=r.purchased_on)
        for r in licences
    )
    customer.updates.extend(
        UpdatePurchase(purchased_on=r.purchased_on, months=r.months) for r in updates
    )


def _subscription_row(record: SubscriptionRecord) -> Subscription:
    return Subscription(
        service=record.service,
        starts_on=record.starts_on,
        ends_on=record.ends_on,
        cancelled_at=record.cancelled_at,
    )


def _apply(session: Session, customer: Customer, record: CustomerRecord) -> list[str]:
    """Bring ``customer`` to ``record``: keep matching rows, delete the rest, add what lacks."""
    changed = []
    for name in ("organisation", "contact_name", "email"):
        if getattr(customer, name) != getattr(record, name):
            setattr(customer, name, getattr(record, name))
            changed.append(name)
    children = (
        ("phones", customer.phones, lambda p: p.e164, record.phones),
        ("licences", customer.licences, _licence_record, record.licences),
        ("updates", customer.updates, _update_record, record.updates),
        ("subscriptions", customer.subscriptions, _subscription_record, record.subscriptions),
    )
    missing: dict[str, list[Any]] = {}
    for name, rows, key, wanted in children:
        stale, lacking = _diff(rows, key, wanted)
        for row in stale:
            rows.remove(row)
        if stale or lacking:
            changed.append(name)
        missing[name] = lacking
    # Deleted rows go first: a licence number may come back with another product.
    session.flush()
    _add_children(customer, missing["phones"], missing["licences"], missing["updates"])
    customer.subscriptions.extend(_subscription_row(s) for s in missing["subscriptions"])
    return changed


def _diff(rows: list[Any], key: Any, wanted: Iterable[Any]) -> tuple[list[Any], list[Any]]:
    """Return the rows to delete (unwanted or repeated) and the wanted keys no row holds."""
    lacking = dict.fromkeys(wanted)
    stale = []
    for row in rows:
        k = key(row)
        if k in lacking:
            del lacking[k]
        else:
            stale.append(row)
    return stale, list(lacking)


# --- reading what is stored -------------------------------------------------------------------


def _licence_record(row: Licence) -> LicenceRecord:
    return LicenceRecord(row.purchased_on, row.product, row.licence_number)


def _update_record(row: UpdatePurchase) -> UpdateRecord:
    return UpdateRecord(row.purchased_on, row.months)


def _subscription_record(row: Subscription) -> SubscriptionRecord:
    return SubscriptionRecord(row.starts_on, row.service, row.ends_on, row.cancelled_at)


@dataclass(frozen=True)
class Stored:
    """A customer as stored, with whether it is active and when it last changed."""

    record: CustomerRecord
    updated_at: datetime


_LOAD = (
    selectinload(Customer.phones),
    selectinload(Customer.licences),
    selectinload(Customer.updates),
    selectinload(Customer.subscriptions),
)


def _changed_at() -> Any:
    """The moment a customer last changed: its state's, else its creation."""
    return func.coalesce(CustomerState.updated_at, Customer.created_at, type_=UTCDateTime())


def read(session: Session, number: str) -> Stored | None:
    """Return the customer ``number`` as stored, or None."""
    found = session.execute(
        select(Customer, CustomerState)
        .outerjoin(CustomerState, CustomerState.customer_id == Customer.id)
        .where(Customer.customer_number == number)
        .options(*_LOAD)
    ).first()
    return _stored(*found) if found else None


def changed_since(
    session: Session, since: datetime | None, cursor: str | None, limit: int
) -> tuple[list[Stored], str | None]:
    """Return up to ``limit`` customers changed at or after ``since``, oldest change first.

    ``cursor`` (from the previous page) continues where that page stopped; the second value
    is the cursor of the next page, None on the last one.
    """
    changed = _changed_at()
    query = (
        select(Customer, CustomerState)
        .outerjoin(CustomerState, CustomerState.customer_id == Customer.id)
        .options(*_LOAD)
        .order_by(changed, Customer.id)
        .limit(limit + 1)
    )
    if since is not None:
        query = query.where(changed >= since)
    if cursor is not None:
        at, last_id = decode_cursor(cursor)
        query = query.where(or_(changed > at, and_(changed == at, Customer.id > last_id)))
    rows = session.execute(query).all()
    page = [_stored(customer, state) for customer, state in rows[:limit]]
    more = len(rows) > limit
    if not more:
        return page, None
    last_customer = rows[limit - 1][0]
    return page, encode_cursor(page[-1].updated_at, last_customer.id)


def encode_cursor(at: datetime, customer_id: int) -> str:
    raw = f"{at.isoformat()}|{customer_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Return the moment and id a cursor stands for; ValueError when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, ident = raw.partition("|")
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError
        return moment, int(ident)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("not a cursor") from None


def _stored(customer: Customer, state: CustomerState | None) -> Stored:
    record = CustomerRecord(
        customer_number=customer.customer_number,
        organisation=customer.organisation,
        contact_name=customer.contact_name,
        email=customer.email,
        phones=tuple(sorted(p.e164 for p in customer.phones)),
        licences=tuple(sorted(map(_licence_record, customer.licences), key=_licence_order)),
        updates=tuple(sorted(map(_update_record, customer.updates))),
        subscriptions=tuple(
            sorted(map(_subscription_record, customer.subscriptions), key=_subscription_order)
        ),
        active=state.active if state is not None else True,
    )
    return Stored(record, state.updated_at if state is not None else customer.created_at)


def to_json(stored: Stored) -> dict[str, Any]:
    """Return the customer as the API shows it (docs/api.md)."""
    r = stored.record
    return {
        "customer_number": r.customer_number,
        "organisation": r.organisation,
        "contact_name": r.contact_name,
        "email": r.email,
        "phones": list(r.phones),
        "licences": [
            {
                "licence_number": x.licence_number,
                "product": x.product,
                "purchased_on": x.purchased_on.isoformat(),
            }
            for x in r.licences
        ],
        "updates": [
            {"purchased_on": x.purchased_on.isoformat(), "months": x.months} for x in r.updates
        ],
        "subscriptions": [
            {
                "service": x.service,
                "starts_on": x.starts_on.isoformat(),
                "ends_on": x.ends_on.isoformat() if x.ends_on else None,
                "cancelled_at": _utc(x.cancelled_at) if x.cancelled_at else None,
            }
            for x in r.subscriptions
        ],
        "active": r.active,
        "updated_at": _utc(stored.updated_at),
    }


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()
