"""The live board and "my call": JSON with the caller's context, timers, escaping."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from dashboard import board
from dashboard.testing import Clock, add_call, add_customer, add_user, make_app, sign_in
from onerpa.models import Call
from onerpa.settings import Settings
from onerpa.staff import Wrapup

NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)  # 12:30 in Moscow
PASSWORD = "correct horse"
HOSTILE_NAMES = [
    "<script>alert(1)</script>",
    "'; DROP TABLE calls;--",
    '"><img src=x onerror=alert(1)>',
    "{{ 7*7 }}",
]


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def app(engine: Engine, clock: Clock) -> Flask:
    return make_app(engine, clock)


@pytest.fixture
def agent(app: Flask, sessions: sessionmaker[Session]) -> FlaskClient:
    with sessions.begin() as session:
        add_user(session, "anna", "agent", PASSWORD, interface="PJSIP/101")
        add_user(session, "boris", "agent", PASSWORD, member_name="Борис")
        add_user(session, "gleb", "agent", PASSWORD)
    client = app.test_client()
    sign_in(client, "anna", PASSWORD)
    return client


@pytest.fixture
def customer_id(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as session:
        return add_customer(session, purchased_on=date(2026, 3, 12)).id


def _board(client: FlaskClient) -> dict:
    response = client.get("/api/board")
    assert response.status_code == 200
    return response.get_json()


def test_board_shows_live_calls_with_the_callers_context(
    agent: FlaskClient, sessions: sessionmaker[Session], customer_id: int
) -> None:
    with sessions.begin() as session:
        add_call(
            session,
            customer_id=customer_id,
            status="completed",
            arrived_at=NOW - timedelta(days=3),
            answered_at=NOW - timedelta(days=3),
            ended_at=NOW - timedelta(days=3) + timedelta(minutes=4),
            decision="free_first_year",
        )
        add_call(
            session,
            customer_id=customer_id,
            status="queued",
            arrived_at=NOW - timedelta(seconds=50),
            queued_at=NOW - timedelta(seconds=20),
            decision="free_first_year",
            explanation="Бесплатно: первый год после покупки (OneRPA Studio), до 12.03.2027",
            topic="bug",
            digits="1",
            callerid_name="ROMASHKA",
        )
    data = _board(agent)
    assert data["thresholds"] == {
        "wait": {"amber_seconds": 60.0, "red_seconds": 120.0},
        "talk": {"amber_seconds": 180.0, "red_seconds": 300.0},
    }
    assert data["now"] == NOW.isoformat()
    [call] = data["calls"]
    assert call["status"] == "queued" and call["status_label"] == "Ждёт агента"
    assert call["customer"]["organisation"] == "ООО Ромашка"
    assert call["customer"]["contact"] == "Иван Петров"
    assert call["customer"]["url"] == f"/customers/{customer_id}"
    assert call["decision"]["label"] == "Бесплатно: первый год"
    assert "до 12.03.2027" in call["decision"]["explanation"]
    assert call["decision"]["tone"] == "free"
    assert call["topic"] == {"code": "bug", "label": "Критическая ошибка"}
    assert call["digits"] == "1"
    assert call["caller"] == {
        "name": "ROMASHKA",
        "number": "84997195581",
        "e164": "+74997195581",
        "display": "+7 499 719-55-81",
    }
    assert call["timer"]["phase"] == "wait"
    assert call["timer"]["elapsed_seconds"] == 20
    [previous] = call["recent"]
    assert previous["at"] == "23.11.2026 12:30"
    assert previous["status_label"] == "Обслужен"


def test_board_lists_in_ivr_waiting_and_talking_but_not_ended(
    agent: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        for status in ("in_ivr", "queued", "talking", "completed", "abandoned_queue", "lost"):
            add_call(session, status=status, arrived_at=NOW - timedelta(seconds=30))
    statuses = sorted(call["status"] for call in _board(agent)["calls"])
    assert statuses == ["in_ivr", "queued", "talking"]


def test_board_leaves_out_calls_stuck_live_for_half_a_day(
    agent: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        add_call(session, status="talking", arrived_at=NOW - timedelta(hours=13))
    assert _board(agent)["calls"] == []


@pytest.mark.parametrize(
    ("talked", "state"),
    [(0, "ok"), (179, "ok"), (180, "ok"), (181, "amber"), (300, "amber"), (301, "red")],
)
def test_timer_turns_amber_past_three_minutes_and_red_past_five(
    agent: FlaskClient, sessions: sessionmaker[Session], talked: int, state: str
) -> None:
    with sessions.begin() as session:
        add_call(
            session,
            status="talking",
            arrived_at=NOW - timedelta(seconds=talked + 60),
            answered_at=NOW - timedelta(seconds=talked),
        )
    timer = _board(agent)["calls"][0]["timer"]
    assert (timer["phase"], timer["elapsed_seconds"], timer["state"]) == ("talk", talked, state)


@pytest.mark.parametrize(
    ("waited", "state"),
    [(0, "ok"), (60, "ok"), (61, "amber"), (120, "amber"), (121, "red"), (139, "red")],
)
def test_waiting_caller_is_graded_against_the_answer_target(
    agent: FlaskClient, sessions: sessionmaker[Session], waited: int, state: str
) -> None:
    with sessions.begin() as session:
        add_call(
            session,
            status="queued",
            arrived_at=NOW - timedelta(seconds=waited + 40),
            queued_at=NOW - timedelta(seconds=waited),
        )
    timer = _board(agent)["calls"][0]["timer"]
    assert (timer["phase"], timer["elapsed_seconds"], timer["state"]) == ("wait", waited, state)


def test_time_in_the_menu_is_not_graded(
    agent: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        add_call(session, status="in_ivr", arrived_at=NOW - timedelta(minutes=6))
    assert _board(agent)["calls"][0]["timer"]["state"] == "none"


def test_timer_follows_the_injected_clock(
    agent: FlaskClient, sessions: sessionmaker[Session], clock: Clock
) -> None:
    with sessions.begin() as session:
        add_call(session, status="talking", arrived_at=NOW, answered_at=NOW)
    assert _board(agent)["calls"][0]["timer"]["state"] == "ok"
    clock.advance(minutes=4)
    data = _board(agent)
    assert data["now_ms"] - data["calls"][0]["timer"]["started_ms"] == 240_000
    assert data["calls"][0]["timer"]["state"] == "amber"
    clock.advance(minutes=2)
    assert _board(agent)["calls"][0]["timer"]["state"] == "red"


def test_timer_thresholds_come_from_the_settings(
    engine: Engine, clock: Clock, sessions: sessionmaker[Session]
) -> None:
    settings = Settings(
        consultation_target=timedelta(seconds=60),
        consultation_limit=timedelta(seconds=120),
        wait_target=timedelta(seconds=20),
    )
    with sessions.begin() as session:
        add_user(session, "anna", "agent", PASSWORD)
        add_call(
            session,
            status="queued",
            arrived_at=NOW - timedelta(seconds=90),
            queued_at=NOW - timedelta(seconds=30),
        )
        add_call(
            session,
            status="talking",
            arrived_at=NOW - timedelta(seconds=190),
            answered_at=NOW - timedelta(seconds=90),
        )
    client = make_app(engine, clock, SETTINGS=settings).test_client()
    sign_in(client, "anna", PASSWORD)
    data = _board(client)
    assert data["thresholds"] == {
        "wait": {"amber_seconds": 20.0, "red_seconds": 40.0},
        "talk": {"amber_seconds": 60.0, "red_seconds": 120.0},
    }
    timers = sorted(
        (call["timer"]["phase"], call["timer"]["label"], call["timer"]["state"])
        for call in data["calls"]
    )
    assert timers == [("talk", "разговор", "amber"), ("wait", "ожидание", "amber")]
    legend = client.get("/").get_data(as_text=True)
    assert ">до 20 с<" in legend and ">20 с – 40 с<" in legend and ">дольше 40 с<" in legend
    assert ">до 1 мин<" in legend and ">1 мин – 2 мин<" in legend and ">дольше 2 мин<" in legend


def test_legend_says_which_marks_each_phase_has(agent: FlaskClient) -> None:
    page = agent.get("/").get_data(as_text=True)
    wait = page.split('id="legend-wait"', 1)[1].split('id="legend-talk"', 1)[0]
    talk = page.split('id="legend-talk"', 1)[1].split('id="legend-ivr"', 1)[0]
    assert "Ожидание агента:" in wait
    assert re.findall(r">[^<>]*мин<", wait) == [">до 1 мин<", ">1 мин – 2 мин<", ">дольше 2 мин<"]
    assert "Разговор:" in talk
    assert re.findall(r">[^<>]*мин<", talk) == [">до 3 мин<", ">3 мин – 5 мин<", ">дольше 5 мин<"]


def test_board_says_when_it_was_updated_in_the_lines_time_zone(
    agent: FlaskClient, clock: Clock
) -> None:
    clock.set(datetime(2026, 11, 26, 20, 57, 7, tzinfo=UTC))
    assert _board(agent)["now_local"] == "23:57:07"  # Moscow, whatever the browser's zone


def test_unknown_caller_gets_recent_calls_from_the_same_number(
    agent: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        for days in (1, 2, 3, 4, 5, 6):
            add_call(
                session,
                caller_e164="+74951234567",
                status="ended_ivr",
                decision="unknown_caller",
                arrived_at=NOW - timedelta(days=days),
            )
        add_call(session, caller_e164="+74951234567", arrived_at=NOW - timedelta(seconds=5))
    [call] = _board(agent)["calls"]
    assert call["customer"] is None
    assert [item["at"][:2] for item in call["recent"]] == ["25", "24", "23", "22"]
    assert {item["decision_label"] for item in call["recent"]} == {"Не опознан"}


def test_board_page_is_a_shell_with_an_external_script(agent: FlaskClient) -> None:
    page = agent.get("/").get_data(as_text=True)
    assert 'data-url="/api/board"' in page
    assert re.search(r'<script src="/static/live\.js[^"]*" defer></script>', page)
    assert not re.search(r"<script>(?!</script>)", page)  # no inline script anywhere
    with agent.get("/static/live.js") as script:
        assert script.status_code == 200
        assert script.headers["Content-Type"].startswith("text/javascript")


def test_asterisks_unknown_caller_id_is_not_shown_as_a_name_or_number(
    agent: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    # What Asterisk sends for a caller without caller ID: agi_callerid/agi_calleridname unknown.
    with sessions.begin() as session:
        add_call(session, status="queued", callerid_name="unknown", arrived_at=NOW)
        add_call(
            session,
            status="queued",
            callerid_name="unknown",
            callerid_raw="unknown",
            caller_e164=None,
            arrived_at=NOW - timedelta(seconds=5),
        )
    hidden, named = _board(agent)["calls"]  # oldest first
    assert (named["caller"]["name"], named["caller"]["display"]) == ("", "+7 499 719-55-81")
    assert (hidden["caller"]["name"], hidden["caller"]["display"]) == ("", "")


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_caller_names_are_text_everywhere(
    agent: FlaskClient, sessions: sessionmaker[Session], name: str
) -> None:
    with sessions.begin() as session:
        call = add_call(
            session,
            status="queued",
            callerid_name=name,
            callerid_raw=name,
            digits=name,
            arrived_at=NOW - timedelta(seconds=5),
        )
        call_id = call.id
    assert _board(agent)["calls"][0]["caller"]["name"] == name  # JSON carries it as data
    for path in ("/calls", f"/calls/{call_id}"):
        page = agent.get(path).get_data(as_text=True)
        assert str(escape(name)) in page  # shown, as text, not evaluated as a template
        assert "<script>alert" not in page and "<img src=x" not in page
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Call)) == 1
        assert session.scalar(select(Call.callerid_name)) == name


def test_hostile_names_are_escaped_in_html(
    agent: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        call_id = add_call(session, callerid_name="<script>alert(1)</script>").id
    page = agent.get(f"/calls/{call_id}").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# --- my call -------------------------------------------------------------------------------


def test_my_call_pops_the_call_answered_on_my_phone(
    agent: FlaskClient, sessions: sessionmaker[Session], customer_id: int
) -> None:
    with sessions.begin() as session:
        add_call(
            session,
            customer_id=customer_id,
            status="talking",
            arrived_at=NOW - timedelta(minutes=2),
            answered_at=NOW - timedelta(seconds=30),
            agent_interface="PJSIP/101",
            decision="free_first_year",
            explanation="Бесплатно: первый год после покупки (OneRPA Studio), до 12.03.2027",
        )
        add_call(
            session,
            status="talking",
            arrived_at=NOW - timedelta(minutes=1),
            answered_at=NOW - timedelta(seconds=10),
            agent_interface="PJSIP/102",
        )
    data = agent.get("/api/my-call").get_json()
    assert data["linked"] is True and data["interface"] == "PJSIP/101"
    assert data["call"]["customer"]["organisation"] == "ООО Ромашка"
    assert data["call"]["timer"] == data["call"]["timer"] | {"phase": "talk", "elapsed_seconds": 30}
    page = agent.get("/my-call").get_data(as_text=True)
    assert 'data-url="/api/my-call"' in page
    assert "не связан с телефоном" not in page


def test_my_call_matches_the_queue_member_name(
    app: Flask, agent: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        add_call(session, status="talking", answered_at=NOW, arrived_at=NOW, agent="Борис")
    boris = app.test_client()
    sign_in(boris, "boris", PASSWORD)
    assert boris.get("/api/my-call").get_json()["call"]["agent"] == "Борис"
    assert agent.get("/api/my-call").get_json()["call"] is None


def test_my_call_says_when_no_phone_is_linked(
    app: Flask, agent: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    gleb = app.test_client()
    sign_in(gleb, "gleb", PASSWORD)
    data = gleb.get("/api/my-call").get_json()
    assert (data["linked"], data["call"], data["last"]) == (False, None, None)
    assert "не связан с телефоном" in gleb.get("/my-call").get_data(as_text=True)


def test_my_call_offers_the_wrap_up_of_the_last_call(
    agent: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        call_id = add_call(
            session,
            status="completed",
            arrived_at=NOW - timedelta(minutes=10),
            answered_at=NOW - timedelta(minutes=9),
            ended_at=NOW - timedelta(minutes=2),
            agent_interface="PJSIP/101",
        ).id
    data = agent.get("/api/my-call").get_json()
    assert data["call"] is None
    assert data["last"] | {"ended_at": None} == {
        "id": call_id,
        "url": f"/calls/{call_id}",
        "organisation": "",
        "caller": "+7 499 719-55-81",
        "ended_at": None,
        "wrapped_up": False,
    }
    with sessions.begin() as session:
        session.add(Wrapup(call_id=call_id, username="anna", topic="howto", about_onerpa=True))
    assert agent.get("/api/my-call").get_json()["last"]["wrapped_up"] is True


def test_recent_calls_are_kept_a_few_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    moment = [1000.0]
    monkeypatch.setattr(board.time, "monotonic", lambda: moment[0])
    cache = board.RecentCache(ttl=10)
    cache.put_many({("customer", 1): []})
    assert cache.get_many({("customer", 1), ("customer", 2)}) == {("customer", 1): []}
    moment[0] += 11
    assert cache.get_many({("customer", 1)}) == {}
    off = board.RecentCache(ttl=0)
    off.put_many({("customer", 1): []})
    assert off.get_many({("customer", 1)}) == {}
