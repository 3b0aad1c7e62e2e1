"""Dashboard security across every route the app has: roles, CSRF, session expiry, sign-in
throttling and response headers.

``tests/test_dashboard_auth.py`` checks named pages; here the routes come from the app's own
URL map, so a new view that nobody classified fails the suite until it is.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, url_for
from flask.testing import FlaskClient
from itsdangerous.timed import TimestampSigner
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.routing import Rule
from werkzeug.test import TestResponse

import dashboard.auth
import dashboard.ratelimit
from dashboard.ratelimit import LoginThrottle
from dashboard.security import HEADERS
from dashboard.testing import Clock, add_call, add_customer, add_user, csrf_token, make_app, sign_in
from onerpa.models import Grant, Refusal, Subscription, SupportRequest, UpdatePurchase
from onerpa.settings import Settings
from onerpa.staff import AuditEntry, User, Wrapup
from tests.reliability_figures import Figures

pytest_plugins = ["tests.reliability_figures"]

AREA = "dashboard"
NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
PASSWORD = "correct horse"
OPEN, SIGNED_IN, SUPERVISOR = "open", "signed in", "supervisor"
# The sync API (tests/test_api.py): an integration's token, never a sign-in session, so no
# CSRF token either.
TOKEN = "api token"
# Who may use each endpoint. A route missing here fails test_every_route_is_classified
# (an entry for a route not there yet, or no longer there, does no harm).
ACCESS = {
    "static": OPEN,
    "auth.login": OPEN,
    "health.health": OPEN,
    "api.openapi": OPEN,
    "api.list_customers": TOKEN,
    "api.get_customer": TOKEN,
    "api.put_customer": TOKEN,
    "api.deactivate_customer": TOKEN,
    "auth.logout": SIGNED_IN,
    "board.index": SIGNED_IN,
    "board.my_call": SIGNED_IN,
    "board.data": SIGNED_IN,
    "board.my_call_data": SIGNED_IN,
    "calls.index": SIGNED_IN,
    "calls.detail": SIGNED_IN,
    "calls.wrapup": SIGNED_IN,
    "customers.index": SIGNED_IN,
    "customers.detail": SIGNED_IN,
    "customers.refuse": SIGNED_IN,
    "calls.export": SUPERVISOR,
    "customers.lift": SUPERVISOR,
    "customers.licence": SUPERVISOR,
    "customers.updates": SUPERVISOR,
    "customers.subscription": SUPERVISOR,
    "customers.phone": SUPERVISOR,
    "customers.grant": SUPERVISOR,
    "figures.index": SUPERVISOR,
    "figures.breakdown": SUPERVISOR,
    "figures.what_if": SUPERVISOR,
    "audit.index": SUPERVISOR,
    "audit.staff": SUPERVISOR,
    # Agents on the line (dashboard/agents.py).
    "agents.index": SIGNED_IN,
    "agents.line_data": SIGNED_IN,
    "agents.on_line": SIGNED_IN,
    "agents.pause": SIGNED_IN,
    "agents.back": SIGNED_IN,
    "agents.off_line": SIGNED_IN,
    "agents.take_off": SUPERVISOR,
    # Requests (dashboard/requests.py): agents and supervisors alike.
    "requests.index": SIGNED_IN,
    "requests.recording": SIGNED_IN,
    "requests.take": SIGNED_IN,
    "requests.close": SIGNED_IN,
    "requests.call_back": SIGNED_IN,
}
# A valid form for every route that changes something, so only the token can be missing.
FORMS: dict[str, dict[str, str]] = {
    "auth.login": {"username": "vera", "password": PASSWORD},
    "auth.logout": {},
    "calls.wrapup": {"topic": "howto", "about_onerpa": "yes", "notes": "всё решили"},
    "customers.refuse": {"reason": "Грубил агенту"},
    "customers.lift": {"lift_reason": "Извинился"},
    "customers.licence": {"product": "OneRPA Studio", "purchased_on": "2026-03-12"},
    "customers.updates": {"purchased_on": "2026-03-12", "months": "12"},
    "customers.subscription": {"service": "OneRPA Cloud", "starts_on": "2026-01-01"},
    "customers.phone": {"number": "+7 495 000-00-01", "label": ""},
    "customers.grant": {"until": "2027-03-31", "reason": "сбой в релизе"},
    "agents.on_line": {},
    "agents.pause": {"reason": "lunch"},
    "agents.back": {},
    "agents.off_line": {},
    "agents.take_off": {},
    "requests.take": {},
    "requests.close": {"outcome": "answered", "note": "ответили письмом"},
    "requests.call_back": {"attempts": "0"},
}


@dataclass
class Site:
    app: Flask
    sessions: sessionmaker[Session]
    ids: dict[str, Any]

    def client(self, username: str | None = None) -> FlaskClient:
        client = self.app.test_client()
        if username is not None:
            assert sign_in(client, username, PASSWORD).status_code == 302
        return client

    def url(self, rule: Rule) -> str:
        with self.app.test_request_context():
            return url_for(rule.endpoint, **{k: self.ids[k] for k in rule.arguments})

    def state(self) -> tuple[int, ...]:
        """Everything a POST could change: audit entries, wrap-ups, refusals and lifts."""
        with self.sessions() as session:
            return tuple(
                int(session.scalar(query) or 0)
                for query in (
                    select(func.count()).select_from(AuditEntry),
                    select(func.count()).select_from(Wrapup),
                    select(func.count()).select_from(Refusal),
                    select(func.count()).select_from(Refusal).where(Refusal.lifted_at.is_not(None)),
                )
            )


@pytest.fixture
def site(engine: Engine, sessions: sessionmaker[Session], figures: Figures, tmp_path: Path) -> Site:
    figures.backend(engine)
    recording = tmp_path / "message.wav"  # the request's voice message, played on its page
    recording.write_bytes(b"RIFF" + bytes(40))
    with sessions.begin() as session:
        add_user(session, "anna", "agent", PASSWORD, interface="PJSIP/101")
        add_user(session, "vera", "supervisor", PASSWORD)
        customer = add_customer(session, purchased_on=datetime(2026, 3, 12).date())
        refusal = Refusal(customer_id=customer.id, reason="Грубил", set_by="anna", set_at=NOW)
        session.add(refusal)
        call = add_call(session, customer_id=customer.id, status="completed", arrived_at=NOW)
        customer.updates.append(UpdatePurchase(purchased_on=NOW.date(), months=12))
        customer.subscriptions.append(Subscription(service="OneRPA Cloud", starts_on=NOW.date()))
        customer.grants.append(Grant(until=NOW.date(), reason="сбой", granted_by="vera"))
        request = SupportRequest(
            kind="message",
            status="new",
            caller_e164="+74997195581",
            received_at=NOW,
            due_at=NOW + timedelta(hours=72),
            recording_path=str(recording),
        )
        session.add(request)
        session.flush()
        ids = {
            "request_id": request.id,
            "call_id": call.id,
            "customer_id": customer.id,
            "refusal_id": refusal.id,
            "licence_id": customer.licences[0].id,
            "update_id": customer.updates[0].id,
            "subscription_id": customer.subscriptions[0].id,
            "phone_id": customer.phones[0].id,
            "grant_id": customer.grants[0].id,
            "filename": "live.js",
            "number": customer.customer_number,
            "user_id": session.scalar(select(User.id).where(User.username == "anna")),
        }
    settings = replace(Settings(), recordings_dir=str(tmp_path))
    return Site(make_app(engine, Clock(NOW), SETTINGS=settings), sessions, ids)


def routes(app: Flask) -> Iterator[tuple[Rule, str]]:
    """Every (rule, method) the app answers, HEAD and OPTIONS aside."""
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield rule, method


def send(
    client: FlaskClient, method: str, url: str, data: dict[str, str] | None = None
) -> TestResponse:
    return client.open(url, method=method, data=data)


def token_of(client: FlaskClient, path: str = "/login") -> str:
    return csrf_token(client.get(path).get_data(as_text=True))


def assert_secure_headers(response: TestResponse, *, static: bool = False) -> None:
    for name, value in HEADERS.items():
        assert response.headers.get(name) == value, (response.request.path, name)
    if not static:
        assert response.headers.get("Cache-Control") == "no-store", response.request.path


def test_every_route_is_classified(site: Site) -> None:
    endpoints = {rule.endpoint for rule in site.app.url_map.iter_rules()}
    assert endpoints - set(ACCESS) == set()
    posts = {
        rule.endpoint
        for rule, method in routes(site.app)
        if method == "POST" and ACCESS[rule.endpoint] != TOKEN
    }
    assert posts == set(FORMS)


def test_anonymous_requests_are_refused_on_every_closed_route(site: Site, figures: Figures) -> None:
    client = site.client()
    before = site.state()
    refused = 0
    for rule, method in routes(site.app):
        if ACCESS[rule.endpoint] == OPEN:
            continue
        data = {**FORMS.get(rule.endpoint, {}), "csrf_token": token_of(client)}
        response = send(client, method, site.url(rule), data if method == "POST" else None)
        if rule.rule.startswith("/api/"):
            assert response.status_code == 401, rule.rule
        else:
            assert response.status_code == 302, (method, rule.rule)
            assert response.headers["Location"].startswith("/login?next="), rule.rule
        assert_secure_headers(response)
        refused += 1
    assert site.state() == before
    figures.add(AREA, refused=refused)


def test_agents_are_refused_every_supervisor_route_by_every_method(
    site: Site, figures: Figures
) -> None:
    agent = site.client("anna")
    before = site.state()
    refused = 0
    for rule, method in routes(site.app):
        if ACCESS[rule.endpoint] != SUPERVISOR:
            continue
        data = {**FORMS.get(rule.endpoint, {}), "csrf_token": token_of(agent, "/")}
        response = send(agent, method, site.url(rule), data if method == "POST" else None)
        assert response.status_code == 403, (method, rule.rule)
        assert_secure_headers(response)
        refused += 1
    assert site.state() == before
    figures.add(AREA, refused=refused)


def test_every_page_answers_its_users_with_the_security_headers(site: Site) -> None:
    supervisor, agent = site.client("vera"), site.client("anna")
    for rule, method in routes(site.app):
        if method != "GET":
            continue
        url = site.url(rule)
        if ACCESS[rule.endpoint] == TOKEN:  # a sign-in is no token
            response = supervisor.get(url)
            assert response.status_code == 401, url
            assert_secure_headers(response)
            continue
        response = supervisor.get(url)
        response.close()  # static files are streamed from an open file
        assert response.status_code == 200, url
        assert_secure_headers(response, static=rule.endpoint == "static")
        if ACCESS[rule.endpoint] != SUPERVISOR:
            response = agent.get(url)
            response.close()
            assert response.status_code == 200, url
    errors = [
        supervisor.get("/calls/999999"),  # 404
        supervisor.get("/no-such-page"),  # 404
        supervisor.post("/calls"),  # 405
        supervisor.post("/logout"),  # 400: no CSRF token
        site.client().get("/api/board"),  # 401
    ]
    assert [r.status_code for r in errors] == [404, 404, 405, 400, 401]
    for response in errors:
        assert_secure_headers(response)


def test_strict_transport_security_over_https_only(site: Site) -> None:
    client = site.client()
    secure = client.get("/login", base_url="https://dashboard.example")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Strict-Transport-Security" not in client.get("/login").headers


def test_every_state_change_needs_this_sessions_csrf_token(site: Site, figures: Figures) -> None:
    supervisor, stranger = site.client("vera"), site.client("anna")
    foreign = token_of(stranger, "/")  # valid, but for someone else's session
    refused = 0
    for rule, method in routes(site.app):
        if method != "POST" or ACCESS[rule.endpoint] == TOKEN:
            continue
        url = site.url(rule)
        before = site.state()
        for data in (FORMS[rule.endpoint], {**FORMS[rule.endpoint], "csrf_token": foreign}):
            response = supervisor.post(url, data=data)
            assert response.status_code == 400, (rule.rule, sorted(data))
            assert "Форма устарела" in response.get_data(as_text=True)
            assert_secure_headers(response)
            refused += 1
        assert site.state() == before, rule.rule
        assert supervisor.get("/").status_code == 200  # still signed in: logout did not happen
    figures.add(AREA, refused=refused)


@pytest.mark.parametrize("endpoint", ["calls.wrapup", "customers.refuse", "customers.lift"])
def test_the_same_form_with_its_token_goes_through(site: Site, endpoint: str) -> None:
    """The refusals above are the token's doing: with it, the very same form is accepted."""
    supervisor = site.client("vera")
    [rule] = [r for r in site.app.url_map.iter_rules() if r.endpoint == endpoint]
    before = site.state()
    data = {**FORMS[endpoint], "csrf_token": token_of(supervisor, "/")}
    assert supervisor.post(site.url(rule), data=data).status_code == 302
    assert site.state() != before


def test_a_session_expires_even_when_its_cookie_is_replayed(
    engine: Engine, site: Site, figures: Figures, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(engine, Clock(NOW), PERMANENT_SESSION_LIFETIME=timedelta(seconds=1))
    client = app.test_client()
    response = sign_in(client, "vera", PASSWORD)
    assert response.status_code == 302
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None and cookie.expires is not None
    assert cookie.expires - datetime.now(UTC) <= timedelta(seconds=2)
    assert client.get("/").status_code == 200
    value = client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value  # type: ignore[union-attr]
    # Two seconds on: the signature's own timestamp is what the server checks.
    later = int(time.time()) + 2
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: later)
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], value)  # a browser ignoring Expires
    expired = client.get("/")
    assert expired.status_code == 302 and expired.headers["Location"].startswith("/login")
    assert client.get("/api/board").status_code == 401
    assert "remember_token" not in response.headers.get("Set-Cookie", "")
    figures.add(AREA, refused=2)


def test_a_shift_long_session_by_default(site: Site) -> None:
    assert site.app.config["PERMANENT_SESSION_LIFETIME"] == timedelta(hours=12)
    client = site.client()
    sign_in(client, "anna", PASSWORD)
    cookie = client.get_cookie(site.app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None and cookie.expires is not None
    left = cookie.expires - datetime.now(UTC)
    assert timedelta(hours=11, minutes=59) < left <= timedelta(hours=12)


def test_brute_force_gets_five_guesses_per_window_whatever_the_spelling(
    site: Site, figures: Figures, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []
    real = dashboard.auth.authenticate

    def counting(session: Session, username: str, password: str) -> Any:
        checked.append(password)
        return real(session, username, password)

    monkeypatch.setattr(dashboard.auth, "authenticate", counting)
    attacker = site.client()
    spellings = ["anna", "Anna", "ANNA", " anna ", "aNnA"]
    codes = [
        sign_in(attacker, spellings[n % len(spellings)], f"guess {n}").status_code
        for n in range(30)
    ]
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
    assert len(checked) == 5  # only five passwords were ever tried
    assert sign_in(attacker, "anna", PASSWORD).status_code == 429  # not even the right one
    assert attacker.get("/").status_code == 302
    figures.add(AREA, refused=codes.count(429) + 1)


def test_the_throttle_stays_bounded_under_a_flood_of_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dashboard.ratelimit, "_MAX_KEYS", 100)  # the same code, sooner full
    throttle = LoginThrottle(5, timedelta(minutes=15))
    for n in range(1_000):
        throttle.failed(f"user-{n}", "203.0.113.9", NOW)
    assert len(throttle._failures) <= 100
