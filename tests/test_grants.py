"""Goodwill grants: supervisors give free support until a date; agents see it; figures count it."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from dashboard.testing import (
    Clock,
    add_call,
    add_customer,
    add_user,
    csrf_token,
    make_app,
    signed_in,
)
from onerpa import directory, entitlement
from onerpa.models import Grant
from onerpa.staff import AuditEntry

NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)  # 12:30 in Moscow
PASSWORD = "correct horse"


@pytest.fixture
def app(engine: Engine, sessions: sessionmaker[Session]) -> Flask:
    with sessions.begin() as session:
        add_user(session, "anna", "agent", PASSWORD)
        add_user(session, "vera", "supervisor", PASSWORD)
    return make_app(engine, Clock(NOW))


@pytest.fixture
def supervisor(app: Flask) -> FlaskClient:
    return signed_in(app, "vera", PASSWORD)


@pytest.fixture
def agent(app: Flask) -> FlaskClient:
    return signed_in(app, "anna", PASSWORD)


@pytest.fixture
def lapsed(sessions: sessionmaker[Session]) -> int:
    """A customer whose free year ran out on 12.03.2025."""
    with sessions.begin() as session:
        return add_customer(session, purchased_on=date(2024, 3, 12)).id


def _give(client: FlaskClient, customer_id: int, path: str = "grants/new", **fields: str) -> object:
    url = f"/customers/{customer_id}/{path}"
    token = csrf_token(client.get(url).get_data(as_text=True))
    return client.post(url, data={"csrf_token": token, **fields})


def test_supervisor_gives_goodwill_and_the_customer_is_free_with_its_reason(
    supervisor: FlaskClient, agent: FlaskClient, lapsed: int, sessions: sessionmaker[Session]
) -> None:
    response = _give(supervisor, lapsed, until="2027-03-31", reason="сбой в релизе 5.2")
    assert response.status_code == 302  # type: ignore[attr-defined]
    page = agent.get(f"/customers/{lapsed}").get_data(as_text=True)
    assert "Бесплатно: жест доброй воли до 31.03.2027 — сбой в релизе 5.2 (выдал vera)" in page
    assert "Жест доброй воли до 31.03.2027 — сбой в релизе 5.2 (выдал vera, 26.11.2026)" in page
    with sessions() as session:
        card = directory.find_by_phone(session, "+74997195581")
        entry = session.scalars(select(AuditEntry)).one()
    assert card is not None
    at = datetime(2027, 3, 31, 23, 59, tzinfo=UTC) - timedelta(hours=3)
    assert entitlement.decide(card.records, at).reason is entitlement.Reason.FREE_GOODWILL
    assert (entry.username, entry.action, entry.target_id) == ("vera", "grant.add", str(lapsed))
    audit_page = supervisor.get("/audit").get_data(as_text=True)
    assert "Выдан жест доброй воли" in audit_page
    assert "до: 31.03.2027; причина: сбой в релизе 5.2" in audit_page


def test_supervisor_corrects_a_grant_and_the_change_is_audited(
    supervisor: FlaskClient, lapsed: int, sessions: sessionmaker[Session]
) -> None:
    _give(supervisor, lapsed, until="2027-03-31", reason="сбой в релизе 5.2")
    with sessions() as session:
        grant_id = session.scalars(select(Grant.id)).one()
    response = _give(
        supervisor, lapsed, f"grants/{grant_id}", until="2026-12-31", reason="сбой в релизе 5.2"
    )
    assert response.status_code == 302  # type: ignore[attr-defined]
    with sessions() as session:
        grant = session.get(Grant, grant_id)
        actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert grant is not None and (grant.until, grant.granted_by) == (date(2026, 12, 31), "vera")
    assert actions == ["grant.add", "grant.change"]
    assert "до: 31.03.2027 → 31.12.2026" in supervisor.get("/audit").get_data(as_text=True)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"until": "2026-11-25", "reason": "ошибка"}, "Дата уже прошла"),
        ({"until": "2027-01-31", "reason": ""}, "Заполните это поле."),
        ({"until": "", "reason": "ошибка"}, "Заполните это поле."),
    ],
)
def test_grant_needs_a_future_date_and_a_reason(
    supervisor: FlaskClient,
    lapsed: int,
    sessions: sessionmaker[Session],
    fields: dict[str, str],
    message: str,
) -> None:
    response = _give(supervisor, lapsed, **fields)
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert message in response.get_data(as_text=True)  # type: ignore[attr-defined]
    with sessions() as session:
        assert session.scalars(select(Grant)).all() == []


def test_grant_given_today_holds_through_today(
    supervisor: FlaskClient, agent: FlaskClient, lapsed: int
) -> None:
    assert _give(supervisor, lapsed, until="2026-11-26", reason="до конца дня").status_code == 302  # type: ignore[attr-defined]
    assert "Бесплатно: жест доброй воли до 26.11.2026" in agent.get(
        f"/customers/{lapsed}"
    ).get_data(as_text=True)


def test_agent_cannot_give_goodwill(agent: FlaskClient, lapsed: int) -> None:
    token = csrf_token(agent.get(f"/customers/{lapsed}").get_data(as_text=True))
    response = agent.post(
        f"/customers/{lapsed}/grants/new",
        data={"csrf_token": token, "until": "2027-03-31", "reason": "по дружбе"},
    )
    assert response.status_code == 403


def test_figures_count_goodwill_decisions_in_their_own_row(
    supervisor: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        for decision in ("free_goodwill", "free_goodwill", "free_first_year"):
            add_call(
                session,
                status="completed",
                decision=decision,
                arrived_at=NOW - timedelta(hours=1),
            )
    page = supervisor.get("/figures/breakdown?period=30d").get_data(as_text=True)
    rows = re.findall(r"<tr><td>([^<]+)</td>\s*<td class=\"num\">(\d+)", page)
    assert ("Бесплатно: жест доброй воли", "2") in rows
    assert ("Бесплатно: первый год", "1") in rows
