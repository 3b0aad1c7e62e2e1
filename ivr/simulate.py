"""``simulate-call``: hear a call without a PBX, to check a rule change before it goes live.

The real call flow runs against the Asterisk emulator: in-process on a private FastAGI
server (with the clock at ``--at`` if given), or against a running server with ``--server``.
It prints what the caller hears (the texts of the prompts), what they pressed, and the
decision and route the dialplan would act on. With ``--agent`` a queued call is then
answered by that queue member and ended, through the same hooks Asterisk runs.

A private run reads the customer directory from the configured database but records the
call in a scratch database that is thrown away: the line's history, board, figures and
metrics never see it.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import click
from sqlalchemy import Engine, create_engine, select

from ivr import dialplan
from ivr.app import build_services, close_services
from ivr.emulator import (
    AgentAnswer,
    CallbackAsked,
    CallResult,
    EmulatedCall,
    QueueResult,
    Speech,
    answer_in_queue,
    ask_for_callback,
)
from ivr.fastagi import FastAGIServer, start_in_thread
from ivr.prompts import spoken_table
from onerpa import agents, db
from onerpa.staff import User
from onerpa.startup import load_settings, open_database

DEFAULT_WAIT = 5.0
DEFAULT_TALK = 120.0
_LABELS = {
    "decision": "Решение",
    "route": "Маршрут",
    "topic": "Тема",
    "summary": "Сводка для агента",
    "call_id": "Номер звонка",
    "agi_status": "Статус AGI",
}
_ENDERS = {"caller": "звонящий", "agent": "агент"}

Played = tuple[CallResult, QueueResult | CallbackAsked | None]


@click.command("simulate-call")
@click.option("--from", "caller", default="", help="Номер звонящего в любом виде (пусто — скрыт).")
@click.option("--name", default="", help="Имя звонящего (caller ID name).")
@click.option("--at", "at", default=None, help="Момент звонка, ISO 8601 со смещением.")
@click.option(
    "--digits", multiple=True, help="Что звонящий набирает на каждой подсказке, по порядку."
)
@click.option("--server", default=None, help="HOST:PORT работающего сервера FastAGI.")
@click.option(
    "--agent",
    default=None,
    help="Интерфейс участника очереди, который отвечает, например PJSIP/101.",
)
@click.option(
    "--agent-name",
    default=None,
    help="Имя участника очереди (по умолчанию — как у сотрудника с этим телефоном).",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=None,
    help=f"Секунд в очереди до ответа агента (по умолчанию {DEFAULT_WAIT:g}).",
)
@click.option(
    "--talk",
    type=click.FloatRange(min=0),
    default=None,
    help=f"Секунд разговора агента со звонящим (по умолчанию {DEFAULT_TALK:g}).",
)
@click.option(
    "--hangup",
    "hung_up_by",
    type=click.Choice(["caller", "agent"]),
    default=None,
    help="Кто кладёт трубку после разговора (по умолчанию звонящий).",
)
@click.option(
    "--message",
    "message_seconds",
    type=click.FloatRange(min=0),
    default=None,
    help="Оставить после сигнала голосовое сообщение такой длины в секундах (после --digits 1).",
)
@click.option(
    "--message-end",
    type=click.Choice(["key", "silence", "hangup"]),
    default="key",
    show_default=True,
    help="Как кончается сообщение: нажата #, звонящий замолчал или положил трубку.",
)
@click.option(
    "--callback-after",
    type=click.FloatRange(min=0),
    default=None,
    help="Через столько секунд в очереди нажать 1, чтобы перезвонили (вместо --agent).",
)
@click.option("--json", "as_json", is_flag=True, help="Вывести результат в JSON.")
def simulate_command(
    caller: str,
    name: str,
    at: str | None,
    digits: tuple[str, ...],
    server: str | None,
    agent: str | None,
    agent_name: str | None,
    wait: float | None,
    talk: float | None,
    hung_up_by: Literal["caller", "agent"] | None,
    message_seconds: float | None,
    message_end: str,
    callback_after: float | None,
    as_json: bool,
) -> None:
    """Провести эмулированный звонок через настоящий сценарий и показать, что происходит."""
    moment = _parse_moment(at) if at else None
    if server and moment:
        raise click.UsageError("--at не может перевести часы работающего сервера: уберите --server")
    answer = _agent_answer(agent, agent_name, wait, talk, hung_up_by)
    if answer is not None and callback_after is not None:
        raise click.UsageError("--callback-after и --agent исключают друг друга")
    in_queue: AgentAnswer | float | None = callback_after if answer is None else answer
    keys: list[str | Speech] = list(digits)
    if message_seconds is not None:
        keys.append(message(message_seconds, message_end))
    call = EmulatedCall(caller=caller, name=name, keys=keys)
    if server:
        result, queue = _play(call, _parse_address(server), in_queue, time.sleep)
    else:
        result, queue = _run_private(call, moment, in_queue)
    report = describe(result, queue=queue, answer=answer, private=not server)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        click.echo(render(report))


def message(seconds: float, end: str) -> Speech:
    """Return the caller's voice message: ``seconds`` of speech, then ``end``."""
    if end == "hangup":
        return Speech(seconds=seconds, hangs_up=True)
    return Speech("" if end == "silence" else "#", seconds=seconds)


def _agent_answer(
    interface: str | None,
    name: str | None,
    wait: float | None,
    talk: float | None,
    hung_up_by: Literal["caller", "agent"] | None,
) -> AgentAnswer | None:
    """Return the agent's part the options describe, or None without ``--agent``."""
    if not interface:
        if (name, wait, talk, hung_up_by) != (None, None, None, None):
            raise click.UsageError("--agent-name, --wait, --talk и --hangup требуют --agent")
        return None
    return AgentAnswer(
        interface=interface,
        name=member_name(interface) if name is None else name,
        wait=DEFAULT_WAIT if wait is None else wait,
        talk=DEFAULT_TALK if talk is None else talk,
        hung_up_by=hung_up_by or "caller",
    )


def member_name(interface: str) -> str:
    """Return the name the queue gives ``interface``: that of the staff user who has it, as
    the dashboard adds them to the queue (onerpa.agents); the interface itself otherwise."""
    try:
        engine = open_database(load_settings())
    except click.ClickException:
        return interface
    try:
        with engine.connect() as conn:
            user = conn.execute(
                select(User.username, User.display_name, User.member_name).where(
                    User.member_interface == interface, User.active.is_(True)
                )
            ).first()
    finally:
        engine.dispose()
    return agents.member_name(user) if user else interface


def _play(
    call: EmulatedCall,
    address: tuple[str, int],
    in_queue: AgentAnswer | float | None,
    sleep: Callable[[float], None],
) -> Played:
    """Play the call at ``address``; then, if it was queued, what happens in the queue: an
    agent's answer, or (seconds) the caller pressing 1 for a call-back after that wait."""
    started = time.monotonic()
    result = call.run_fastagi(address)
    if not result.connected:
        raise click.ClickException(f"по адресу {address[0]}:{address[1]} не отвечает FastAGI")
    if in_queue is None or result.variables.get(dialplan.VAR_ROUTE) != dialplan.Route.QUEUE:
        return result, None
    lived = time.monotonic() - started
    if isinstance(in_queue, AgentAnswer):
        return result, answer_in_queue(call, result, address, in_queue, lived=lived, sleep=sleep)
    return result, ask_for_callback(call, result, address, wait=in_queue, lived=lived, sleep=sleep)


class _ScriptedClock:
    """The private server's clock: the moment of the call, moved on by the wait and talk."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _run_private(
    call: EmulatedCall, moment: datetime | None, in_queue: AgentAnswer | float | None
) -> Played:
    settings = load_settings()
    engine = open_database(settings)
    clock = _ScriptedClock(moment or datetime.now(UTC))
    with _scratch_records() as records, tempfile.TemporaryDirectory(prefix="onerpa-msg-") as rec:
        # A message left here goes to the scratch folder, its request to the scratch records.
        settings = replace(settings, recordings_dir=rec)
        services = build_services(settings, engine, clock=clock, lookup_workers=2, records=records)
        server = FastAGIServer(("127.0.0.1", 0), services)
        start_in_thread(server)
        try:
            # No real waiting: the wait and the talk move the private server's clock.
            played = _play(call, ("127.0.0.1", server.port), in_queue, clock.advance)
            services.recorder.flush()
            if services.requests is not None:
                services.requests.flush()
            return played
        finally:
            server.shutdown()
            server.server_close()
            close_services(services)
            engine.dispose()


@contextmanager
def _scratch_records() -> Iterator[Engine]:
    """Yield an empty database for a private run's call records; delete it afterwards."""
    with tempfile.TemporaryDirectory(prefix="onerpa-simulate-") as scratch:
        # Not db.make_engine: its foreign keys would refuse a call whose customer is in the
        # line's database, and this one holds only the calls.
        records = create_engine(
            f"sqlite:///{Path(scratch) / 'calls.sqlite3'}",
            connect_args={"check_same_thread": False},
        )
        try:
            db.migrate(records)
            yield records
        finally:
            records.dispose()


def describe(
    result: CallResult,
    *,
    queue: QueueResult | CallbackAsked | None = None,
    answer: AgentAnswer | None = None,
    private: bool = False,
) -> dict[str, object]:
    """Return what happened on the call, in words a support manager reads."""
    texts = spoken_table(load_settings())
    variables = result.variables
    return {
        "heard": [{"prompt": p, "text": texts.get(p, "")} for p in result.prompts],
        "pressed": [d for d in result.digits if d],
        "decision": variables.get(dialplan.VAR_DECISION, ""),
        "route": variables.get(dialplan.VAR_ROUTE, ""),
        "topic": variables.get(dialplan.VAR_TOPIC, ""),
        "summary": variables.get(dialplan.VAR_SUMMARY, ""),
        "call_id": variables.get(dialplan.VAR_CALL_ID, ""),
        "agi_status": result.status,
        "missing_prompts": result.missing_prompts,
        "recordings": [
            {"path": str(made.path), "seconds": made.seconds} for made in result.recordings
        ],
        "agent": _agent_report(answer, queue if isinstance(queue, QueueResult) else None),
        "callback": _callback_report(queue) if isinstance(queue, CallbackAsked) else None,
        "private": private,
    }


def _callback_report(asked: CallbackAsked) -> dict[str, object]:
    return {
        "wait_seconds": asked.wait,
        "accepted": asked.accepted,
        "agi_status": asked.ask.status,
    }


def _agent_report(
    answer: AgentAnswer | None, queue: QueueResult | None
) -> dict[str, object] | None:
    if answer is None:
        return None
    report: dict[str, object] = {
        "interface": answer.interface,
        "name": answer.name or answer.interface,
        "answered": queue is not None,
    }
    if queue is not None:
        report |= {
            "wait_seconds": answer.wait,
            "talk_seconds": answer.talk,
            "hung_up_by": answer.hung_up_by,
            "connect_agi_status": queue.connect.status,
            "hangup_agi_status": queue.hangup.status,
        }
    return report


def render(report: dict[str, object]) -> str:
    """Return the report as lines of text."""
    lines = ["Звонящий слышит:"]
    for item in report["heard"]:  # type: ignore[attr-defined]
        lines.append(f"  [{item['prompt']}] {item['text']}")
    pressed = report["pressed"] or ["(ничего)"]
    lines.append(f"Звонящий нажал: {' '.join(pressed)}")  # type: ignore[arg-type]
    for key, label in _LABELS.items():
        value = report[key] or ("(нет: резервный путь диалплана)" if key == "route" else "")
        lines.append(f"{label}: {value}")
    if report["missing_prompts"]:
        lines.append(f"Нет файлов подсказок: {', '.join(report['missing_prompts'])}")  # type: ignore[arg-type]
    for item in report["recordings"]:  # type: ignore[attr-defined]
        lines.append(f"Записано сообщение: {_seconds(item['seconds'])}, файл {item['path']}")
    if report["agent"]:
        lines += _render_agent(report["agent"], report["route"])  # type: ignore[arg-type]
    if report["callback"]:
        lines.append(_render_callback(report["callback"]))  # type: ignore[arg-type]
    if report["private"]:
        lines.append(
            "Симуляция частная: звонок прошёл по правилам на отдельном сервере, в журнал линии"
            " ничего не записано (ни в историю, ни на табло, ни в показатели и метрики)."
        )
    return "\n".join(lines)


def _render_agent(agent: dict[str, object], route: object) -> list[str]:
    who = f"{agent['interface']} ({agent['name']})"
    if not agent["answered"]:
        return [f"Агент {who} не отвечал: звонок не попал в очередь (маршрут: {route or 'нет'})."]
    ender = _ENDERS[str(agent["hung_up_by"])]
    return [
        f"Агент {who} ответил через {_seconds(agent['wait_seconds'])} в очереди"
        f" (agent-connect: {agent['connect_agi_status']}).",
        f"Разговор {_seconds(agent['talk_seconds'])}; трубку положил {ender}"
        f" (hangup: {agent['hangup_agi_status']}).",
    ]


def _render_callback(asked: dict[str, object]) -> str:
    pressed = f"Через {_seconds(asked['wait_seconds'])} в очереди звонящий нажал 1"
    if asked["accepted"]:
        outcome = "просьба перезвонить принята, место в очереди за ним сохранено"
    else:
        outcome = "перезвонить нельзя (номер скрыт или не годится), звонящий вернулся в очередь"
    return f"{pressed}: {outcome} (callback-request: {asked['agi_status']})."


def _seconds(value: object) -> str:
    return f"{float(value):g} с".replace(".", ",")  # type: ignore[arg-type]


def _parse_moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} — не момент ISO 8601", param_hint="--at") from None
    if moment.tzinfo is None:
        raise click.BadParameter(
            "укажите смещение, например 2026-11-26T10:00+03:00", param_hint="--at"
        )
    return moment


def _parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"{text!r} — не HOST:PORT", param_hint="--server")
    return host.strip("[]"), int(port)
