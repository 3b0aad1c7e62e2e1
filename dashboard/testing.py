"""Helpers for exercising the dashboard: sample rows, sign-in, CSRF tokens, a movable clock.

Used by the tests and the benchmark; nothing here runs in the service itself.
"""

from __future__ import annotations

import re
import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from dashboard import create_app
from onerpa.models import Call, Customer, Licence, PhoneNumber
from onerpa.settings import Settings
from onerpa.staff import User

# Cheap to check, so tests that sign in many times stay quick. Never used outside tests.
FAST_HASH = "pbkdf2:sha256:1000"

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


def make_app(engine: Engine, clock: Clock, **config: Any) -> Flask:
    """Return a test app on ``engine`` with ``clock`` and default settings."""
    base = {"ENGINE": engine, "TESTING": True, "CLOCK": clock, "SETTINGS": Settings()}
    return create_app({**base, **config})


def add_user(
    session: Session,
    username: str,
    role: str = "agent",
    password: str = "correct horse",
    *,
    interface: str | None = None,
    member_name: str | None = None,
) -> User:
    """Add a user whose password is cheap to check; the caller commits."""
    user = User(
        username=username,
        role=role,
        password_hash=generate_password_hash(password, method=FAST_HASH),
        member_interface=interface,
        member_name=member_name,
        display_name=username.title(),
        active=True,
    )
    session.add(user)
    session.flush()
    return user


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


def signed_in(app: Flask, username: str, password: str) -> Any:
    """Return a test client of ``app`` signed in as ``username``."""
    client = app.test_client()
    sign_in(client, username, password)
    return client


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
