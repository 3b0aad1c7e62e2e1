"""Nobody on the line: callers the queue turns away because every agent is paused or
unavailable, replayed from real Asterisk 22.10.1 recordings (scenario_5a_joinempty,
scenario_5b_exitempty). They are their own outcome, not abandoned calls."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from dashboard import labels
from ivr.routes import ROUTES
from ivr.services import Services
from onerpa import figures
from onerpa.metrics import DatabaseCollector
from onerpa.models import Call
from onerpa.queuelog import Ingester
from onerpa.recorder import CallRecorder
from onerpa.settings import Settings
from onerpa.timing import Targets
from tests import scenarios

CALLER = re.compile(r"^([\d.]+) (Local/\w+@caller-phone-\w+;1): (.*)$")


class Channel:
    """The caller's channel in the hang-up handler: it answers GET VARIABLE and nothing else."""

    def __init__(self, env: dict[str, str], args: list[str], variables: dict[str, str]) -> None:
        self.env, self.args, self.variables = env, args, variables

    def get_variable(self, name: str) -> str | None:
        return self.variables.get(name) or None

    def set_variable(self, name: str, value: str) -> None:
        raise AssertionError("a hook must not touch the channel")


class TurnedAway:
    """A recording of a caller the queue turned away, replayed on a call the IVR queued."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.recording = scenarios.load(name)
        text = (scenarios.QUEUE_DIR / f"{name}.txt").read_text(encoding="utf-8")
        # The variables app_queue left on the caller's channel, as the VarSet events set them.
        self.variables: dict[str, str] = {}
        for line in text.splitlines():
            found = CALLER.match(line)
            if found:
                self.channel = found[2]
                self.variables |= dict(re.findall(r"(\w+)=(\S*)", found[3]))
        hangup = next(
            block
            for block in self.recording.ami
            if block.get("Event") == "Hangup" and block.get("Channel") == self.channel
        )
        self.uniqueid = hangup["Uniqueid"]
        self.hung_up = scenarios.utc(hangup["Timestamp"])
        self.routed = self.hung_up - timedelta(seconds=1)
        self.now = self.hung_up
        self.recorder = CallRecorder(engine)
        self.recorder.record(
            "call-1",
            uniqueid=self.uniqueid,
            linkedid=self.uniqueid,
            arrived_at=self.routed - timedelta(seconds=25),
            decided_at=self.routed,
            decision="free_first_year",
            status="queued",
            queued_at=self.routed,
        )
        self.services = Services(
            settings=Settings(),
            directory=None,  # type: ignore[arg-type]  # the hooks never look customers up
            recorder=self.recorder,
            clock=lambda: self.now,
        )

    def hook(self) -> None:
        env = {"agi_channel": self.channel, "agi_uniqueid": self.uniqueid}
        channel = Channel(env, ["call-1", self.uniqueid], self.variables)
        ROUTES["hangup"](channel, self.services)  # type: ignore[arg-type]

    def queue_log(self) -> None:
        assert self.recorder.flush()
        Ingester(self.engine, grace=0).feed(self.recording.queue_log)

    def stored(self) -> Call:
        assert self.recorder.flush()
        self.recorder.close()
        with self.engine.connect() as conn:
            return conn.execute(select(Call).where(Call.call_ref == "call-1")).one()

    def figures(self) -> figures.Figures:
        day = (self.routed - timedelta(hours=1), self.routed + timedelta(hours=1))
        with Session(self.engine) as session:
            return figures.compute(session, *day, targets=Targets())


@pytest.mark.parametrize(
    ("name", "queuestatus", "order"),
    [
        ("scenario_5a_joinempty", "JOINEMPTY", ("hook",)),  # no queue_log line at all
        ("scenario_5b_exitempty", "LEAVEEMPTY", ("hook", "queue_log")),
        ("scenario_5b_exitempty", "LEAVEEMPTY", ("queue_log", "hook")),
        ("scenario_5b_exitempty", "LEAVEEMPTY", ("queue_log",)),  # the hook was missed
    ],
)
def test_caller_turned_away_for_want_of_agents_is_no_agents_not_abandoned(
    engine: Engine, name: str, queuestatus: str, order: tuple[str, ...]
) -> None:
    replay = TurnedAway(engine, name)
    assert replay.variables["QUEUESTATUS"] == queuestatus  # what the recording says
    for step in order:
        getattr(replay, step)()
    call = replay.stored()
    assert (call.status, call.ended_by, call.answered_at) == ("no_agents", "system", None)
    expected_end = replay.hung_up if "hook" in order else scenarios.utc(1795696791)
    assert call.ended_at == expected_end
    shown = replay.figures()
    assert (shown.offered, shown.no_agents, shown.abandoned_queue) == (1, 1, 0)
    # Not in the service level nor among the abandoned: Asterisk keeps no record of them.
    assert (shown.service_level, shown.service_level2) == (None, None)
    assert labels.status_label(call.status) == "Нет агентов на линии"


def test_turned_away_callers_leave_the_service_level_alone(engine: Engine) -> None:
    replay = TurnedAway(engine, "scenario_5a_joinempty")
    replay.recorder.record(
        "answered",
        arrived_at=replay.routed - timedelta(seconds=30),
        queued_at=replay.routed - timedelta(seconds=20),
        answered_at=replay.routed - timedelta(seconds=10),
        ended_at=replay.routed,
        decision="free_first_year",
        status="completed",
    )
    replay.hook()
    replay.stored()
    shown = replay.figures()
    assert (shown.offered, shown.answered, shown.no_agents) == (2, 1, 1)
    assert (shown.service_level, shown.service_level2) == (1.0, 1.0)


def test_turned_away_calls_are_counted_for_the_alert_from_zero(engine: Engine) -> None:
    registry = CollectorRegistry()
    DatabaseCollector(engine, Targets(), registry=registry)
    calls = "onerpa_support_calls_total"
    turned_away = {"decision": "free_first_year", "outcome": "no_agents"}
    # Exported at 0 before any such call, so that the alert's increase() sees the first one.
    assert registry.get_sample_value(calls, turned_away) == 0.0
    replay = TurnedAway(engine, "scenario_5a_joinempty")
    replay.hook()
    replay.stored()
    assert registry.get_sample_value(calls, turned_away) == 1.0
    # No wait for an agent, and nothing for the service level.
    waits = "onerpa_support_queue_wait_seconds_count"
    assert registry.get_sample_value(waits, {"outcome": "abandoned"}) == 0.0
    sl = "onerpa_support_service_level_calls_total"
    for within in ("true", "false"):
        assert registry.get_sample_value(sl, {"outcome": "abandoned", "within_target": within}) == 0
