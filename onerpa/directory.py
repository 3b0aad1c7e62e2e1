"""Find a caller in the customer directory and load what the support rules need.

This runs on every call, inside the caller's time budget, so it uses a handful of indexed
Core queries rather than loading ORM objects.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from onerpa import entitlement
from onerpa.models import (
    Customer,
    Licence,
    PhoneNumber,
    Refusal,
    Subscription,
    UpdatePurchase,
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
    customer_id = session.scalar(
        select(PhoneNumber.customer_id).where(PhoneNumber.e164 == e164)
    )
    if customer_id is None:
        return None
    return load_card(session, customer_id, phone=e164)


def find_by_number(session: Session, digits: str) -> CustomerCard | None:
    """Return the customer whose customer or licence number is ``digits``, or None."""
    if not digits or not digits.isdigit():
        return None
    customer_id = session.scalar(
        select(Customer.id).where(Customer.customer_number == digits)
    ) or session.scalar(select(Licence.customer_id).where(Licence.licence_number == digits))
    if customer_id is None:
        return None
    return load_card(session, customer_id)


def refusals_for_phone(session: Session, e164: str) -> tuple[entitlement.RefusalFlag, ...]:
    """Return refusals set on the number itself (a caller not in the directory)."""
    rows = session.execute(
        select(Refusal.set_at, Refusal.reason, Refusal.expires_at, Refusal.lifted_at).where(
            Refusal.phone_e164 == e164
        )
    )
    return tuple(entitlement.RefusalFlag(*row) for row in rows)


def load_card(session: Session, customer_id: int, phone: str | None = None) -> CustomerCard | None:
    """Return the card of customer ``customer_id`` (refusals on ``phone`` included)."""
    row = session.execute(
        select(
            Customer.customer_number,
            Customer.organisation,
            Customer.contact_name,
            Customer.email,
        ).where(Customer.id == customer_id)
    ).first()
    if row is None:
        return None
    licences = session.execute(
        select(Licence.product, Licence.purchased_on).where(Licence.customer_id == customer_id)
    )
    updates = session.execute(
        select(UpdatePurchase.purchased_on, UpdatePurchase.months).where(
            UpdatePurchase.customer_id == customer_id
        )
    )
    subscriptions = session.execute(
        select(
            Subscription.service,
            Subscription.starts_on,
            Subscription.ends_on,
            Subscription.cancelled_at,
        ).where(Subscription.customer_id == customer_id)
    )
    target = Refusal.customer_id == customer_id
    if phone is not None:
        target = or_(target, Refusal.phone_e164 == phone)
    refusals = session.execute(
        select(Refusal.set_at, Refusal.reason, Refusal.expires_at, Refusal.lifted_at).where(target)
    )
    records = entitlement.CallerRecords(
        licences=tuple(entitlement.Licence(*r) for r in licences),
        updates=tuple(entitlement.UpdatePlan(*r) for r in updates),
        subscriptions=tuple(entitlement.Subscription(*r) for r in subscriptions),
        refusals=tuple(entitlement.RefusalFlag(*r) for r in refusals),
    )
    return CustomerCard(customer_id, *row, records=records)
