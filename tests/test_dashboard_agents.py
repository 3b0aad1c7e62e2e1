"""Agents go on and off the line from the dashboard; supervisors see the queue live.

Asterisk is a fake manager interface that keeps queue state and answers in the bytes of the
recorded Asterisk 22 (tests/amifake.py, checked in test_ami.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from dashboard.agents import monitor
from dashboard.testing import Clock, add_call, add_user, csrf_token, make_app, sign_in
from onerpa.models import AgentPause, AgentSession
from onerpa.settings import Settings
from onerpa.staff import AuditEntry
from tests.amifake import QueueAsterisk

NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)  # a Thursday, 12:30 in Moscow
PASSWORD = "correct horse"
SECRET = "s3cret-for-tests"
QUEUE = "onerpa-support"


@pytest.fixture
def asterisk() -> Iterator[QueueAsterisk]:
    fake = QueueAsterisk(clock=lambda: int(NOW.timestamp()))
    yield fake
    fake.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


def ami_settings(asterisk: QueueAsterisk, **changes: object) -> Settings:
    base = dict(ami_port=asterisk.port, ami_username="onerpa", ami_secret=SECRET)
    return replace(Settings(), **{**base, **changes})


@pytest.fixture
def app(engine: Engine, clock: Clock, asterisk: QueueAsterisk) -> Iterator[Flask]:
    app = make_app(engine, clock, SETTINGS=ami_settings(asterisk), AMI_CACHE_SECONDS=0)
    yield app
    monitor(app).close()


@pytest.fixture
def people(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions.begin() as session:
        anna = add_user(session, "anna", "agent", PASSWORD, interface="PJSIP/101")
        anna.member_name = "Анна"
        boris = add_user(session, "boris", "agent", PASSWORD, interface="PJSIP/102")
        add_user(session, "vera", "supervisor", PASSWORD)
        return {"anna": anna.id, "boris": boris.id}


def client_for(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    sign_in(client, username, PASSWORD)
    return client


def press(client: FlaskClient, path: str, **data: str) -> str:
    """Press a button of the line page, as the browser posts it; return the page after."""
    token = csrf_token(client.get("/agents").get_data(as_text=True))
    response = client.post(path, data={"csrf_token": token, **data}, follow_redirects=True)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def line(client: FlaskClient) -> dict:
    response = client.get("/api/line")
    assert response.status_code == 200
    return response.get_json()


def by_name(data: dict) -> dict[str, dict]:
    return {agent["name"]: agent for agent in data["agents"]}


def stored(sessions: sessionmaker[Session]) -> list[tuple]:
    with sessions() as session:
        rows = session.scalars(select(AgentSession).order_by(AgentSession.id)).all()
        return [(r.username, r.interface, r.ended_at is None, r.ended_by) for r in rows]


def test_an_agent_goes_on_the_line_pauses_comes_back_and_leaves(
    app: Flask, asterisk: QueueAsterisk, people: dict, sessions: sessionmaker[Session], clock: Clock
) -> None:
    anna = client_for(app, "anna")
    page = press(anna, "/agents/on")
    assert "Вы на линии." in page
    member = asterisk.member("PJSIP/101")
    assert (member.name, member.state_interface, member.paused) == ("Анна", "PJSIP/101", False)
    assert stored(sessions) == [("anna", "PJSIP/101", True, None)]
    assert by_name(line(anna))["Анна"]["state"] == "free"

    clock.advance(minutes=30)
    page = press(anna, "/agents/pause", reason="lunch")
    assert "Перерыв: обед." in page
    assert (member.paused, member.reason) == (True, "lunch")  # the code, also in queue_log
    paused = by_name(line(anna))["Анна"]
    assert paused["state"] == "paused" and paused["reason"]["label"] == "обед"

    clock.advance(minutes=20)
    assert "Вы снова на линии." in press(anna, "/agents/back")
    assert not member.paused
    clock.advance(minutes=10)
    assert "Вы ушли с линии." in press(anna, "/agents/off")
    assert "PJSIP/101" not in asterisk.queues[QUEUE].members
    assert stored(sessions) == [("anna", "PJSIP/101", False, "agent")]
    with sessions() as session:
        [lunch] = session.scalars(select(AgentPause)).all()
        assert (lunch.reason, lunch.ended_at - lunch.started_at) == ("lunch", timedelta(minutes=20))
    assert by_name(line(anna))["Анна"]["state"] == "off"


def test_ami_down_says_so_and_records_nothing(
    app: Flask, asterisk: QueueAsterisk, people: dict, sessions: sessionmaker[Session]
) -> None:
    anna = client_for(app, "anna")
    asterisk.down()
    page = press(anna, "/agents/on")
    assert "Нет связи с Asterisk (AMI): ничего не изменено" in page
    assert stored(sessions) == []
    data = line(anna)
    assert (data["ok"], data["error"]) == (False, "unreachable")
    assert data["error_text"].startswith("Нет связи с Asterisk (AMI)")
    board = anna.get("/").get_data(as_text=True)
    assert 'id="line"' in board
    # Asterisk is back: the next press works (the client logs in again).
    asterisk.up()
    assert "Вы на линии." in press(anna, "/agents/on")
    assert stored(sessions) == [("anna", "PJSIP/101", True, None)]


def test_a_user_without_the_agent_class_is_refused_with_a_clear_message(
    engine: Engine,
    clock: Clock,
    asterisk: QueueAsterisk,
    people: dict,
    sessions: sessionmaker[Session],
) -> None:
    asterisk.users["onerpa"] = (SECRET, set())  # write = (nothing)
    app = make_app(engine, clock, SETTINGS=ami_settings(asterisk), AMI_CACHE_SECONDS=0)
    page = press(client_for(app, "anna"), "/agents/on")
    monitor(app).close()
    assert "нет права менять очередь (нужно write = agent" in page
    assert stored(sessions) == []


def test_without_a_secret_the_dashboard_says_ami_is_not_configured(
    engine: Engine, clock: Clock, people: dict
) -> None:
    app = make_app(engine, clock)
    anna = client_for(app, "anna")
    assert line(anna)["error"] == "not_configured"
    assert "AMI не настроен" in anna.get("/agents").get_data(as_text=True)
    assert "AMI не настроен" in press(anna, "/agents/on")


def test_the_board_shows_callers_waiting_and_agents_ringing_and_talking(
    app: Flask, asterisk: QueueAsterisk, people: dict, sessions: sessionmaker[Session]
) -> None:
    vera = client_for(app, "vera")
    press(client_for(app, "anna"), "/agents/on")
    press(client_for(app, "boris"), "/agents/on")
    asterisk.add_caller("+79161234567", waited=75)
    asterisk.add_caller("+79035550142", waited=20)
    asterisk.ring("PJSIP/101")
    data = line(vera)
    assert [(c["position"], c["number"], c["wait_state"]) for c in data["callers"]] == [
        (1, "+7 916 123-45-67", "amber"),  # past the 60 s answer target
        (2, "+7 903 555-01-42", "ok"),
    ]
    assert data["summary"]["longest_wait_seconds"] == 75
    assert data["summary"]["free_agents"] == 1 and data["summary"]["callers_per_free_agent"] == 2.0
    assert by_name(data)["Анна"]["state_label"] == "звонит телефон"

    with sessions.begin() as session:
        add_call(
            session,
            status="talking",
            agent_interface="PJSIP/101",
            answered_at=NOW - timedelta(seconds=40),
            callerid_raw="+79161234567",
            caller_e164="+79161234567",
        )
    asterisk.connect("PJSIP/101")
    talking = by_name(line(vera))["Анна"]
    assert talking["state"] == "talking" and talking["with"] == "+7 916 123-45-67"
    assert talking["since_ms"] == int((NOW - timedelta(seconds=40)).timestamp() * 1000)
    assert [c["number"] for c in line(vera)["callers"]] == ["+7 903 555-01-42"]


def test_a_supervisor_takes_an_agent_off_the_line_and_it_is_audited(
    app: Flask, asterisk: QueueAsterisk, people: dict, sessions: sessionmaker[Session]
) -> None:
    press(client_for(app, "anna"), "/agents/on")
    vera = client_for(app, "vera")
    page = press(vera, f"/agents/{people['anna']}/off")
    assert "снят(а) с линии" in page
    assert asterisk.queues[QUEUE].members == {}
    assert stored(sessions)[0][2:] == (False, "supervisor")
    with sessions() as session:
        [entry] = session.scalars(select(AuditEntry)).all()
        assert (entry.username, entry.action, entry.target_id) == (
            "vera",
            "agent.off_line",
            str(people["anna"]),
        )
    boris = client_for(app, "boris")
    token = csrf_token(boris.get("/agents").get_data(as_text=True))
    refused = boris.post(f"/agents/{people['anna']}/off", data={"csrf_token": token})
    assert refused.status_code == 403


def test_the_record_follows_asterisk_after_a_restart(
    app: Flask, asterisk: QueueAsterisk, people: dict, sessions: sessionmaker[Session]
) -> None:
    anna = client_for(app, "anna")
    press(anna, "/agents/on")
    # Asterisk restarted and restored its persistent members, but Anna is gone (removed at
    # the CLI) and Boris is back, paused, from before: the record follows what Asterisk says.
    asterisk.queues[QUEUE].members.clear()
    boris_login = int((NOW - timedelta(hours=1)).timestamp())
    from tests.amifake import FakeMember

    asterisk.queues[QUEUE].members["PJSIP/102"] = FakeMember(
        "Boris",
        "PJSIP/102",
        "PJSIP/102",
        boris_login,
        paused=True,
        reason="training",
        last_pause=boris_login + 600,
    )
    data = line(anna)
    assert by_name(data)["Анна"]["state"] == "off"
    assert by_name(data)["Boris"]["reason"]["label"] == "обучение"
    assert stored(sessions) == [
        ("anna", "PJSIP/101", False, "asterisk"),
        ("boris", "PJSIP/102", True, None),
    ]
    with sessions() as session:
        [boris] = session.scalars(select(AgentSession).where(AgentSession.username == "boris"))
        assert boris.started_at == NOW - timedelta(hours=1)
        [pause] = session.scalars(select(AgentPause)).all()
        assert pause.reason == "training"
