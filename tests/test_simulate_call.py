"""``simulate-call``: a private run leaves the line's records alone and says so; the agent's
side is played through the same agent-connect and hang-up hooks Asterisk runs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from dashboard.testing import add_user
from ivr.emulator import AgentAnswer, EmulatedCall, answer_in_queue
from onerpa.demo import load_demo
from onerpa.models import Call, CallEvent, SupportRequest
from onerpa_support.cli import main
from tests.flowkit import Line, support_line

MSK = ZoneInfo("Europe/Moscow")
T = datetime(2026, 11, 26, 11, 0, tzinfo=MSK)  # a Thursday, the line is open
AT = "2026-11-26T11:00+03:00"
ENTITLED = "+7 495 123-45-67"  # a demo customer in the first year: queued
S = timedelta(seconds=1)
PLAYED_AGENT = ["--agent", "PJSIP/101", "--wait", "5", "--talk", "200", "--hangup", "agent"]
PRIVATE = "Симуляция частная"


def add_agent(engine: Engine) -> None:
    """Anna, whose phone is PJSIP/101: the dashboard adds her to the queue as «Agent 101»."""
    with Session(engine) as session, session.begin():
        add_user(session, "anna", interface="PJSIP/101", member_name="Agent 101")


def load_line(engine: Engine) -> None:
    load_demo(engine)
    add_agent(engine)


def database_env(engine: Engine) -> dict[str, str]:
    """Return the environment that points the command at the test's database."""
    url = engine.url
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        url = url.update_query_dict({"options": f"-csearch_path={schema}"})
    return {"ONERPA_DATABASE_URL": url.render_as_string(hide_password=False)}


def simulate(*args: str, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(main, ["simulate-call", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def stored_rows(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        calls = conn.scalar(select(func.count()).select_from(Call))
        events = conn.scalar(select(func.count()).select_from(CallEvent))
    return calls or 0, events or 0


def advance(line: Line, seconds: float) -> None:
    line.clock.now += seconds * S


@pytest.mark.parametrize("agent", [[], PLAYED_AGENT], ids=["ivr", "with-agent"])
def test_private_simulation_records_no_call_and_says_so(engine: Engine, agent: list[str]) -> None:
    load_line(engine)
    output = simulate(
        "--from", ENTITLED, "--at", AT, "--digits", "2", *agent, env=database_env(engine)
    )
    assert "Маршрут: queue" in output  # the customer was found in the line's directory
    assert f"{PRIVATE}: звонок прошёл по правилам на отдельном сервере" in output
    assert "в журнал линии ничего не записано" in output
    assert stored_rows(engine) == (0, 0)


def test_private_simulation_plays_the_agent_without_waiting(engine: Engine) -> None:
    load_line(engine)
    output = simulate(
        "--from", ENTITLED, "--at", AT, "--digits", "2", *PLAYED_AGENT, env=database_env(engine)
    )
    assert "Звонящий слышит:\n  [onerpa-greeting] " in output
    assert "Звонящий нажал: 2" in output
    assert "Агент PJSIP/101 (Agent 101) ответил через 5 с в очереди" in output
    assert "(agent-connect: SUCCESS)" in output
    assert "Разговор 200 с; трубку положил агент (hangup: SUCCESS)" in output


def test_json_report_keeps_english_keys_and_tells_the_agent_side(engine: Engine) -> None:
    load_line(engine)
    output = simulate(
        "--from", ENTITLED, "--at", AT, "--digits", "2", *PLAYED_AGENT, "--json",
        env=database_env(engine),
    )  # fmt: skip
    report = json.loads(output)
    assert (report["decision"], report["route"], report["topic"]) == (
        "free_first_year",
        "queue",
        "howto",
    )
    assert report["private"] is True
    assert report["agent"] == {
        "interface": "PJSIP/101",
        "name": "Agent 101",
        "answered": True,
        "wait_seconds": 5.0,
        "talk_seconds": 200.0,
        "hung_up_by": "agent",
        "connect_agi_status": "SUCCESS",
        "hangup_agi_status": "SUCCESS",
    }


def test_agent_of_a_call_not_queued_is_reported_as_not_answering(engine: Engine) -> None:
    load_line(engine)
    output = simulate(
        "--from", "+7 999 555-00-13", "--at", AT, "--agent", "PJSIP/101",
        env=database_env(engine),
    )  # fmt: skip
    assert "Маршрут: refused" in output
    assert "Агент PJSIP/101 (Agent 101) не отвечал: звонок не попал в очередь" in output


def test_agent_options_without_an_agent_are_refused() -> None:
    result = CliRunner().invoke(main, ["simulate-call", "--wait", "5"])
    assert result.exit_code == 2
    assert "--agent-name, --wait, --talk и --hangup требуют --agent" in result.output


@pytest.mark.parametrize("ender", ["caller", "agent"])
def test_played_agent_is_recorded_with_its_wait_talk_and_ender(engine: Engine, ender: str) -> None:
    with support_line(engine, T) as line:
        add_agent(engine)
        call = EmulatedCall(caller=ENTITLED, keys=["2"])
        result = call.run_fastagi(line.address)
        answer = AgentAnswer("PJSIP/101", "Agent 101", wait=5, talk=200, hung_up_by=ender)  # type: ignore[arg-type]
        played = answer_in_queue(
            call, result, line.address, answer, sleep=lambda seconds: advance(line, seconds)
        )
        assert line.services.recorder.flush()
        row = line.record(result)
    assert played.connect.env["agi_context"] == "onerpa-agent-connect"
    assert played.connect.env["agi_channel"].startswith("PJSIP/101-")
    assert played.hangup.env["agi_context"] == "onerpa-hangup"
    assert (played.connect.status, played.hangup.status) == ("SUCCESS", "SUCCESS")
    assert (row.status, row.agent, row.agent_interface, row.ended_by) == (
        "completed",
        "Agent 101",
        "PJSIP/101",
        ender,
    )
    assert (row.queued_at, row.answered_at, row.ended_at) == (T, T + 5 * S, T + 205 * S)


def test_simulate_call_plays_the_agent_on_a_running_server(engine: Engine) -> None:
    with support_line(engine, T) as line:
        add_agent(engine)
        output = simulate(
            "--server", f"127.0.0.1:{line.server.port}", "--from", ENTITLED, "--digits", "2",
            "--agent", "PJSIP/101", "--wait", "0", "--talk", "0", "--hangup", "caller",
            env=database_env(engine),  # where the agent's name is looked up
        )  # fmt: skip
        assert line.services.recorder.flush()
        with engine.connect() as conn:
            row = conn.execute(select(Call.__table__)).one()
    assert "Агент PJSIP/101 (Agent 101) ответил через 0 с в очереди" in output
    assert "трубку положил звонящий" in output
    assert PRIVATE not in output
    assert (row.status, row.agent_interface, row.ended_by) == ("completed", "PJSIP/101", "caller")


def test_private_simulation_leaves_a_voice_message_out_of_hours(engine: Engine) -> None:
    load_line(engine)
    env = database_env(engine)
    saturday = "2026-11-28T10:00+03:00"

    output = simulate(
        "--from", ENTITLED, "--at", saturday, "--digits", "1", "--message", "4", env=env
    )
    report = json.loads(
        simulate(
            "--from", ENTITLED, "--at", saturday, "--digits", "1", "--message", "3",
            "--message-end", "hangup", "--json", env=env,
        )
    )  # fmt: skip

    assert "[onerpa-message-saved] Сообщение записано." in output
    assert "Записано сообщение: 3,8 с" in output  # 4 s less the 200 ms before the "#"
    assert [item["prompt"] for item in report["heard"]][-2:] == ["onerpa-message-record", "beep"]
    assert report["recordings"][0]["seconds"] == 3.0
    assert stored_rows(engine) == (0, 0)  # private: the line's records untouched
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(SupportRequest)) == 0


def test_an_interface_no_staff_user_has_is_named_as_itself(engine: Engine) -> None:
    load_demo(engine)
    output = simulate(
        "--from", ENTITLED, "--at", AT, "--digits", "2", "--agent", "PJSIP/109",
        env=database_env(engine),
    )  # fmt: skip
    assert "Агент PJSIP/109 (PJSIP/109) ответил" in output


def test_private_simulation_asks_for_a_call_back_and_records_nothing(engine: Engine) -> None:
    load_line(engine)
    output = simulate(
        "--from", ENTITLED, "--at", AT, "--digits", "2", "--callback-after", "70",
        env=database_env(engine),
    )  # fmt: skip
    assert "Через 70 с в очереди звонящий нажал 1: просьба перезвонить принята" in output
    assert stored_rows(engine) == (0, 0)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(SupportRequest)) == 0


def test_a_call_back_asked_for_on_a_running_server_keeps_the_callers_place(
    engine: Engine,
) -> None:
    with support_line(engine, T) as line:
        report = json.loads(
            simulate(
                "--server",
                f"127.0.0.1:{line.server.port}",
                "--from",
                ENTITLED,
                "--digits",
                "2",
                "--callback-after",
                "0",
                "--json",
            )  # fmt: skip
        )
        assert line.services.recorder.flush()
        with engine.connect() as conn:
            call = conn.execute(select(Call.__table__)).one()
            request = conn.execute(select(SupportRequest.__table__)).one()
    assert report["callback"] == {"wait_seconds": 0.0, "accepted": True, "agi_status": "SUCCESS"}
    assert (request.kind, request.status, request.call_id) == ("callback", "new", call.id)
    assert request.place_at == call.arrived_at  # the call-back keeps the caller's arrival
    assert request.caller_e164 == "+74951234567"


def test_a_withheld_number_gets_no_call_back(engine: Engine) -> None:
    load_line(engine)
    output = simulate(
        "--from", "", "--at", AT, "--digits", "100101#", "--digits", "2",
        "--callback-after", "70", env=database_env(engine),
    )  # fmt: skip
    assert "перезвонить нельзя (номер скрыт или не годится), звонящий вернулся в очередь" in output


def test_callback_after_and_agent_exclude_each_other() -> None:
    result = CliRunner().invoke(
        main, ["simulate-call", "--agent", "PJSIP/101", "--callback-after", "60"]
    )
    assert result.exit_code == 2
    assert "--callback-after и --agent исключают друг друга" in result.output
