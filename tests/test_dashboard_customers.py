"""The customer page: records, search, and etiquette refusals with their audit trail."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

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
from dashboard.users import audit
from onerpa import directory, entitlement
from onerpa.models import Licence, Refusal, Subscription, UpdatePurchase
from onerpa.staff import AuditEntry

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


# Supervisor edits: licences, updates, subscriptions and phones, each audited.


def _edit(client: FlaskClient, path: str, **fields: str) -> Any:
    """Open the edit form at ``path`` and post ``fields`` with its CSRF token."""
    form = client.get(path)
    assert form.status_code == 200
    return client.post(path, data={"csrf_token": csrf_token(form.get_data(as_text=True)), **fields})


def _audited(sessions: sessionmaker[Session]) -> list[tuple[str, str, str]]:
    with sessions() as session:
        rows = session.execute(
            select(AuditEntry.username, AuditEntry.action, AuditEntry.details).order_by(
                AuditEntry.id
            )
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_supervisor_adds_a_licence_updates_subscription_and_phone_all_audited(
    supervisor: FlaskClient, customer_id: int, sessions: sessionmaker[Session]
) -> None:
    base = f"/customers/{customer_id}"
    for path, fields in (
        (
            "licences/new",
            {
                "product": "OneRPA Orchestrator",
                "licence_number": "4711",
                "purchased_on": "2026-03-01",
            },
        ),
        ("updates/new", {"purchased_on": "2026-10-01", "months": "24"}),
        (
            "subscriptions/new",
            {"service": "OneRPA Cloud Pro", "starts_on": "2026-01-01", "ends_on": "2026-12-31"},
        ),
        ("phones/new", {"number": "8 (916) 555-12-34", "label": "мобильный"}),
    ):
        response = _edit(supervisor, f"{base}/{path}", **fields)
        assert response.status_code == 302, (path, response.get_data(as_text=True))
    page = supervisor.get(base).get_data(as_text=True)
    for text in (
        "Лицензия: OneRPA Orchestrator",
        "4711",
        "01.03.2026",
        "на 24 мес.",
        "Подписка: OneRPA Cloud Pro",
        "до 31.12.2026",
        "+7 916 555-12-34",
        "мобильный",
    ):
        assert text in page, text
    actions = [(who, action) for who, action, _ in _audited(sessions)]
    assert actions == [
        ("vera", "licence.add"),
        ("vera", "updates.add"),
        ("vera", "subscription.add"),
        ("vera", "phone.add"),
    ]
    with sessions() as session:
        card = directory.find_by_phone(session, "+79165551234")
    assert card is not None and card.customer_id == customer_id
    assert ("OneRPA Orchestrator", date(2026, 3, 1), "4711") in [
        (lic.product, lic.purchased_on, lic.number) for lic in card.records.licences
    ]
    audit_page = supervisor.get("/audit").get_data(as_text=True)
    assert "Добавлена лицензия" in audit_page
    assert "лицензия № " in audit_page and "№ лицензии: 4711" in audit_page
    assert "куплена: 01.03.2026" in audit_page
    assert "номер: +7 916 555-12-34" in audit_page


def test_supervisor_corrects_a_purchase_and_the_audit_shows_before_and_after(
    supervisor: FlaskClient, customer_id: int, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session:
        licence_id = session.scalars(
            select(Licence.id).where(Licence.customer_id == customer_id)
        ).one()
    path = f"/customers/{customer_id}/licences/{licence_id}"
    form = supervisor.get(path).get_data(as_text=True)
    assert 'value="2024-03-12"' in form and 'value="OneRPA Studio"' in form
    response = _edit(
        supervisor,
        path,
        product="OneRPA Studio",
        licence_number="L-1001",
        purchased_on="2024-03-20",
    )
    assert response.status_code == 302
    with sessions() as session:
        assert session.get(Licence, licence_id).purchased_on == date(2024, 3, 20)  # type: ignore[union-attr]
    [(who, action, details)] = _audited(sessions)
    assert (who, action) == ("vera", "licence.change")
    assert details == f'licence {licence_id}: {{"purchased_on": ["2024-03-12", "2024-03-20"]}}'
    assert "куплена: 12.03.2024 → 20.03.2024" in supervisor.get("/audit").get_data(as_text=True)


def test_supervisor_cancels_a_subscription_and_it_no_longer_entitles(
    supervisor: FlaskClient, customer_id: int, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session:
        sub_id = session.scalars(
            select(Subscription.id).where(Subscription.customer_id == customer_id)
        ).one()
    response = _edit(
        supervisor,
        f"/customers/{customer_id}/subscriptions/{sub_id}",
        service="OneRPA Cloud",
        starts_on="2025-01-01",
        ends_on="",
        cancelled_on="2026-11-01",
    )
    assert response.status_code == 302
    # Updates bought 01.02.2026 for 12 months still hold; the subscription no longer does.
    assert _decision_now(sessions, customer_id).reason is entitlement.Reason.FREE_UPDATES
    assert [a for _, a, _ in _audited(sessions)] == ["subscription.change"]


def test_phone_of_another_customer_is_refused_naming_that_customer(
    supervisor: FlaskClient, customer_id: int, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        add_customer(session, "2002", "АО «Берёза»", phone="+74951112233")
    response = _edit(
        supervisor, f"/customers/{customer_id}/phones/new", number="+7 495 111-22-33", label=""
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Номер +7 495 111-22-33 уже принадлежит клиенту «АО «Берёза»» (№ 2002)." in page
    assert _audited(sessions) == []


@pytest.mark.parametrize(
    ("path", "fields", "message"),
    [
        ("phones/new", {"number": "12", "label": ""}, "Не похоже на номер телефона"),
        ("licences/new", {"product": "", "purchased_on": "2026-01-01"}, "Заполните это поле."),
        (
            "licences/new",
            {"product": "OneRPA Studio", "purchased_on": "вчера"},
            "Укажите дату в формате ДД.ММ.ГГГГ.",
        ),
        ("updates/new", {"purchased_on": "2026-01-01", "months": "0"}, "От 1 до 120 месяцев."),
        (
            "subscriptions/new",
            {"service": "OneRPA Cloud", "starts_on": "2026-05-01", "ends_on": "2026-04-30"},
            "Подписка не может закончиться раньше, чем началась.",
        ),
        (
            "licences/new",
            {"product": "OneRPA Studio", "licence_number": "L-1001", "purchased_on": "2026-01-01"},
            "Лицензия № L-1001 у этого клиента уже есть.",
        ),
    ],
)
def test_edit_errors_are_in_russian_and_nothing_is_written(
    supervisor: FlaskClient,
    customer_id: int,
    sessions: sessionmaker[Session],
    path: str,
    fields: dict[str, str],
    message: str,
) -> None:
    response = _edit(supervisor, f"/customers/{customer_id}/{path}", **fields)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert _audited(sessions) == []


@pytest.mark.parametrize(
    "path", ["licences/new", "updates/new", "subscriptions/new", "phones/new", "grants/new"]
)
def test_agent_cannot_edit_records(
    agent: FlaskClient, supervisor: FlaskClient, customer_id: int, path: str
) -> None:
    token = csrf_token(agent.get(f"/customers/{customer_id}").get_data(as_text=True))
    assert agent.get(f"/customers/{customer_id}/{path}").status_code == 403
    response = agent.post(f"/customers/{customer_id}/{path}", data={"csrf_token": token})
    assert response.status_code == 403


def test_agent_sees_the_records_but_no_edit_links(
    agent: FlaskClient, supervisor: FlaskClient, customer_id: int
) -> None:
    mine = agent.get(f"/customers/{customer_id}").get_data(as_text=True)
    theirs = supervisor.get(f"/customers/{customer_id}").get_data(as_text=True)
    for link in (
        "/licences/new",
        "/updates/new",
        "/subscriptions/new",
        "/phones/new",
        "/grants/new",
    ):
        assert link not in mine and link in theirs, link
    assert "исправить" not in mine and "исправить" in theirs
    assert "Жесты доброй воли" in mine
