"""The figures page (today, 7 and 30 days, any period) and its server-drawn SVG charts."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from dashboard import charts
from dashboard.testing import Clock, add_call, add_user, make_app, sign_in
from onerpa.callstatus import CallStatus
from onerpa.models import SupportRequest

NOW = datetime(2026, 11, 26, 11, 0, tzinfo=UTC)  # 14:00 in Moscow
PASSWORD = "correct horse"


@pytest.fixture
def supervisor(engine: Engine, sessions: sessionmaker[Session]) -> FlaskClient:
    with sessions.begin() as session:
        add_user(session, "vera", "supervisor", PASSWORD)
    client = make_app(engine, Clock(NOW)).test_client()
    sign_in(client, "vera", PASSWORD)
    return client


def _answered(
    session: Session,
    arrived: datetime,
    wait: float,
    talk: float,
    agent: str,
    interface: str | None = None,
) -> None:
    add_call(
        session,
        status="completed",
        decision="free_first_year",
        arrived_at=arrived,
        queued_at=arrived + timedelta(seconds=30),
        answered_at=arrived + timedelta(seconds=30 + wait),
        ended_at=arrived + timedelta(seconds=30 + wait + talk),
        agent=agent,
        agent_interface=interface,
    )


@pytest.fixture
def calls(sessions: sessionmaker[Session]) -> None:
    today = NOW - timedelta(hours=2)  # 12:00 Moscow
    with sessions.begin() as session:
        _answered(session, today, 20, 120, "Анна")
        _answered(session, today, 40, 200, "Анна")
        _answered(session, today + timedelta(minutes=30), 90, 400, "Борис")
        add_call(
            session,
            status="abandoned_queue",
            arrived_at=today,
            queued_at=today,
            ended_at=today + timedelta(seconds=45),
            decision="free_updates",
        )
        add_call(session, status="ended_ivr", decision="unknown_caller", arrived_at=today)
        _answered(session, NOW - timedelta(days=5), 10, 100, "Анна")
        _answered(session, NOW - timedelta(days=20), 10, 100, "Борис")


def _tile(page: str, label: str) -> str:
    found = re.search(
        r'<div class="value[^"]*"[^>]*>([^<]*)</div><div class="label">' + label, page
    )
    assert found, label
    return found.group(1)


def test_figures_for_today(supervisor: FlaskClient, calls: None) -> None:
    page = supervisor.get("/figures").get_data(as_text=True)
    assert "Период: 26.11.2026 — 26.11.2026" in page
    assert _tile(page, "поступило") == "5"
    assert _tile(page, "отвечено") == "3"
    assert _tile(page, "брошено в очереди") == "1"
    assert _tile(page, "завершено правилами") == "1"
    assert _tile(page, "уровень сервиса: ответ за 1:00") == "67 %"
    assert _tile(page, "среднее время ответа") == "0:50"
    assert _tile(page, "консультация в среднем") == "4:00"
    assert _tile(page, "консультация, 90-й процентиль") == "6:40"
    assert _tile(page, "уложились в 3:00") == "33 %"
    assert _tile(page, "уложились в 5:00") == "67 %"


def test_figures_per_agent_and_decision(supervisor: FlaskClient, calls: None) -> None:
    page = supervisor.get("/figures/breakdown?period=30d").get_data(as_text=True)
    rows = re.findall(
        r"<tr><td>(?:<a [^>]*>)?([^<]+)(?:</a>)?</td>\s*<td class=\"num\">(\d+)", page
    )
    assert ("Анна", "3") in rows and ("Борис", "2") in rows
    assert ("Бесплатно: первый год", "5") in rows  # offered, per decision
    assert ("Не опознан", "1") in rows


def test_figures_offer_the_agents_as_the_queue_names_them(
    supervisor: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        add_user(session, "anna", "agent", PASSWORD, member_name="Анна")
        add_user(session, "boris", "agent", PASSWORD, interface="PJSIP/102")
    page = supervisor.get("/figures").get_data(as_text=True)
    assert '<option value="Анна">Anna (Анна)</option>' in page
    assert '<option value="PJSIP/102">Boris (PJSIP/102)</option>' in page


@pytest.mark.parametrize(("period", "offered"), [("7d", "6"), ("30d", "7")])
def test_figures_for_7_and_30_days(
    supervisor: FlaskClient, calls: None, period: str, offered: str
) -> None:
    page = supervisor.get("/figures", query_string={"period": period}).get_data(as_text=True)
    assert _tile(page, "поступило") == offered


def test_figures_for_a_chosen_period_and_agent(supervisor: FlaskClient, calls: None) -> None:
    query = {"period": "custom", "from": "2026-11-01", "to": "2026-11-26", "agent": "Борис"}
    page = supervisor.get("/figures", query_string=query).get_data(as_text=True)
    assert "Период: 01.11.2026 — 26.11.2026, агент Борис" in page
    assert _tile(page, "отвечено") == "2"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"period": "custom", "from": "26.11.2026"}, "не распознаны"),
        ({"period": "custom", "from": "2020-01-01", "to": "2026-11-26"}, "не длиннее"),
    ],
)
def test_bad_periods_fall_back_to_today(
    supervisor: FlaskClient, query: dict[str, str], message: str
) -> None:
    page = supervisor.get("/figures", query_string=query).get_data(as_text=True)
    assert message in page
    assert "Период: 26.11.2026 — 26.11.2026" in page


def test_charts_are_inline_svg_without_external_resources(
    supervisor: FlaskClient, calls: None
) -> None:
    page = supervisor.get("/figures").get_data(as_text=True)
    svgs = re.findall(r"<svg .*?</svg>", page, flags=re.S)
    assert len(svgs) == 2
    hours, lengths = svgs
    assert 'aria-label="Звонки по часам"' in hours
    assert "12:00: поступило 5, отвечено 3" in hours
    assert "5–7 мин: 1" in lengths and 'class="bar bar-red"' in lengths
    assert not re.search(r"(src|href)=\"?https?:", page)
    assert "<script" not in page.replace('<script src="/static/', "")


def test_bar_chart_escapes_labels() -> None:
    svg = charts.bar_chart([charts.Bar("<b>", 3, tip="<i>")], title="a & b")
    assert "&lt;b&gt;" in svg and "&lt;i&gt;" in svg and "a &amp; b" in svg
    assert "<b>" not in svg


@pytest.mark.parametrize(("value", "top"), [(0, 4), (3, 4), (7, 8), (13, 20), (250, 400)])
def test_axis_top_is_round(value: float, top: float) -> None:
    assert charts._nice_top(value) == top


OUTCOME_CARDS = (
    "отвечено",
    "брошено в очереди",
    "нет агентов на линии",
    "брошено в меню",
    "завершено правилами",
    "потеряно",
    "ещё идут",
)


def test_outcome_cards_add_up_to_offered(
    supervisor: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    rng = random.Random(11)
    statuses = [rng.choice(list(CallStatus)) for _ in range(60)]
    with sessions.begin() as session:
        for status in statuses:
            arrived = NOW - timedelta(minutes=rng.randrange(1, 600))
            add_call(session, status=status.value, arrived_at=arrived)
    page = supervisor.get("/figures").get_data(as_text=True)
    cards = [int(_tile(page, label)) for label in OUTCOME_CARDS]
    assert sum(cards) == int(_tile(page, "поступило")) == 60
    no_agents, lost, in_progress = cards[2], cards[5], cards[6]
    assert no_agents == statuses.count(CallStatus.NO_AGENTS)
    assert lost == statuses.count(CallStatus.LOST)
    live = (CallStatus.IN_IVR, CallStatus.QUEUED)
    assert in_progress == sum(status in live for status in statuses)
    transferred = statuses.count(CallStatus.TRANSFERRED)
    assert f"завершено правилами, из них в продажи: {transferred}" in page


def test_per_agent_figures_name_the_staff_user(
    supervisor: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        add_user(session, "anna", "agent", PASSWORD, interface="PJSIP/101")
        add_user(session, "boris", "agent", PASSWORD, interface="PJSIP/102")
        arrived = NOW - timedelta(hours=1)
        for agent, interface in (
            ("PJSIP/101", "PJSIP/101"),  # the queue had no member name
            ("Agent 102", "PJSIP/102"),  # the queue's member name, not the user's
            ("PJSIP/109", "PJSIP/109"),  # nobody's phone
        ):
            _answered(session, arrived, 20, 120, agent, interface)
    page = supervisor.get("/figures/breakdown").get_data(as_text=True)
    rows = re.findall(r"<tr><td><a [^>]*>([^<]+)</a></td>", page)
    assert rows == ["Anna", "Boris", "PJSIP/109"]
    assert 'title="PJSIP/101">Anna</a>' in page


def test_with_no_call_yet_today_the_page_opens_on_the_week(
    supervisor: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        _answered(session, NOW - timedelta(days=2), 10, 100, "Анна")
    page = supervisor.get("/figures").get_data(as_text=True)
    assert "Сегодня звонков ещё не было — показаны последние 7 дней." in page
    assert _tile(page, "поступило") == "1" and _tile(page, "отвечено") == "1"
    today = supervisor.get("/figures", query_string={"period": "today"}).get_data(as_text=True)
    assert "period-notice" not in today and _tile(today, "поступило") == "0"


def test_a_day_with_calls_opens_on_today(supervisor: FlaskClient, calls: None) -> None:
    page = supervisor.get("/figures").get_data(as_text=True)
    assert "period-notice" not in page and _tile(page, "поступило") == "5"


def test_the_requests_promise_is_on_the_figures_page(
    supervisor: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    received = NOW - timedelta(hours=50)
    with sessions.begin() as session:
        session.add_all(
            [
                _request("message", received, closed=received + timedelta(hours=10)),
                _request("message", received, closed=received + timedelta(hours=80)),
                _request("message", NOW - timedelta(hours=80)),  # open, past its 72 hours
                _request("callback", NOW - timedelta(minutes=30), hours=2),  # open, in time
            ]
        )
    page = supervisor.get("/figures", query_string={"period": "7d"}).get_data(as_text=True)
    section = page[page.index('id="requests-figures"') :]
    message = section[section.index('data-kind="message"') : section.index('data-kind="callback"')]
    cells = dict(re.findall(r'<td class="([a-z-]+)[^"]*">([^<]*)</td>', message))
    assert cells["received"] == "3" and cells["answered"] == "2" and cells["in-time"] == "1"
    assert cells["in-time-share"] == "50 %"
    assert cells["answer-time"] == "45:00:00"  # (10 h + 80 h) / 2
    assert cells["open-now"] == "1" and cells["overdue-now"] == "1"
    callback = section[section.index('data-kind="callback"') :]
    assert re.search(r'class="open-now">1<', callback)
    assert re.search(r'class="overdue-now">0<', callback)


def _request(
    kind: str, received: datetime, *, closed: datetime | None = None, hours: float = 72
) -> SupportRequest:
    return SupportRequest(
        kind=kind,
        status="answered" if closed else "new",
        received_at=received,
        place_at=received,
        due_at=received + timedelta(hours=hours),
        closed_at=closed,
        closed_by="anna" if closed else None,
    )
