"""The caller hangs up at every step of the call flow, one case per step.

Every prompt the flow (``ivr/routes/call.py``) can play and every input it waits for is a
step; for each, the call is stored as abandoned in the IVR at the step it reached (or keeps
its routed status when the hang-up comes after a message that ends the call), nothing is
logged as an error, and the same server serves the next caller at once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from ivr import speech
from ivr.emulator import HANG_UP, CallResult, Hangup, Key, Speech
from onerpa.settings import Settings
from tests.conftest import BACKENDS, migrated_database
from tests.flowkit import Line, support_line, with_sales
from tests.reliability_figures import Figures, count_calls, missing_records

pytest_plugins = ["tests.reliability_figures"]

AREA = "hangups"
MSK = ZoneInfo("Europe/Moscow")
THURSDAY_11 = datetime(2026, 11, 26, 11, 0, tzinfo=MSK)
SATURDAY_10 = datetime(2026, 11, 28, 10, 0, tzinfo=MSK)
SHORT_DAY_1630 = datetime(2026, 11, 3, 16, 30, tzinfo=MSK)  # the eve of 4 November
ENTITLED = "+7 495 123-45-67"
NOT_ENTITLED = "+79035550142"
REFUSED = "+78465556307"
STRANGER = ""  # no caller ID: asked for the customer number
UNKNOWN_NUMBER = "+7 926 000-00-00"  # a number no customer has
CALL_FLOW = Path(__file__).resolve().parents[1] / "ivr" / "routes" / "call.py"


@dataclass(frozen=True)
class Step:
    """Where the caller hangs up, and what the record must say afterwards."""

    name: str
    prompt: str  # the prompt playing (or the input asked for) when the caller goes
    caller: str
    keys: list[str | Key] = field(default_factory=list)
    hangup: Hangup | None = None
    at: datetime = THURSDAY_11
    sales: bool = False
    step: str = ""  # the step stored with the call
    status: str = "abandoned_ivr"
    recordings: str = "ok"  # "broken": the recordings folder cannot be created

    def __post_init__(self) -> None:
        if self.hangup is None and HANG_UP not in self.keys:
            object.__setattr__(self, "hangup", Hangup.during(self.prompt))


STEPS = [
    Step("before the answer", "", ENTITLED, hangup=Hangup.before(2), step="arrived"),
    Step("greeting", speech.GREETING, ENTITLED, step="greeting"),
    Step("closed: hours", speech.CLOSED, ENTITLED, at=SATURDAY_10, step="closed"),
    Step("closed: next opening", speech.NEXT_OPEN, ENTITLED, at=SATURDAY_10, step="closed"),
    Step("closed: e-mail", speech.CLOSED_EMAIL, ENTITLED, at=SATURDAY_10, step="closed"),
    Step("closed: short day", speech.SHORT_DAY, ENTITLED, at=SHORT_DAY_1630, step="closed"),
    Step("closed: weekly hours", speech.HOURS, ENTITLED, at=SATURDAY_10, step="closed"),
    Step("number withheld", speech.NUMBER_WITHHELD, STRANGER, step="identify"),
    Step("number unknown", speech.NUMBER_UNKNOWN, UNKNOWN_NUMBER, step="identify"),
    Step("enter number, 1st try", speech.ENTER_NUMBER, STRANGER, step="enter_number"),
    Step("number not found", speech.NUMBER_NOT_FOUND, STRANGER, ["999#"], step="enter_number"),
    Step(
        "enter number, 2nd try", speech.ENTER_NUMBER, STRANGER, ["999#", HANG_UP],
        step="enter_number",
    ),
    Step("not a customer", speech.NOT_CUSTOMER, STRANGER, ["", "12#"], step="enter_number"),
    Step("refused", speech.REFUSED, REFUSED, step="refused"),
    Step("topic menu, 1st try", speech.TOPIC_MENU, ENTITLED, [HANG_UP], step="topic"),
    Step("invalid choice", speech.INVALID_CHOICE, ENTITLED, ["9"], step="topic"),
    Step("topic menu, 2nd try", speech.TOPIC_MENU, ENTITLED, ["9", HANG_UP], step="topic"),
    Step("connecting", speech.CONNECTING, ENTITLED, ["2"], step="topic"),
    Step("bug flagged", speech.BUG_FLAGGED, ENTITLED, ["1"], step="topic"),
    Step("not entitled", speech.NOT_ENTITLED, NOT_ENTITLED, step="not_entitled"),
    Step("bug offer, last prompt", speech.BUG_OFFER, NOT_ENTITLED, step="not_entitled"),
    Step(
        "bug offer, sales next", speech.BUG_OFFER, NOT_ENTITLED, sales=True, step="not_entitled"
    ),
    Step("sales offer", speech.SALES_OFFER, NOT_ENTITLED, sales=True, step="not_entitled"),
    Step("bug flagged, lapsed", speech.BUG_FLAGGED, NOT_ENTITLED, ["1"], step="not_entitled"),
    Step("buy updates", speech.BUY_UPDATES, NOT_ENTITLED, [""], step="not_entitled"),
    # Voice messages: the offer, the goodbye, the instructions, the beep, the confirmations.
    Step("message offer", speech.MESSAGE_OFFER, ENTITLED, [HANG_UP], at=SATURDAY_10,
         step="closed"),
    Step("goodbye", speech.GOODBYE, ENTITLED, [""], at=SATURDAY_10, step="closed"),
    Step("message instructions", speech.MESSAGE_RECORD, ENTITLED, ["1"], at=SATURDAY_10,
         step="closed"),
    Step("at the beep", "beep", ENTITLED, ["1", HANG_UP], at=SATURDAY_10, step="closed"),
    Step("message saved", speech.MESSAGE_SAVED, ENTITLED, ["1", Speech("#", seconds=2)],
         at=SATURDAY_10, step="closed"),
    Step("message empty", speech.MESSAGE_EMPTY, ENTITLED, ["1", "#"], at=SATURDAY_10,
         step="closed"),
    Step("message failed", speech.MESSAGE_FAILED, ENTITLED, ["1"], at=SATURDAY_10,
         step="closed", recordings="broken"),
    Step("message: call back", speech.MESSAGE_CALLBACK, ENTITLED, ["1", Speech("#", seconds=2)],
         at=SATURDAY_10, step="closed"),
    Step("message: contacts", speech.MESSAGE_CONTACTS, STRANGER, ["1", Speech("#", seconds=2)],
         at=SATURDAY_10, step="closed"),
    Step("message: write", speech.MESSAGE_WRITE, STRANGER, ["1", "#"], at=SATURDAY_10,
         step="closed"),
    Step("message offer, not entitled", speech.MESSAGE_OFFER, NOT_ENTITLED, ["", HANG_UP],
         step="not_entitled"),
    Step("message offer, not a customer", speech.MESSAGE_OFFER, STRANGER, ["", "12#", HANG_UP],
         step="enter_number"),
]  # fmt: skip
AFTER_ROUTING = [
    # The last command sets ONERPA_ROUTE. A caller gone by then never reached the queue:
    # abandoned in the menu. One who heard the whole closed message was routed as designed.
    Step("after routing: queue", "", ENTITLED, ["2"], Hangup.before(0), step="routed",
         status="abandoned_ivr"),
    Step("after routing: closed", "", ENTITLED, [], Hangup.before(0), at=SATURDAY_10,
         step="routed", status="ended_ivr"),
]  # fmt: skip


@pytest.fixture(scope="module", params=BACKENDS)
def module_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """One migrated database for the whole table (the cases only add calls)."""
    with migrated_database(request.param, tmp_path_factory.mktemp("hangups")) as engine:
        yield engine


@pytest.fixture(scope="module")
def line(module_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Line]:
    folder = tmp_path_factory.mktemp("recordings")
    (folder / "broken").write_text("a file where the recordings folder should be")
    with support_line(module_engine, THURSDAY_11) as support:
        support.recordings = folder  # type: ignore[attr-defined]
        yield support


def _ring(line: Line, case: Step) -> CallResult:
    line.clock.now = case.at
    folder = line.recordings / case.recordings  # type: ignore[attr-defined]
    settings = replace(Settings(), recordings_dir=str(folder))
    line.services.settings = with_sales(settings) if case.sales else settings
    try:
        return line.call(case.caller, keys=case.keys, hangup=case.hangup)
    finally:
        line.clock.now = THURSDAY_11
        line.services.settings = Settings()


def _check_next_caller_is_served(line: Line) -> CallResult:
    result = line.call(ENTITLED, keys=["2"])
    assert result.variables["ONERPA_ROUTE"] == "queue"
    return result


def _assert_no_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert bad == [], [r.getMessage() for r in bad]


@pytest.mark.parametrize("case", STEPS, ids=[s.name for s in STEPS])
def test_hang_up_at_each_step_is_recorded_at_that_step(
    line: Line, case: Step, figures: Figures, caplog: pytest.LogCaptureFixture
) -> None:
    figures.backend(line.engine)
    result = _ring(line, case)
    row = line.record(result)
    assert result.hung_up and result.status == "HANGUP"
    assert "ONERPA_ROUTE" not in result.variables
    if case.prompt:
        assert result.prompts[-1] == case.prompt  # it was playing (or asking) when they went
    assert (row.status, row.step, row.ended_by) == (case.status, case.step, "caller")
    assert row.ended_at == case.at
    _assert_no_error_logged(caplog)
    following = _check_next_caller_is_served(line)
    figures.add(AREA, faults=1)
    count_calls(figures, AREA, [result, following])
    figures.add(AREA, lost=len(missing_records(line.engine, [row.call_ref])))


@pytest.mark.parametrize("case", AFTER_ROUTING, ids=[s.name for s in AFTER_ROUTING])
def test_hang_up_after_routing_keeps_the_routed_record(
    line: Line, case: Step, figures: Figures, caplog: pytest.LogCaptureFixture
) -> None:
    figures.backend(line.engine)
    rehearsal = _ring(line, replace(case, hangup=None))
    last = len(rehearsal.commands)
    assert rehearsal.commands[-1].startswith("SET VARIABLE ONERPA_ROUTE")
    result = _ring(line, replace(case, hangup=Hangup.before(last)))
    row = line.record(result)
    assert result.hung_up
    assert result.variables["ONERPA_ROUTE"] == rehearsal.variables["ONERPA_ROUTE"]
    assert (row.status, row.step) == (case.status, case.step)
    _assert_no_error_logged(caplog)
    following = _check_next_caller_is_served(line)
    figures.add(AREA, faults=1)
    count_calls(figures, AREA, [rehearsal, result, following])


def test_every_prompt_of_the_flow_has_a_hang_up_case() -> None:
    """A new prompt in the call flow needs its own hang-up case above."""
    used = set(re.findall(r"speech\.([A-Z_]+)\b", CALL_FLOW.read_text(encoding="utf-8")))
    played = {getattr(speech, name) for name in used}
    played |= {speech.CLOSED, speech.SHORT_DAY, speech.NEXT_OPEN, speech.HOURS}
    played |= {speech.CLOSED_EMAIL}  # speech.closed_message
    played |= {speech.MESSAGE_SAVED, speech.MESSAGE_EMPTY, speech.MESSAGE_FAILED}
    played |= {speech.MESSAGE_CALLBACK, speech.MESSAGE_CONTACTS, speech.MESSAGE_WRITE}
    assert played <= {case.prompt for case in STEPS}
