"""Call history: filters, search by phone in any format, CSV export, and the wrap-up."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from dashboard.calls import cell
from dashboard.testing import (
    Clock,
    add_call,
    add_customer,
    add_user,
    csrf_token,
    make_app,
    signed_in,
)
from onerpa.models import CallEvent
from onerpa.staff import AuditEntry, Wrapup

NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)  # 12:30 in Moscow
PASSWORD = "correct horse"
NUMBER = "+74997195581"
OTHER = "+74951234567"


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def app(engine: Engine, clock: Clock, sessions: sessionmaker[Session]) -> Flask:
    with sessions.begin() as session:
        add_user(session, "anna", "agent", PASSWORD, interface="PJSIP/101", member_name="Анна")
        add_user(session, "boris", "agent", PASSWORD, interface="PJSIP/102")
        add_user(session, "vera", "supervisor", PASSWORD)
    return make_app(engine, clock, HISTORY_PAGE_SIZE=3)


@pytest.fixture
def agent(app: Flask) -> FlaskClient:
    return signed_in(app, "anna", PASSWORD)


@pytest.fixture
def supervisor(app: Flask) -> FlaskClient:
    return signed_in(app, "vera", PASSWORD)


def _answered(session: Session, arrived: datetime, talk_seconds: float, **fields: object) -> int:
    values = {
        "status": "completed",
        "arrived_at": arrived,
        "queued_at": arrived + timedelta(seconds=20),
        "answered_at": arrived + timedelta(seconds=50),
        "ended_at": arrived + timedelta(seconds=50 + talk_seconds),
        "decision": "free_first_year",
    }
    return add_call(session, **{**values, **fields}).id


def _call_ids(page: str) -> list[int]:
    return [int(found) for found in re.findall(r'href="/calls/(\d+)"', page)]


@pytest.mark.parametrize(
    "typed",
    [
        "8 (499) 719-55-81",
        "+7 499 719 55 81",
        "74997195581",
        "84997195581",
        "4997195581",
        "+7(499)719-55-81",
        " 8-499-719-55-81 ",
    ],
)
def test_phone_search_finds_the_number_however_it_is_typed(
    agent: FlaskClient, sessions: sessionmaker[Session], typed: str
) -> None:
    with sessions.begin() as session:
        mine = add_call(session, caller_e164=NUMBER, arrived_at=NOW - timedelta(hours=1)).id
        add_call(session, caller_e164=OTHER, arrived_at=NOW - timedelta(hours=2))
    page = agent.get("/calls", query_string={"phone": typed}).get_data(as_text=True)
    assert _call_ids(page) == [mine]
    assert "Звонки с номера +7 499 719-55-81" in page


@pytest.mark.parametrize("typed", ["abc", "12", "'; DROP TABLE calls;--"])
def test_phone_search_says_when_it_is_not_a_number(agent: FlaskClient, typed: str) -> None:
    response = agent.get("/calls", query_string={"phone": typed})
    assert response.status_code == 200
    assert "Не похоже на номер телефона" in response.get_data(as_text=True)


def test_history_filters_by_period_in_moscow_days(
    agent: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        # 25 Nov 23:30 Moscow is 20:30 UTC; 26 Nov 00:30 Moscow is 21:30 UTC on the 25th.
        before = add_call(session, arrived_at=datetime(2026, 11, 25, 20, 30, tzinfo=UTC)).id
        inside = add_call(session, arrived_at=datetime(2026, 11, 25, 21, 30, tzinfo=UTC)).id
    today = agent.get("/calls?from=2026-11-26&to=2026-11-26").get_data(as_text=True)
    assert _call_ids(today) == [inside]
    yesterday = agent.get("/calls?from=2026-11-25&to=2026-11-25").get_data(as_text=True)
    assert _call_ids(yesterday) == [before]
    assert "не распознана" in agent.get("/calls?from=26.11.2026").get_data(as_text=True)


def test_history_filters_by_decision_outcome_and_agent(
    agent: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    start = NOW - timedelta(hours=3)
    with sessions.begin() as session:
        by_anna = _answered(session, start, 60, agent_interface="PJSIP/101")
        by_anna_name = _answered(session, start, 60, agent="Анна")
        by_boris = _answered(session, start, 60, agent_interface="PJSIP/102")
        refused = add_call(
            session, status="ended_ivr", decision="refused_etiquette", arrived_at=start
        ).id
        abandoned = add_call(session, status="abandoned_queue", arrived_at=start).id
    assert _call_ids(agent.get("/calls?decision=refused_etiquette").get_data(as_text=True)) == [
        refused
    ]
    assert _call_ids(agent.get("/calls?outcome=abandoned_queue").get_data(as_text=True)) == [
        abandoned
    ]
    annas = _call_ids(agent.get("/calls?agent=anna").get_data(as_text=True))
    assert sorted(annas) == sorted([by_anna, by_anna_name])
    assert _call_ids(agent.get("/calls?agent=boris").get_data(as_text=True)) == [by_boris]
    assert "Нет такого сотрудника" in agent.get("/calls?agent=nobody").get_data(as_text=True)


def test_history_filters_calls_over_three_and_five_minutes(
    agent: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    start = NOW - timedelta(hours=2)
    with sessions.begin() as session:
        _answered(session, start, 180)
        over_3 = _answered(session, start, 181)
        over_5 = _answered(session, start, 301)
        talking = add_call(  # still talking, 6 minutes so far
            session,
            status="talking",
            arrived_at=NOW - timedelta(minutes=7),
            answered_at=NOW - timedelta(minutes=6),
        ).id
    over_target = agent.get("/calls?over=target").get_data(as_text=True)
    assert sorted(_call_ids(over_target)) == sorted([over_3, over_5, talking])
    over_limit = agent.get("/calls?over=limit").get_data(as_text=True)
    assert sorted(_call_ids(over_limit)) == sorted([over_5, talking])
    assert 'class="num over-red">5:01' in over_limit


def test_history_pages_newest_first(agent: FlaskClient, sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        ids = [add_call(session, arrived_at=NOW - timedelta(minutes=m)).id for m in range(5)]
    first = agent.get("/calls").get_data(as_text=True)
    assert _call_ids(first) == ids[:3]
    assert "Старше →" in first
    second = agent.get("/calls?page=1").get_data(as_text=True)
    assert _call_ids(second) == ids[3:]
    assert "Старше →" not in second and "← Новее" in second


def test_history_of_one_customer(agent: FlaskClient, sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        customer = add_customer(session)
        theirs = add_call(session, customer_id=customer.id, arrived_at=NOW).id
        add_call(session, arrived_at=NOW)
    page = agent.get(f"/calls?customer={customer.id}").get_data(as_text=True)
    assert _call_ids(page) == [theirs]


# --- CSV -----------------------------------------------------------------------------------


def _csv(client: FlaskClient, **query: str) -> list[list[str]]:
    with client.get("/calls/export.csv", query_string=query) as response:
        assert response.status_code == 200
        assert response.mimetype == "text/csv"
        assert "attachment" in response.headers["Content-Disposition"]
        text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:]), delimiter=";"))


def test_csv_export_has_every_call_with_its_wrap_up(
    supervisor: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        customer = add_customer(session)
        call_id = _answered(
            session,
            NOW - timedelta(hours=1),
            200,
            customer_id=customer.id,
            callerid_name='=HYPERLINK("http://evil")',
            agent="Анна",
            topic="bug",
            digits="1",
        )
        session.add(
            Wrapup(
                call_id=call_id,
                username="anna",
                topic="bug",
                about_onerpa=True,
                bug_confirmed=True,
                notes="падает при запуске робота",
            )
        )
        add_call(session, caller_e164=OTHER, arrived_at=NOW - timedelta(hours=2))
    header, *rows = _csv(supervisor)
    assert header[:4] == ["№", "Ссылка", "Поступил", "Номер"]
    assert len(rows) == 2
    row = dict(zip(header, rows[0], strict=True))
    assert row["№"] == str(call_id)
    assert row["Поступил"] == "2026-11-26 11:30:00"  # Moscow time
    assert row["Номер"] == NUMBER
    assert row["Имя Caller ID"] == '\'=HYPERLINK("http://evil")'  # never a formula
    assert row["Организация"] == "ООО Ромашка"
    assert row["Решение"] == "Бесплатно: первый год"
    assert row["Выбор в меню"] == "Критическая ошибка"
    assert row["Ожидание, с"] == "30" and row["Разговор, с"] == "200"
    assert (row["Тема (итог)"], row["Про OneRPA"], row["Баг подтверждён"]) == (
        "Критическая ошибка",
        "да",
        "да",
    )
    assert row["Заметки"] == "падает при запуске робота"


def test_csv_export_follows_the_filters(
    supervisor: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        add_call(session, caller_e164=NUMBER, arrived_at=NOW)
        add_call(session, caller_e164=OTHER, arrived_at=NOW)
    _, *rows = _csv(supervisor, phone="8 495 123-45-67")
    assert [row[3] for row in rows] == [OTHER]


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("=1+2", "'=1+2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("+74997195581", "+74997195581"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("ООО Ромашка", "ООО Ромашка"),
        ("", ""),
    ],
)
def test_csv_cells_cannot_start_a_formula(text: str, safe: str) -> None:
    assert cell(text) == safe


# --- one call and its wrap-up --------------------------------------------------------------


def _wrap_up(client: FlaskClient, call_id: int, **fields: str) -> object:
    page = client.get(f"/calls/{call_id}").get_data(as_text=True)
    data = {"csrf_token": csrf_token(page), **fields}
    return client.post(f"/calls/{call_id}/wrapup", data=data)


def test_agent_records_a_wrap_up_and_it_is_audited(
    agent: FlaskClient, supervisor: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        call_id = _answered(session, NOW - timedelta(minutes=10), 120, agent_interface="PJSIP/101")
    response = _wrap_up(
        agent,
        call_id,
        topic="bug",
        about_onerpa="yes",
        bug_confirmed="no",
        notes="не воспроизвелось",
    )
    assert response.status_code == 302
    with sessions() as session:
        wrapup = session.scalar(select(Wrapup))
        assert (wrapup.call_id, wrapup.username, wrapup.topic) == (call_id, "anna", "bug")
        assert (wrapup.about_onerpa, wrapup.bug_confirmed) == (True, False)
        assert wrapup.at == NOW
        entry = session.scalar(select(AuditEntry))
        assert (entry.username, entry.action, entry.target_type, entry.target_id) == (
            "anna",
            "wrapup.record",
            "call",
            str(call_id),
        )
    page = supervisor.get(f"/calls/{call_id}").get_data(as_text=True)
    assert "не воспроизвелось" in page
    audit = supervisor.get("/audit").get_data(as_text=True)
    assert "<td>Записаны итоги звонка</td>" in audit
    assert f'<a href="/calls/{call_id}">звонок {call_id}</a>' in audit
    assert "<td>Критическая ошибка, про OneRPA, баг не подтверждён</td>" in audit
    assert "wrapup.record" not in audit and "topic=" not in audit
    history = supervisor.get("/calls").get_data(as_text=True)
    assert "Критическая ошибка" in history


def test_wrap_up_not_about_onerpa(agent: FlaskClient, sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        call_id = _answered(session, NOW - timedelta(minutes=10), 60, agent_interface="PJSIP/101")
    assert _wrap_up(agent, call_id, topic="other", about_onerpa="no").status_code == 302
    with sessions() as session:
        wrapup = session.scalar(select(Wrapup))
        assert (wrapup.about_onerpa, wrapup.bug_confirmed) == (False, None)
    assert "не про OneRPA" in agent.get("/calls").get_data(as_text=True)


def test_wrap_up_of_a_bug_needs_the_confirmation_answer(
    agent: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        call_id = _answered(session, NOW - timedelta(minutes=10), 60, agent_interface="PJSIP/101")
    response = _wrap_up(agent, call_id, topic="bug", about_onerpa="yes")
    assert response.status_code == 400
    assert "подтвердилась ли она" in response.get_data(as_text=True)
    with sessions() as session:
        assert session.scalar(select(Wrapup)) is None


def test_wrap_up_needs_a_csrf_token(agent: FlaskClient, sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        call_id = _answered(session, NOW - timedelta(minutes=10), 60, agent_interface="PJSIP/101")
    response = agent.post(
        f"/calls/{call_id}/wrapup", data={"topic": "howto", "about_onerpa": "yes"}
    )
    assert response.status_code == 400
    with sessions() as session:
        assert session.scalar(select(Wrapup)) is None


def test_agent_cannot_wrap_up_a_colleagues_call(
    app: Flask, agent: FlaskClient, supervisor: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        call_id = _answered(session, NOW - timedelta(minutes=10), 60, agent_interface="PJSIP/102")
    assert "Итоги записывает агент" in agent.get(f"/calls/{call_id}").get_data(as_text=True)
    token = csrf_token(agent.get("/calls").get_data(as_text=True))
    data = {"csrf_token": token, "topic": "howto", "about_onerpa": "yes"}
    assert agent.post(f"/calls/{call_id}/wrapup", data=data).status_code == 403
    assert (
        _wrap_up(
            signed_in(app, "boris", PASSWORD), call_id, topic="howto", about_onerpa="yes"
        ).status_code
        == 302
    )
    assert _wrap_up(supervisor, call_id, topic="other", about_onerpa="no").status_code == 302
    with sessions() as session:
        assert [w.username for w in session.scalars(select(Wrapup))] == ["boris", "vera"]


def test_call_page_shows_the_timings(agent: FlaskClient, sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        call_id = _answered(session, NOW - timedelta(minutes=10), 330, agent_interface="PJSIP/101")
    page = agent.get(f"/calls/{call_id}").get_data(as_text=True)
    assert '<dd class="over-red">5:30</dd>' in page
    assert "<dd>0:30</dd>" in page  # the wait


def test_call_page_shows_the_ivr_steps_in_moscow_time(
    agent: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    steps = "greeting 2026-11-26T08:00:00.000+00:00; routed 2026-11-26T08:00:07.250+00:00"
    with sessions.begin() as session:
        call_id = add_call(session, step_times=steps + "; damaged").id
    page = agent.get(f"/calls/{call_id}").get_data(as_text=True)
    assert "приветствие 11:00:00 → направлен 11:00:07" in page
    assert "damaged" not in page and "greeting" not in page


def test_call_page_lists_the_events_in_russian(
    agent: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    start = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)  # 11:00 in Moscow
    events = [
        ("arrived", 0, None, ""),
        ("decided", 7, None, '{"decision":"free_first_year"}'),
        ("queued", 8, None, ""),
        ("answered", 30, "Анна", ""),
        ("ended", 200, None, '{"status":"completed"}'),
    ]
    with sessions.begin() as session:
        call = add_call(session, status="completed", arrived_at=start)
        for kind, after, who, data in events:
            session.add(
                CallEvent(
                    call_ref=call.call_ref,
                    kind=kind,
                    at=start + timedelta(seconds=after),
                    source="ivr",
                    agent=who,
                    data=data,
                )
            )
        call_id = call.id
    page = agent.get(f"/calls/{call_id}").get_data(as_text=True)
    listed = page.split("<h3>События</h3>", 1)[1].split("</ul>", 1)[0]
    assert re.findall(r"<li>(.*?)</li>", listed) == [
        "11:00:00 поступил",
        "11:00:07 решение принято: Бесплатно: первый год",
        "11:00:08 встал в очередь",
        "11:00:30 ответил агент (Анна)",
        "11:03:20 завершён: Обслужен",
    ]


def test_asterisks_unknown_caller_id_is_not_shown(
    agent: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    # Asterisk sends "unknown" for the caller ID name, and the number, when there is none.
    with sessions.begin() as session:
        named = add_call(session, callerid_name="unknown", arrived_at=NOW).id
        hidden = add_call(
            session,
            callerid_name="unknown",
            callerid_raw="unknown",
            caller_e164=None,
            arrived_at=NOW - timedelta(minutes=1),
        ).id
    history = agent.get("/calls").get_data(as_text=True)
    assert "unknown" not in _text(history)
    assert "+7 499 719-55-81" in history and "скрыт" in history
    page = agent.get(f"/calls/{named}").get_data(as_text=True)
    assert "unknown" not in _text(page) and "<dt>Имя в Caller ID</dt><dd>—</dd>" in page
    page = agent.get(f"/calls/{hidden}").get_data(as_text=True)
    assert "unknown" not in _text(page) and "<dt>Caller ID</dt><dd>скрыт</dd>" in page


@pytest.mark.parametrize(
    ("cause", "shown"),
    [
        (16, "<dd>нормальное завершение (16)</dd>"),
        (17, '<dd><span class="badge badge-warn">абонент занят (17)</span></dd>'),
        (19, '<dd><span class="badge badge-warn">нет ответа (19)</span></dd>'),
        (21, '<dd><span class="badge badge-warn">вызов отклонён (21)</span></dd>'),
        (34, '<dd><span class="badge badge-warn">нет свободных каналов (34)</span></dd>'),
        (38, '<dd><span class="badge badge-warn">сеть не работает (38)</span></dd>'),
        (112, '<dd><span class="badge badge-warn">код 112</span></dd>'),
        (None, "<dd>—</dd>"),
    ],
)
def test_call_page_says_why_the_call_ended(
    supervisor: FlaskClient, sessions: sessionmaker[Session], cause: int | None, shown: str
) -> None:
    with sessions.begin() as session:
        call_id = _answered(session, NOW - timedelta(minutes=10), 60, hangup_cause=cause)
    page = supervisor.get(f"/calls/{call_id}").get_data(as_text=True)
    assert f"<dt>Причина завершения</dt>{shown}" in page


def _text(page: str) -> str:
    """Return what a reader sees of a page: its text without tags and attributes."""
    return re.sub(r"<[^>]+>", " ", page)


def test_unknown_call_is_404(agent: FlaskClient) -> None:
    assert agent.get("/calls/999").status_code == 404
    token = csrf_token(agent.get("/calls").get_data(as_text=True))
    assert agent.post("/calls/999/wrapup", data={"csrf_token": token}).status_code == 404
