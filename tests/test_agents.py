"""Agent line state: what a supervisor sees for each queue member, line-time figures, metrics."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from dashboard.testing import Clock, add_call, add_user, make_app, signed_in
from onerpa import agents
from onerpa.agents import Line
from onerpa.ami import FrameReader, QueueEntry, QueueMember
from onerpa.metrics import LineCollector
from onerpa.models import AgentPause, AgentSession
from onerpa.settings import Settings
from tests.amifake import read_session, received_bytes

T = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)  # 09:00 in Moscow, a Thursday


def recorded_members() -> dict[str, QueueMember]:
    """The member as QueueStatus listed it in each state of ami_03 (real Asterisk 22)."""
    messages = FrameReader().feed(received_bytes(read_session("ami_03_queue_status.txt", "Q")))
    found = {}
    for message in messages:
        if message.event == "QueueMember":
            found[message["ActionID"].removeprefix("qs-").removeprefix("support-")] = (
                QueueMember.from_message(message)
            )
    return found


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("idle", "free"),
        ("paused", "paused"),
        # A Local state interface reports "in use" while ringing: a phone on another call.
        ("ringing", "busy"),
        ("incall", "talking"),
        ("all-twowaiting", "paused"),
    ],
)
def test_each_recorded_member_state_reads_as_the_supervisor_expects(
    state: str, expected: str
) -> None:
    assert agents.member_state(recorded_members()[state]) == expected


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"status": 6}, "ringing"),  # a SIP phone ringing
        ({"status": 5}, "unavailable"),  # phone not registered
        ({"status": 2, "in_call": True, "paused": True}, "talking"),  # paused mid-call
    ],
)
def test_phone_states_of_sip_phones(changes: dict, expected: str) -> None:
    member = dataclasses.replace(recorded_members()["idle"], **changes)
    assert agents.member_state(member) == expected


def test_unknown_pause_reasons_show_as_other() -> None:
    assert agents.reason_code("Lunch break") == "other"
    assert agents.reason_code("training") == "training"


def _entry(wait: int) -> QueueEntry:
    return QueueEntry("onerpa-support", 1, "PJSIP/trunk-1", "1.1", "+79161234567", "", wait)


def test_metrics_count_agents_by_state_and_the_longest_wait() -> None:
    members = recorded_members()
    line = Line(
        "onerpa-support",
        members=(members["idle"], members["paused"], members["incall"]),
        entries=(_entry(75), _entry(12)),
    )
    registry = CollectorRegistry()
    LineCollector(lambda: line, Settings().calendar, registry=registry, clock=lambda: T)
    value = registry.get_sample_value
    assert value("onerpa_support_agents", {"state": "free"}) == 1
    assert value("onerpa_support_agents", {"state": "paused"}) == 1
    assert value("onerpa_support_agents", {"state": "talking"}) == 1
    assert value("onerpa_support_callers_waiting") == 2
    assert value("onerpa_support_longest_wait_seconds") == 75
    assert value("onerpa_support_ami_up") == 1
    assert value("onerpa_support_line_open") == 1


def test_metrics_say_when_ami_is_down_and_when_the_line_is_closed() -> None:
    registry = CollectorRegistry()
    night = T.replace(hour=20)
    down = Line("onerpa-support", agents.UNREACHABLE)
    LineCollector(lambda: down, Settings().calendar, registry=registry, clock=lambda: night)
    assert registry.get_sample_value("onerpa_support_ami_up") == 0
    assert registry.get_sample_value("onerpa_support_line_open") == 0
    assert registry.get_sample_value("onerpa_support_agents", {"state": "free"}) == 0


def test_line_time_pauses_by_reason_and_occupancy(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        add_user(session, "anna", "agent", interface="PJSIP/101")
        on = AgentSession(
            username="anna",
            interface="PJSIP/101",
            member_name="Анна",
            queue="onerpa-support",
            started_at=T,
            ended_at=T + timedelta(hours=4),
            ended_by="agent",
        )
        session.add(on)
        session.flush()
        session.add_all(
            [
                AgentPause(
                    session_id=on.id,
                    reason="lunch",
                    started_at=T + timedelta(hours=2),
                    ended_at=T + timedelta(hours=2, minutes=45),
                ),
                AgentPause(
                    session_id=on.id,
                    reason="technical",
                    started_at=T + timedelta(hours=3),
                    ended_at=T + timedelta(hours=3, minutes=15),
                ),
            ]
        )
        # 90 minutes of calls while on the line; one call after she left does not count.
        for start, minutes in ((0, 30), (60, 60), (300, 10)):
            answered = T + timedelta(minutes=start)
            add_call(
                session,
                status="completed",
                agent_interface="PJSIP/101",
                arrived_at=answered,
                answered_at=answered,
                ended_at=answered + timedelta(minutes=minutes),
            )
    with sessions() as session:
        [row] = agents.line_figures(session, T, T + timedelta(days=1), T + timedelta(days=1))
    assert row.member_name == "Анна"
    assert row.logged_in == 4 * 3600
    assert row.paused == {"lunch": 45 * 60, "technical": 15 * 60}
    assert row.on_line == 3 * 3600
    assert row.talking == 90 * 60
    assert row.occupancy == pytest.approx(0.5)


def test_the_figures_page_shows_each_agents_line_time(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        add_user(session, "vera", "supervisor")
        session.add(
            AgentSession(
                username="anna",
                interface="PJSIP/101",
                member_name="Анна",
                queue="onerpa-support",
                started_at=T,
                ended_at=T + timedelta(hours=2),
                ended_by="agent",
            )
        )
    app = make_app(engine, Clock(T + timedelta(hours=5)))
    page = signed_in(app, "vera", "correct horse").get("/figures?period=today")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Время на линии" in html and "Перерыв: обед" in html
    assert '<td class="on-line">2:00:00</td>' in html
