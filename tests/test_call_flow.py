"""The call flow as a caller hears it, through the real FastAGI server and the emulator."""

from __future__ import annotations

import socket
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, event

from ivr.emulator import HANG_UP, EmulatedCall, Hangup, Key
from onerpa import hours
from onerpa.settings import Settings
from tests.flowkit import support_line, with_sales

MSK = ZoneInfo("Europe/Moscow")
THURSDAY_11 = datetime(2026, 11, 26, 11, 0, tzinfo=MSK)
SATURDAY_10 = datetime(2026, 11, 28, 10, 0, tzinfo=MSK)
ENTITLED = "+7 495 123-45-67"
NOT_ENTITLED = "+79035550142"
REFUSED = "+78465556307"
REFUSED_NUMBER = "+79995550013"


def test_entitled_caller_is_greeted_asked_why_and_sent_to_the_queue(engine: Engine) -> None:
    with support_line(engine, THURSDAY_11) as line:
        result = line.call("84951234567", name="Иван Петров", keys=["2"])
        row = line.record(result)
    assert result.prompts == ["onerpa-greeting", "onerpa-topic-menu", "onerpa-connecting"]
    assert result.variables["ONERPA_ROUTE"] == "queue"
    assert result.variables["ONERPA_DECISION"] == "free_first_year"
    assert result.variables["ONERPA_TOPIC"] == "howto"
    assert result.variables["ONERPA_CUSTOMER"] == "100101"
    assert "Альфа-Логистик" in result.variables["ONERPA_SUMMARY"]
    assert "до 31.12.2026" in result.variables["ONERPA_SUMMARY"]
    assert result.status == "SUCCESS"
    assert (row.caller_e164, row.callerid_name, row.identified_by) == (
        "+74951234567",
        "Иван Петров",
        "caller_id",
    )
    assert (row.status, row.route, row.topic, row.digits) == ("queued", "queue", "howto", "2")
    assert row.arrived_at == THURSDAY_11 and row.decided_at == THURSDAY_11
    stamp = "2026-11-26T08:00:00.000+00:00"
    assert row.step_times == "; ".join(
        f"{step} {stamp}" for step in ("greeting", "identify", "topic", "routed")
    )


def test_critical_bug_choice_is_flagged_for_the_agent(engine: Engine) -> None:
    with support_line(engine, THURSDAY_11) as line:
        result = line.call(ENTITLED, keys=["1"])
    assert result.prompts[-1] == "onerpa-bug-flagged"
    assert result.variables["ONERPA_TOPIC"] == "bug"


def test_no_menu_choice_still_reaches_an_agent(engine: Engine) -> None:
    with support_line(engine, THURSDAY_11) as line:
        result = line.call(ENTITLED, keys=["", ""])
    assert result.prompts.count("onerpa-topic-menu") == 2
    assert result.variables["ONERPA_ROUTE"] == "queue"
    assert result.variables["ONERPA_TOPIC"] == "none"


@pytest.mark.parametrize(
    ("at", "when"),
    [
        (SATURDAY_10, ["onerpa-day-1", "onerpa-hour-9"]),  # Monday
        (datetime(2026, 11, 26, 17, 0, tzinfo=MSK), ["onerpa-day-tomorrow", "onerpa-hour-9"]),
        (datetime(2026, 11, 26, 8, 59, 59, tzinfo=MSK), ["onerpa-day-today", "onerpa-hour-9"]),
        (
            datetime(2026, 12, 31, 12, 0, tzinfo=MSK),
            ["onerpa-date-11", "onerpa-month-1", "onerpa-hour-9"],
        ),
    ],
)
def test_closed_line_says_hours_next_opening_and_email(
    engine: Engine, at: datetime, when: list[str]
) -> None:
    with support_line(engine, at) as line:
        result = line.call(ENTITLED)
        row = line.record(result)
    assert result.prompts == [
        "onerpa-greeting",
        "onerpa-closed",
        "onerpa-next-open",
        *when,
        "onerpa-hours",
        "onerpa-closed-email",
        "onerpa-message-offer",  # no key pressed: no message
        "onerpa-goodbye",
    ]
    assert result.variables["ONERPA_ROUTE"] == "closed"
    assert (row.decision, row.status, row.ended_by) == ("closed", "ended_ivr", "system")


def test_unknown_number_is_asked_for_customer_number_and_found(engine: Engine) -> None:
    with support_line(engine, THURSDAY_11) as line:
        result = line.call("+7 926 000-00-00", keys=["999#", "100101#", "3"])
        row = line.record(result)
    assert result.prompts == [
        "onerpa-greeting",
        "onerpa-number-unknown",
        "onerpa-enter-number",
        "onerpa-number-not-found",
        "onerpa-enter-number",
        "onerpa-topic-menu",
        "onerpa-connecting",
    ]
    assert result.variables["ONERPA_CUSTOMER"] == "100101"
    assert (row.identified_by, row.digits, row.topic) == ("digits", "999 100101 3", "licensing")


def test_anonymous_caller_not_found_twice_is_told_support_is_for_customers(
    engine: Engine,
) -> None:
    with support_line(engine, THURSDAY_11) as line:
        result = line.call("", keys=["", "12#"])
        row = line.record(result)
    assert result.env["agi_callerid"] == "unknown"
    assert result.prompts[-3:] == ["onerpa-not-customer", "onerpa-message-offer", "onerpa-goodbye"]
    assert result.prompts.count("onerpa-enter-number") == 2
    assert result.variables["ONERPA_ROUTE"] == "unknown"
    assert result.variables["ONERPA_DECISION"] == "unknown_caller"
    assert (row.caller_e164, row.customer_id, row.status) == (None, None, "ended_ivr")


def test_caller_under_etiquette_refusal_is_politely_refused(engine: Engine) -> None:
    with support_line(engine, THURSDAY_11) as line:
        result = line.call(REFUSED)
    assert result.prompts == ["onerpa-greeting", "onerpa-refused"]  # no message offered
    assert result.variables["ONERPA_ROUTE"] == "refused"
    assert result.variables["ONERPA_DECISION"] == "refused_etiquette"


def test_refusal_on_a_number_outside_the_directory_is_not_asked_for_digits(
    engine: Engine,
) -> None:
    with support_line(engine, THURSDAY_11) as line:
        result = line.call(REFUSED_NUMBER)
    assert result.prompts == ["onerpa-greeting", "onerpa-refused"]
    assert result.variables["ONERPA_ROUTE"] == "refused"


def test_lapsed_customer_reporting_a_critical_bug_reaches_the_queue(engine: Engine) -> None:
    with support_line(engine, THURSDAY_11) as line:
        result = line.call(NOT_ENTITLED, keys=["1"])
    assert result.prompts == [
        "onerpa-greeting",
        "onerpa-not-entitled",
        "onerpa-bug-offer",
        "onerpa-bug-flagged",
    ]
    assert result.variables["ONERPA_ROUTE"] == "queue"
    assert result.variables["ONERPA_DECISION"] == "free_critical_bug"
    assert result.variables["ONERPA_TOPIC"] == "bug"


def test_lapsed_customer_may_press_1_during_the_offer_before_the_sales_prompt(
    engine: Engine,
) -> None:
    with support_line(engine, THURSDAY_11, with_sales(Settings(), "200")) as line:
        result = line.call(NOT_ENTITLED, keys=[Key("1", barge_in=True, after_ms=500)])
    assert "onerpa-sales-offer" not in result.prompts
    assert result.variables["ONERPA_DECISION"] == "free_critical_bug"


def test_lapsed_customer_without_a_bug_hears_how_to_buy_updates(engine: Engine) -> None:
    with support_line(engine, THURSDAY_11) as line:
        result = line.call(NOT_ENTITLED, keys=[""])
    assert result.prompts[-3:] == ["onerpa-buy-updates", "onerpa-message-offer", "onerpa-goodbye"]
    assert result.variables["ONERPA_ROUTE"] == "not_entitled"
    assert result.variables["ONERPA_DECISION"] == "not_entitled"


def test_lapsed_customer_can_choose_the_sales_line(engine: Engine) -> None:
    with support_line(engine, THURSDAY_11, with_sales(Settings(), "200")) as line:
        result = line.call(NOT_ENTITLED, keys=["2"])
    assert result.prompts[-2:] == ["onerpa-bug-offer", "onerpa-sales-offer"]
    assert result.variables["ONERPA_ROUTE"] == "sales"
    assert result.variables["ONERPA_SALES_EXT"] == "200"


@pytest.mark.parametrize(
    ("hangup", "keys", "step"),
    [
        (Hangup.during("onerpa-greeting"), [], "greeting"),
        (None, [HANG_UP], "topic"),
        (Hangup.during("onerpa-connecting"), ["2"], "topic"),
    ],
)
def test_caller_hanging_up_is_recorded_as_abandoned_in_the_ivr_with_the_step(
    engine: Engine, hangup: Hangup | None, keys: list, step: str
) -> None:
    with support_line(engine, THURSDAY_11) as line:
        result = line.call(ENTITLED, keys=keys, hangup=hangup)
        row = line.record(result)
    assert result.status == "HANGUP"
    assert "ONERPA_ROUTE" not in result.variables
    assert (row.status, row.step, row.ended_by) == ("abandoned_ivr", step, "caller")


def test_hang_up_while_typing_the_customer_number(engine: Engine) -> None:
    with support_line(engine, THURSDAY_11) as line:
        result = line.call("", keys=[HANG_UP])
        row = line.record(result)
    assert (row.status, row.step) == ("abandoned_ivr", "enter_number")


def test_slow_database_sends_the_caller_to_the_queue_degraded_within_the_budget(
    engine: Engine,
) -> None:
    def slow(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        if "phone_numbers" in statement:
            time.sleep(3)

    with support_line(engine, THURSDAY_11) as line:
        event.listen(engine, "before_cursor_execute", slow)
        started = time.monotonic()
        result = line.call(ENTITLED)
        elapsed = time.monotonic() - started
        event.remove(engine, "before_cursor_execute", slow)
        row = line.record(result)
    assert result.variables["ONERPA_ROUTE"] == "queue"
    assert result.variables["ONERPA_DECISION"] == "degraded"
    assert result.prompts[-1] == "onerpa-connecting"
    assert elapsed < 2.0
    assert row.degraded is True


def test_missing_prompt_files_still_route_the_call(engine: Engine, tmp_path: Path) -> None:
    with support_line(engine, THURSDAY_11) as line:
        result = line.call(ENTITLED, keys=["2"], sounds_dir=tmp_path)
    assert result.missing_prompts  # a real Asterisk reports FAILURE...
    assert result.status == "FAILURE"
    assert result.variables["ONERPA_ROUTE"] == "queue"  # ...but the route is set: obey it


def test_silent_peer_is_closed_and_the_next_call_is_served(engine: Engine) -> None:
    with support_line(engine, THURSDAY_11) as line:
        silent = socket.create_connection(line.address)
        silent.settimeout(5)
        assert silent.recv(1) == b""  # the server hung up on it
        silent.close()
        result = line.call(ENTITLED, keys=["2"])
    assert result.variables["ONERPA_ROUTE"] == "queue"


def test_garbage_instead_of_an_environment_is_closed_and_the_server_keeps_serving(
    engine: Engine,
) -> None:
    with support_line(engine, THURSDAY_11) as line:
        for garbage in (b"\xff\xfe\x00garbage\n\n", b"agi_network: yes\n" + b"x" * 9000 + b"\n"):
            with socket.create_connection(line.address) as sock:
                sock.settimeout(5)
                sock.sendall(garbage)
                assert sock.recv(100) in (b"",)
        result = line.call(ENTITLED, keys=["2"])
    assert result.variables["ONERPA_ROUTE"] == "queue"


def test_hostile_caller_name_is_stored_as_text(engine: Engine) -> None:
    name = "<script>alert(1)</script>'; DROP TABLE calls;--"
    with support_line(engine, THURSDAY_11) as line:
        result = line.call(ENTITLED, name=name, keys=["2"])
        row = line.record(result)
    assert row.callerid_name == name


def test_classic_agi_runs_the_same_flow(engine: Engine, tmp_path: Path) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the classic process is pointed at the SQLite file")
    from onerpa.demo import load_demo

    load_demo(engine)
    env = {"ONERPA_DATABASE_URL": str(engine.url)}
    before = hours.is_open(Settings().calendar, datetime.now(MSK))
    result = EmulatedCall(caller=ENTITLED, keys=["2"]).run_classic(
        [sys.executable, "-m", "ivr.classic"], env=env
    )
    after = hours.is_open(Settings().calendar, datetime.now(MSK))
    if before != after:
        pytest.skip("the line opened or closed during the call")
    assert result.returncode == 0
    assert result.variables["ONERPA_ROUTE"] == ("queue" if before else "closed")
    assert result.prompts[0] == "onerpa-greeting"


@pytest.mark.parametrize(
    ("args", "route", "rest"),
    [
        ([], "call", []),
        (["call"], "call", []),
        (["hangup", "ref-1", "1795696714.0"], "hangup", ["ref-1", "1795696714.0"]),
        (["agent-connect", "ref-1", "17.2"], "agent-connect", ["ref-1", "17.2"]),
        (["something-else"], "call", ["something-else"]),
    ],
)
def test_classic_agi_takes_its_route_from_the_first_argument(
    args: list[str], route: str, rest: list[str]
) -> None:
    from ivr.classic import split_route

    assert split_route(args) == (route, rest)
