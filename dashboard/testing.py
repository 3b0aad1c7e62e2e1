"""Helpers for exercising the dashboard: sample rows, sign-in, CSRF tokens, a movable clock.

Used by the tests and the benchmark; nothing here runs in the service itself.
"""

from __future__ import annotations

import re
import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from onerpa.models import Call, Customer, Licence, PhoneNumber

_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


class Clock:
    """A clock the test moves by hand; thread-safe, always aware UTC."""

    def __init__(self, start: datetime) -> None:
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment.astimezone(UTC)

    def advance(self, **delta: float) -> datetime:
        with self._lock:
            self._now += timedelta(**delta)
            return self._now


def csrf_token(html: str) -> str:
    """Return the first CSRF token in a rendered page."""
    found = _CSRF.search(html)
    if found is None:
        raise AssertionError("no CSRF token on the page")
    return found.group(1)


def sign_in(client: Any, username: str, password: str) -> Any:
    """Sign in through the form, as a browser would; return the response."""
    page = client.get("/login")
    token = csrf_token(page.get_data(as_text=True))
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )


def add_customer(
    session: Session,
    number: str = "1001",
    organisation: str = "ООО Ромашка",
    *,
    phone: str | None = "+74997195581",
    purchased_on: date | None = None,
    contact: str = "Иван Петров",
    email: str = "ivan@romashka.example",
) -> Customer:
    """Add a customer with one number and, if given, one licence; the caller commits."""
    customer = Customer(
        customer_number=number, organisation=organisation, contact_name=contact, email=email
    )
    if phone:
        customer.phones.append(PhoneNumber(e164=phone, label="офис"))
    if purchased_on:
        customer.licences.append(
            Licence(
                licence_number=f"L-{number}", product="OneRPA Studio", purchased_on=purchased_on
            )
        )
    session.add(customer)
    session.flush()
    return customer


def add_call(session: Session, **fields: Any) -> Call:
    """Add a call with sensible defaults for anything not given; the caller commits."""
    values: dict[str, Any] = {
        "call_ref": str(uuid.uuid4()),
        "callerid_raw": "84997195581",
        "callerid_name": "",
        "caller_e164": "+74997195581",
        "status": "in_ivr",
        "arrived_at": datetime.now(UTC),
    }
    values.update(fields)
    call = Call(**values)
    session.add(call)
    session.flush()
    return call
