"""The customer page: records, search, and etiquette refusals with their audit trail."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from dashboard.models import AuditEntry
from dashboard.testing import (
    Clock,
    add_call,
    add_customer,
    add_user,
    csrf_token,
    make_app,
    signed_in,
)
from dashboard.users import audit
from onerpa import directory, entitlement
from onerpa.models import Refusal, Subscription, UpdatePurchase

NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
PASSWORD = "correct horse"


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def app(engine: Engine, clock: Clock, sessions: sessionmaker[Session]) -> Flask:
    with sessions.begin() as session:
        add_user(session, "anna", "agent", PASSWORD)
        add_user(session, "vera", "supervisor", PASSWORD)
    return make_app(engine, clock)


@pytest.fixture
def agent(app: Flask) -> FlaskClient:
    return signed_in(app, "anna", PASSWORD)


@pytest.fixture
def supervisor(app: Flask) -> FlaskClient:
    return signed_in(app, "vera", PASSWORD)


@pytest.fixture
def customer_id(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as session:
        customer = add_customer(session, purchased_on=date(2024, 3, 12))
        customer.updates.append(UpdatePurchase(purchased_on=date(2026, 2, 1), months=12))
        customer.subscriptions.append(
            Subscription(service="OneRPA Cloud", starts_on=date(2025, 1, 1), ends_on=None)
        )
        add_call(
            session,
            customer_id=customer.id,
            status="completed",
            decision="free_updates",
            arrived_at=NOW - timedelta(days=2),
        )
        return customer.id


def _refuse(client: FlaskClient, customer_id: int, **fields: str) -> object:
    page = client.get(f"/customers/{customer_id}").get_data(as_text=True)
    return client.post(
        f"/customers/{customer_id}/refusals", data={"csrf_token": csrf_token(page), **fields}
    )


def _lift(client: FlaskClient, customer_id: int, refusal_id: int, why: str) -> object:
    token = csrf_token(client.get(f"/customers/{customer_id}").get_data(as_text=True))
    return client.post(
        f"/customers/{customer_id}/refusals/{refusal_id}/lift",
        data={"csrf_token": token, "lift_reason": why},
    )


def _decision_now(
    sessions: sessionmaker[Session], customer_id: int, at: datetime = NOW
) -> entitlement.Decision:
    with sessions() as session:
        card = directory.find_by_phone(session, "+74997195581")
        assert card is not None and card.customer_id == customer_id
        return entitlement.decide(card.records, at)


def test_customer_page_shows_records_entitlement_and_calls(
    agent: FlaskClient, customer_id: int
) -> None:
    page = agent.get(f"/customers/{customer_id}").get_data(as_text=True)
    for text in (
        "ООО Ромашка",
        "№ 1001",
        "Иван Петров",
        "ivan@romashka.example",
        "+7 499 719-55-81",
        "Лицензия: OneRPA Studio",
        "12.03.2024",
        "на 12 мес.",
        "Подписка: OneRPA Cloud",
        "бессрочно",
        "Бесплатно: действующая подписка на OneRPA Cloud, бессрочно",
        "Бесплатно: обновления",  # the earlier call's decision
    ):
        assert text in page, text


def test_customers_call_from_a_hidden_number_says_so(
    agent: FlaskClient, customer_id: int, sessions: sessionmaker[Session]
) -> None:
    # Identified by the customer number typed in; Asterisk sent "unknown" for the caller ID.
    with sessions.begin() as session:
        add_call(
            session,
            customer_id=customer_id,
            callerid_raw="unknown",
            callerid_name="unknown",
            caller_e164=None,
            status="completed",
            arrived_at=NOW - timedelta(hours=1),
        )
    page = agent.get(f"/customers/{customer_id}").get_data(as_text=True)
    calls = page.split("<h2>Звонки", 1)[1]
    assert "<td>скрыт</td>" in calls and "unknown" not in calls


def test_unknown_customer_is_404(agent: FlaskClient) -> None:
    assert agent.get("/customers/999").status_code == 404


@pytest.mark.parametrize("typed", ["8 499 719-55-81", "1001", "L-1001", "ромаш", "Петров"])
def test_customer_search(agent: FlaskClient, customer_id: int, typed: str) -> None:
    page = agent.get("/customers", query_string={"q": typed}).get_data(as_text=True)
    if typed == "L-1001":  # a licence number is digits only; letters search names
        assert "Никого не нашли" in page
        return
    assert f'href="/customers/{customer_id}"' in page


def test_customer_search_treats_wildcards_as_text(agent: FlaskClient, customer_id: int) -> None:
    assert "Никого не нашли" in agent.get("/customers?q=%25").get_data(as_text=True)


def test_agent_sets_a_refusal_and_it_holds_on_the_next_call(
    agent: FlaskClient, sessions: sessionmaker[Session], customer_id: int
) -> None:
    response = _refuse(agent, customer_id, reason="Грубил агенту", until="2026-12-31")
    assert response.status_code == 302
    with sessions() as session:
        refusal = session.scalar(select(Refusal))
        assert (refusal.customer_id, refusal.set_by, refusal.set_at) == (customer_id, "anna", NOW)
        assert refusal.expires_at == entitlement.end_of_day(date(2026, 12, 31))
        entry = session.scalar(select(AuditEntry))
        assert (entry.username, entry.action, entry.target_id) == (
            "anna",
            "refusal.set",
            str(customer_id),
        )
        assert "Грубил агенту" in entry.details
    decision = _decision_now(sessions, customer_id)
    assert decision.reason is entitlement.Reason.REFUSED_ETIQUETTE
    page = agent.get(f"/customers/{customer_id}").get_data(as_text=True)
    assert "Отказ в консультации (нарушение этикета)" in page
    assert "Грубил агенту" in page
    # The refusal holds through the day the agent gave, and the page says that day.
    assert "<td>31.12.2026</td>" in page and "01.01.2027" not in page


def test_refusal_needs_a_reason_and_a_future_date(
    agent: FlaskClient, sessions: sessionmaker[Session], customer_id: int
) -> None:
    assert _refuse(agent, customer_id, reason="").status_code == 400
    past = _refuse(agent, customer_id, reason="Грубил", until="2026-11-25")
    assert past.status_code == 400
    assert "Дата окончания уже прошла" in past.get_data(as_text=True)
    with sessions() as session:
        assert session.scalar(select(Refusal)) is None
        assert session.scalar(select(AuditEntry)) is None


def test_refusal_needs_a_csrf_token(
    agent: FlaskClient, sessions: sessionmaker[Session], customer_id: int
) -> None:
    response = agent.post(f"/customers/{customer_id}/refusals", data={"reason": "Грубил"})
    assert response.status_code == 400
    with sessions() as session:
        assert session.scalar(select(Refusal)) is None


def test_only_a_supervisor_lifts_a_refusal_and_the_row_stays(
    agent: FlaskClient,
    supervisor: FlaskClient,
    sessions: sessionmaker[Session],
    customer_id: int,
    clock: Clock,
) -> None:
    _refuse(agent, customer_id, reason="Грубил агенту")
    with sessions() as session:
        refusal_id = session.scalar(select(Refusal.id))
    assert "Снять</button>" not in agent.get(f"/customers/{customer_id}").get_data(as_text=True)
    assert _lift(agent, customer_id, refusal_id, "извинился").status_code == 403
    assert _decision_now(sessions, customer_id).reason is entitlement.Reason.REFUSED_ETIQUETTE

    clock.advance(hours=1)
    assert _lift(supervisor, customer_id, refusal_id, "извинился").status_code == 302
    with sessions() as session:
        refusal = session.get(Refusal, refusal_id)
        assert (refusal.lifted_by, refusal.lift_reason) == ("vera", "извинился")
        assert refusal.lifted_at == NOW + timedelta(hours=1)
        actions = session.execute(
            select(AuditEntry.username, AuditEntry.action).order_by(AuditEntry.id)
        ).all()
        assert actions == [("anna", "refusal.set"), ("vera", "refusal.lift")]
    later = _decision_now(sessions, customer_id, NOW + timedelta(hours=2))
    assert later.reason is entitlement.Reason.FREE_SUBSCRIPTION
    page = supervisor.get(f"/customers/{customer_id}").get_data(as_text=True)
    assert "Журнал изменений" in page
    assert "<td>Снят отказ в консультациях</td><td>№ 1: извинился</td>" in page
    assert "refusal.lift" not in page and "refusal 1" not in page


def test_lifting_needs_a_reason(
    agent: FlaskClient, supervisor: FlaskClient, sessions: sessionmaker[Session], customer_id: int
) -> None:
    _refuse(agent, customer_id, reason="Грубил агенту")
    with sessions() as session:
        refusal_id = session.scalar(select(Refusal.id))
    _lift(supervisor, customer_id, refusal_id, "")
    with sessions() as session:
        assert session.get(Refusal, refusal_id).lifted_at is None


def test_lifting_another_customers_refusal_is_404(
    agent: FlaskClient, supervisor: FlaskClient, sessions: sessionmaker[Session], customer_id: int
) -> None:
    with sessions.begin() as session:
        other = add_customer(session, "1002", "ООО Лютик", phone="+74951234567").id
    _refuse(agent, other, reason="Грубил")
    with sessions() as session:
        refusal_id = session.scalar(select(Refusal.id))
    assert _lift(supervisor, customer_id, refusal_id, "ошибка").status_code == 404


def test_audit_page_lists_the_changes(
    agent: FlaskClient, supervisor: FlaskClient, customer_id: int
) -> None:
    _refuse(agent, customer_id, reason="Грубил <b>агенту</b>")
    page = supervisor.get("/audit").get_data(as_text=True)
    assert f'<a href="/customers/{customer_id}">клиент {customer_id}</a>' in page
    assert "Грубил &lt;b&gt;агенту&lt;/b&gt;" in page


def test_audit_log_is_in_russian(
    agent: FlaskClient,
    supervisor: FlaskClient,
    customer_id: int,
    sessions: sessionmaker[Session],
) -> None:
    _refuse(agent, customer_id, reason="Грубил агенту")
    _refuse(agent, customer_id, reason="Снова грубил", until="2026-12-31")
    with sessions.begin() as session:
        refusal_id = session.scalar(select(Refusal.id).order_by(Refusal.id))
    _lift(supervisor, customer_id, refusal_id, "извинился")
    with sessions.begin() as session:
        ivanov = add_user(session, "ivanov", "supervisor", PASSWORD)
        audit(session, "cli", "user.create", "user", ivanov.id, "ivanov (supervisor) ")
        audit(session, "cli", "user.update", "user", ivanov.id, "role=agent, password")
        audit(session, "cli", "user.update", "user", ivanov.id, "interface=PJSIP/105")
        audit(session, "cli", "user.update", "user", ivanov.id, "active=False")
        audit(session, "demo", "user.update", "user", ivanov.id, "no change")
    rows = _table_rows(supervisor.get("/audit").get_data(as_text=True))
    assert rows == [
        ["демо-запуск", "Изменён пользователь", "пользователь «ivanov»", "без изменений"],
        ["командная строка", "Изменён пользователь", "пользователь «ivanov»", "вход запрещён"],
        ["командная строка", "Изменён пользователь", "пользователь «ivanov»", "телефон: PJSIP/105"],
        [
            "командная строка",
            "Изменён пользователь",
            "пользователь «ivanov»",
            "роль: агент, новый пароль",
        ],
        [
            "командная строка",
            "Создан пользователь",
            "пользователь «ivanov»",
            "«ivanov», руководитель",
        ],
        ["vera", "Снят отказ в консультациях", f"клиент {customer_id}", "№ 1: извинился"],
        [
            "anna",
            "Установлен отказ в консультациях",
            f"клиент {customer_id}",
            "№ 2 по 31.12.2026: Снова грубил",
        ],
        [
            "anna",
            "Установлен отказ в консультациях",
            f"клиент {customer_id}",
            "№ 1 до снятия: Грубил агенту",
        ],
    ]


def _table_rows(page: str) -> list[list[str]]:
    """Return the audit table's cells after the moment, as text."""
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        cells = [
            re.sub(r"<[^>]+>|\s+", " ", cell).strip()
            for cell in re.findall(r"<td>(.*?)</td>", row, re.S)
        ]
        rows.append([" ".join(cell.split()) for cell in cells[1:]])
    return rows
