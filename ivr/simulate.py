"""``simulate-call``: hear a call without a PBX, to check a rule change before it goes live.

The real call flow runs against the Asterisk emulator: in-process on a private FastAGI
server (with the clock at ``--at`` if given), or against a running server with ``--server``.
It prints what the caller hears (the texts of the prompts), what they pressed, and the
decision and route the dialplan would act on.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from ivr import dialplan
from ivr.app import build_services, close_services
from ivr.emulator import CallResult, EmulatedCall
from ivr.fastagi import FastAGIServer, start_in_thread
from ivr.prompts import read_table
from onerpa.startup import load_settings, open_database


@click.command("simulate-call")
@click.option("--from", "caller", default="", help="Caller ID, in any format (empty: anonymous).")
@click.option("--name", default="", help="Caller ID name.")
@click.option("--at", "at", default=None, help="Moment of the call, ISO 8601 with offset.")
@click.option("--digits", multiple=True, help="What the caller types at each prompt, in order.")
@click.option("--server", default=None, help="HOST:PORT of a running FastAGI server.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def simulate_command(
    caller: str,
    name: str,
    at: str | None,
    digits: tuple[str, ...],
    server: str | None,
    as_json: bool,
) -> None:
    """Place an emulated call through the real call flow and show what happens."""
    moment = _parse_moment(at) if at else None
    if server and moment:
        raise click.UsageError("--at cannot move a running server's clock; omit --server")
    call = EmulatedCall(caller=caller, name=name, keys=list(digits))
    if server:
        result = call.run_fastagi(_parse_address(server))
        if not result.connected:
            raise click.ClickException(f"no FastAGI server answers at {server}")
    else:
        result = _run_private(call, moment)
    report = describe(result)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        click.echo(render(report))


def _run_private(call: EmulatedCall, moment: datetime | None) -> CallResult:
    settings = load_settings()
    engine = open_database(settings)
    clock = (lambda: moment) if moment else (lambda: datetime.now(UTC))
    services = build_services(settings, engine, clock=clock, lookup_workers=2)
    server = FastAGIServer(("127.0.0.1", 0), services)
    start_in_thread(server)
    try:
        result = call.run_fastagi(("127.0.0.1", server.port))
        services.recorder.flush()
        return result
    finally:
        server.shutdown()
        server.server_close()
        close_services(services)
        engine.dispose()


def describe(result: CallResult) -> dict[str, object]:
    """Return what happened on the call, in words a support manager reads."""
    texts = read_table()
    variables = result.variables
    return {
        "heard": [{"prompt": p, "text": texts.get(p, "")} for p in result.prompts],
        "pressed": [d for d in result.digits if d],
        "decision": variables.get(dialplan.VAR_DECISION, ""),
        "route": variables.get(dialplan.VAR_ROUTE, "") or "(none: the dialplan's fallback)",
        "topic": variables.get(dialplan.VAR_TOPIC, ""),
        "summary": variables.get(dialplan.VAR_SUMMARY, ""),
        "call_id": variables.get(dialplan.VAR_CALL_ID, ""),
        "agi_status": result.status,
        "missing_prompts": result.missing_prompts,
    }


def render(report: dict[str, object]) -> str:
    """Return the report as lines of text."""
    lines = ["Caller hears:"]
    for item in report["heard"]:  # type: ignore[attr-defined]
        lines.append(f"  [{item['prompt']}] {item['text']}")
    pressed = report["pressed"] or ["(nothing)"]
    lines.append(f"Caller pressed: {' '.join(pressed)}")  # type: ignore[arg-type]
    for key in ("decision", "route", "topic", "summary", "call_id", "agi_status"):
        lines.append(f"{key.replace('_', ' ').capitalize()}: {report[key]}")
    if report["missing_prompts"]:
        lines.append(f"Missing prompt files: {', '.join(report['missing_prompts'])}")  # type: ignore[arg-type]
    return "\n".join(lines)


def _parse_moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 moment", param_hint="--at") from None
    if moment.tzinfo is None:
        raise click.BadParameter("give the offset, e.g. 2026-11-26T10:00+03:00", param_hint="--at")
    return moment


def _parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"{text!r} is not HOST:PORT", param_hint="--server")
    return host.strip("[]"), int(port)
