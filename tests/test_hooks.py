"""The agent-connect and hang-up hooks, replayed from real Asterisk 22.10.1 recordings."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from ivr.routes import ROUTES, agent_connect, hangup
from ivr.services import Services
from onerpa.models import Call
from onerpa.queuelog import Ingester
from onerpa.recorder import CallRecorder
from onerpa.settings import Settings
from tests import scenarios

NEWER_ONLY = ("QUEUEWAIT", "QUEUEWAIT_MS", "ANSWEREDTIME", "ANSWEREDTIME_MS", "DIALEDTIME")
NEWER_ONLY += ("DIALEDTIME_MS",)
ALIASES = {"CHANNEL(linkedid)": "LINKEDID", "CHANNEL(hangupsource)": "HANGUPSOURCE"}


class RecordedChannel:
    """A channel that answers GET VARIABLE with what the recording saw, and nothing else."""

    def __init__(self, session: scenarios.Session, args: list[str], hidden: tuple = ()) -> None:
        self.env = session.env
        self.args = args
        self.script = session.env["agi_network_script"]
        self.variables = {k: v for k, v in session.variables.items() if k not in hidden}

    def get_variable(self, name: str) -> str | None:
        return self.variables.get(ALIASES.get(name, name)) or None

    def set_variable(self, name: str, value: str) -> None:
        raise AssertionError("a hook must not touch the channel")


class Replay:
    """Store a queued call as the call flow would, then play a recording's hooks on it."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.recording = scenarios.load(name)
        join = self.recording.ami_event("QueueCallerJoin")
        self.uniqueid = join["Uniqueid"]
        self.joined = scenarios.utc(join["Timestamp"])
        self.now = self.joined
        self.recorder = CallRecorder(engine)
        self.services = Services(
            settings=Settings(),
            directory=None,  # type: ignore[arg-type]  # the hooks never look customers up
            recorder=self.recorder,
            clock=lambda: self.now,
        )
        self.recorder.record(
            "call-1",
            uniqueid=self.uniqueid,
            linkedid=self.uniqueid,
            arrived_at=self.joined - timedelta(seconds=20),
            decided_at=self.joined,
            decision="free_first_year",
            status="queued",
            queued_at=self.joined,
        )

    def hook(self, name: str, *, call_id: str = "call-1", hidden: tuple = ()) -> None:
        session = self.recording.sessions[name]
        second = session.variables["LINKEDID"] if name == "connected" else self.uniqueid
        self.now = session.accepted
        route = ROUTES["agent-connect" if name == "connected" else "hangup"]
        route(RecordedChannel(session, [call_id, second], hidden), self.services)  # type: ignore[arg-type]

    def queue_log(self) -> None:
        self.recorder.flush()
        Ingester(self.engine, grace=0).feed(self.recording.queue_log)

    def stored(self) -> Call:
        assert self.recorder.flush()
        self.recorder.close()
        with self.engine.connect() as conn:
            return conn.execute(select(Call).where(Call.call_ref == "call-1")).one()

    def accepted(self, name: str) -> datetime:
        return self.recording.sessions[name].accepted


def test_routes_are_registered_under_the_dialplan_script_names() -> None:
    assert ROUTES["agent-connect"] is agent_connect.run
    assert ROUTES["hangup"] is hangup.run


@pytest.mark.parametrize(
    ("name", "ended_by", "answered_ms"),
    [
        ("scenario_6a_agi_completecaller", "caller", 5018),
        ("scenario_6b_agi_completeagent", "agent", 5503),
    ],
)
def test_answered_call_gets_the_hooks_millisecond_times(
    engine: Engine, name: str, ended_by: str, answered_ms: int
) -> None:
    replay = Replay(engine, name)
    replay.hook("connected")
    replay.hook("hangup")
    replay.queue_log()
    call = replay.stored()
    assert call.status == "completed"
    assert call.answered_at == replay.accepted("connected")
    assert call.ended_at == replay.accepted("hangup")
    assert (call.agent, call.agent_interface) == ("Agent One", "Local/agent1@agents/n")
    # who hung up: CHANNEL(hangupsource) is empty on Local channels, the queue_log says
    assert call.ended_by == ended_by
    consultation = (call.ended_at - call.answered_at).total_seconds() * 1000
    assert consultation == pytest.approx(answered_ms, abs=5)  # Asterisk's ANSWEREDTIME_MS
    assert (call.answered_at - call.queued_at).total_seconds() == pytest.approx(2, abs=0.01)


def test_abandoned_call_ends_in_the_queue_with_its_wait(engine: Engine) -> None:
    replay = Replay(engine, "scenario_6c_agi_abandon")
    replay.hook("hangup")
    replay.queue_log()
    call = replay.stored()
    assert (call.status, call.ended_by, call.answered_at, call.agent) == (
        "abandoned_queue",
        "caller",
        None,
        None,
    )
    assert call.ended_at == replay.accepted("hangup")
    assert (call.ended_at - call.queued_at).total_seconds() == pytest.approx(4.0, abs=0.5)


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("scenario_6a_agi_completecaller", "completed"),
        ("scenario_6c_agi_abandon", "abandoned_queue"),
    ],
)
def test_older_asterisk_without_queue_times_gives_the_same_record(
    engine: Engine, name: str, status: str
) -> None:
    replay = Replay(engine, name)
    if "connected" in replay.recording.sessions:
        replay.hook("connected", hidden=NEWER_ONLY)
    replay.hook("hangup", hidden=NEWER_ONLY + ("ABANDONED",))
    call = replay.stored()
    assert call.status == status
    assert call.ended_at == replay.accepted("hangup")


def test_missing_call_id_finds_the_call_by_the_caller_uniqueid(engine: Engine) -> None:
    replay = Replay(engine, "scenario_6b_agi_completeagent")
    replay.hook("connected", call_id="")
    replay.hook("hangup", call_id="")
    call = replay.stored()
    assert call.status == "completed"
    assert call.answered_at == replay.accepted("connected")


def test_missed_connect_hook_is_made_up_by_the_hang_up_variables(engine: Engine) -> None:
    replay = Replay(engine, "scenario_6a_agi_completecaller")
    replay.hook("hangup")
    call = replay.stored()
    assert call.status == "completed"
    assert call.agent == "Agent One"
    assert call.answered_at == replay.accepted("hangup") - timedelta(milliseconds=5018)


def test_missed_connect_hook_on_an_older_asterisk_is_filled_by_the_queue_log(
    engine: Engine,
) -> None:
    replay = Replay(engine, "scenario_6b_agi_completeagent")
    replay.hook("hangup", hidden=NEWER_ONLY)
    replay.queue_log()
    call = replay.stored()
    assert call.status == "completed"
    assert call.answered_at == scenarios.utc("1795696827")  # CONNECT, whole seconds
    assert call.ended_at == replay.accepted("hangup")  # the hook's stamp stays


def test_missed_hang_up_is_filled_by_the_queue_log(engine: Engine) -> None:
    replay = Replay(engine, "scenario_6a_agi_completecaller")
    replay.hook("connected")
    replay.queue_log()
    call = replay.stored()
    assert (call.status, call.ended_by) == ("completed", "caller")
    assert call.ended_at == scenarios.utc("1795696819")
    assert call.answered_at == replay.accepted("connected")


def test_stray_hook_for_a_call_never_stored_creates_nothing(engine: Engine) -> None:
    replay = Replay(engine, "scenario_6a_agi_completecaller")
    replay.recorder.orphan_grace = 0
    replay.hook("hangup", call_id="not-a-call")
    replay.stored()
    with engine.connect() as conn:
        assert conn.execute(select(Call.call_ref)).scalars().all() == ["call-1"]


def test_hang_up_variables_name_who_ended_the_call() -> None:
    caller = "PJSIP/trunk-00000001"
    cases = [
        ({"CHANNEL(hangupsource)": caller}, None, "caller"),
        (
            {"CHANNEL(hangupsource)": "PJSIP/101-00000002", "MEMBERINTERFACE": "PJSIP/101"},
            True,
            "agent",
        ),
        ({"CHANNEL(hangupsource)": "dialplan/builtin"}, None, "system"),
        ({"QUEUESTATUS": "TIMEOUT", "ABANDONED": "TRUE"}, False, "system"),
        ({"ABANDONED": "TRUE", "QUEUEWAIT": "4"}, False, "caller"),
        ({}, None, None),
    ]
    for values, answered, expected in cases:
        assert hangup.was_answered(values) is answered, values
        assert hangup.ended_by(values, caller, hangup.was_answered(values)) == expected, values


def test_dial_to_sales_is_not_taken_for_a_queue_answer() -> None:
    assert hangup.was_answered({"ANSWEREDTIME": "40", "DIALEDTIME": "45"}) is None
