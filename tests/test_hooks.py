"""The agent-connect and hang-up hooks, replayed from real Asterisk 22.10.1 recordings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ivr.emulator import EmulatedCall
from ivr.routes import ROUTES, agent_connect, hangup, hooks
from ivr.services import Services
from onerpa import figures
from onerpa.models import Call
from onerpa.queuelog import Ingester
from onerpa.recorder import CallRecorder
from onerpa.settings import Settings
from onerpa.timing import Targets
from tests import scenarios
from tests.flowkit import support_line

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

    def __init__(self, engine: Engine, name: str, *, decided: bool = True) -> None:
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
        self.arrived = self.joined - timedelta(seconds=20)
        stored = {"uniqueid": self.uniqueid, "linkedid": self.uniqueid, "arrived_at": self.arrived}
        if decided:  # else the call flow's decision never reached the database
            stored |= {"decided_at": self.joined, "decision": "free_first_year"}
            stored |= {"status": "queued", "queued_at": self.joined}
        self.recorder.record("call-1", **stored)

    def hook(
        self, name: str, *, call_id: str = "call-1", hidden: tuple = (), changed: dict | None = None
    ) -> None:
        session = self.recording.sessions[name]
        second = session.variables["LINKEDID"] if name == "connected" else self.uniqueid
        self.now = session.accepted
        route = ROUTES["agent-connect" if name == "connected" else "hangup"]
        channel = RecordedChannel(session, [call_id, second], hidden)
        channel.variables.update(changed or {})
        route(channel, self.services)  # type: ignore[arg-type]

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


@pytest.mark.parametrize(
    ("name", "ended_by"),
    [("scenario_6a_agi_completecaller", "caller"), ("scenario_6b_agi_completeagent", "agent")],
)
def test_queue_log_read_before_the_hang_up_still_names_who_ended_the_call(
    engine: Engine, name: str, ended_by: str
) -> None:
    # Regression: the follower can read COMPLETE* before the hang-up hook arrives; the
    # hook's empty ender (Local channels: no hangupsource) must not erase it.
    replay = Replay(engine, name)
    replay.hook("connected")
    replay.queue_log()
    replay.hook("hangup")
    call = replay.stored()
    assert (call.status, call.ended_by) == ("completed", ended_by)
    assert call.ended_at == replay.accepted("hangup")  # the hook's precise end wins


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


def test_queue_entry_is_the_queues_wait_before_the_talk_not_the_channels_life(
    engine: Engine,
) -> None:
    # The call flow's decision never reached the database and the agent-connect hook was
    # missed: only the hang-up can say when the caller entered the queue. The caller spent
    # 20 s in the IVR first, so DIALEDTIME (the channel's whole life in 22.10.1) is 20 s
    # more than recorded here, where Queue() ran as soon as the channel existed.
    replay = Replay(engine, "scenario_6a_agi_completecaller", decided=False)
    replay.hook("hangup", changed={"DIALEDTIME": "27", "DIALEDTIME_MS": "27025"})
    call = replay.stored()
    hung_up = replay.accepted("hangup")
    assert call.queued_at == hung_up - timedelta(milliseconds=5018 + 2000)
    with Session(engine) as session:
        day = (replay.arrived - timedelta(hours=1), replay.arrived + timedelta(hours=1))
        shown = figures.compute(session, *day, targets=Targets())
    assert shown.asa_seconds == pytest.approx(2.0, abs=0.01)  # not 22 s: the IVR is no wait


@pytest.mark.parametrize(
    ("values", "before_hang_up_ms"),
    [
        # The project's dialplan on 22.10.1: 4.5 s in Queue(), 18.6 s of channel life.
        ({"QUEUEWAIT": "2", "QUEUEWAIT_MS": "2000", "ANSWEREDTIME": "2", "ANSWEREDTIME_MS": "2500",
          "DIALEDTIME": "18", "DIALEDTIME_MS": "18596", "MEMBERINTERFACE": "PJSIP/101"}, 4500),
        # Abandoned: QUEUEWAIT runs to the hang-up, ANSWEREDTIME is 0 (scenario_6c).
        ({"QUEUEWAIT": "4", "QUEUEWAIT_MS": "4000", "ANSWEREDTIME": "0", "ANSWEREDTIME_MS": "0",
          "DIALEDTIME": "24", "DIALEDTIME_MS": "24024", "ABANDONED": "TRUE"}, 4000),
        # Queue() timed out and returned: the busy message played before the hang-up.
        ({"QUEUEWAIT": "12", "QUEUEWAIT_MS": "12000", "ANSWEREDTIME": "0", "DIALEDTIME": "32",
          "ABANDONED": "TRUE", "QUEUESTATUS": "TIMEOUT"}, None),
        # An older Asterisk: no queue times at all.
        ({"ABANDONED": "TRUE"}, None),
    ],
)  # fmt: skip
def test_hang_up_places_the_queue_entry_by_queuewait_only(
    values: dict[str, str], before_hang_up_ms: int | None
) -> None:
    now = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    change = hangup.hangup_change(now, values, caller_channel="PJSIP/trunk-00000001")
    expected = (
        None if before_hang_up_ms is None else now - timedelta(milliseconds=before_hang_up_ms)
    )
    assert change.fills.get("queued_at") == expected


# --- HANGUPCAUSE ----------------------------------------------------------------------------

OPEN = datetime.fromisoformat("2026-11-26T11:00:00+03:00")  # a Thursday, the line is open


def test_hang_up_records_the_cause_a_real_asterisk_gave(engine: Engine) -> None:
    replay = Replay(engine, "scenario_6a_agi_completecaller")
    replay.hook("connected")
    replay.hook("hangup")
    assert replay.stored().hangup_cause == 16  # HANGUPCAUSE=16 in the recording


@pytest.mark.parametrize(
    ("cause", "variables"),
    [
        (16, {"ANSWEREDTIME": "95", "MEMBERINTERFACE": "PJSIP/101", "QUEUEWAIT": "12"}),
        (34, {"QUEUESTATUS": "TIMEOUT", "ABANDONED": "TRUE", "QUEUEWAIT": "180"}),
        (38, {"ANSWEREDTIME": "40", "MEMBERINTERFACE": "PJSIP/102", "QUEUEWAIT": "3"}),
    ],
)
def test_hang_up_handler_records_the_cause_with_the_call(
    engine: Engine, cause: int, variables: dict[str, str]
) -> None:
    with support_line(engine, OPEN) as line:
        queued = line.call("+7 495 123-45-67", keys=["2"])
        call_id = queued.variables["ONERPA_CALL_ID"]
        uniqueid = queued.env["agi_uniqueid"]
        EmulatedCall(
            args=[call_id, uniqueid],
            uniqueid=uniqueid,
            context="onerpa-hangup",
            variables={"ONERPA_CALL_ID": call_id, **variables},
            dead_at_start=True,
            hangup_cause=cause,
        ).run_fastagi(line.address, "hangup")
        assert line.services.recorder.flush()
        row = line.record(queued)
    assert row.hangup_cause == cause
    assert row.ended_at == OPEN


@pytest.mark.parametrize(
    ("value", "cause"),
    [("16", 16), ("0", 0), ("127", 127), ("128", None), ("-1", None), ("abc", None),
     ("", None), (None, None), ("9" * 30, None)],
)  # fmt: skip
def test_a_cause_that_is_not_a_q850_code_is_not_recorded(
    value: str | None, cause: int | None
) -> None:
    assert hooks.cause(value) == cause
