"""``onerpa-support requests``, ``mail-requests`` and ``purge-recordings`` (docs/requests.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from onerpa import mail, requests, startup
from onerpa.requests import RecordingState, RequestView

_KINDS = {"message": "сообщение", "callback": "перезвонить"}
_STATUSES = {"new": "новое", "in_work": "в работе", "answered": "отвечено", "declined": "отклонено"}
_MAIL = {"pending": "ожидает отправки", "sent": "отправлено", "failed": "не отправлено"}
_RECORDINGS = {
    RecordingState.NONE: "нет",
    RecordingState.MISSING: "ФАЙЛА НЕТ НА ДИСКЕ",
    RecordingState.PURGED: "удалена по сроку хранения",
}


def countdown(left: timedelta) -> str:
    """Return the time to a deadline in Russian: "осталось 2 д 5 ч", "просрочено на 40 мин"."""
    minutes = int(abs(left).total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} д"] * bool(days) + [f"{hours} ч"] * bool(hours)
    parts += [f"{mins} мин"] * bool(mins and not days)
    span = " ".join(parts) or "меньше минуты"
    return f"осталось {span}" if left >= timedelta(0) else f"просрочено на {span}"


def as_json(request: RequestView, now: datetime, recordings_dir: Path) -> dict[str, Any]:
    """Return the request in the stable JSON shape docs/requests.md describes."""
    state = requests.recording_state(request, recordings_dir)
    return {
        "id": request.id,
        "kind": request.kind,
        "status": request.status,
        "received_at": _iso(request.received_at),
        "due_at": _iso(request.due_at),
        "place_at": _iso(request.place_at),
        "seconds_left": int(request.time_left(now).total_seconds()),
        "overdue": request.is_open and request.due_at < now,
        "caller": request.caller_e164,
        "customer_number": request.customer_number,
        "organisation": request.organisation,
        "decision": request.decision,
        "explanation": request.explanation,
        "call_ref": request.call_ref,
        "recording": {
            "state": state.value,
            "path": request.recording_path,
            "seconds": request.recording_seconds,
            "note": request.recording_note,
        },
        "note": request.note,
        "taken_by": request.taken_by,
        "taken_at": _iso(request.taken_at),
        "closed_by": request.closed_by,
        "closed_at": _iso(request.closed_at),
        "mail": {
            "state": request.mail_state,
            "attempts": request.mail_attempts,
            "next_at": _iso(request.mail_next_at),
            "error": request.mail_error,
        },
    }


def as_line(
    request: RequestView, now: datetime, recordings_dir: Path, zone: ZoneInfo, mail_on: bool
) -> str:
    """Return one request as a line of text for the terminal."""
    due = f"до {request.due_at.astimezone(zone):%d.%m %H:%M}"
    if request.is_open:
        due = f"{countdown(request.time_left(now))} ({due})"
    who = request.caller_e164 or "номер скрыт"
    if request.customer_number:
        who += f", клиент {request.customer_number} {request.organisation or ''}".rstrip()
    state = requests.recording_state(request, recordings_dir)
    if state is RecordingState.PRESENT:
        sound = f"запись {request.recording_seconds or 0:.1f} с".replace(".", ",")
    else:
        sound = f"запись: {_RECORDINGS[state]}"
        if request.note:
            sound += f" ({request.note})"
    return (
        f"№ {request.id}  {_KINDS.get(request.kind, request.kind)}  "
        f"{_STATUSES.get(request.status, request.status)}  {due}  {who}  {sound}  "
        f"почта: {_mail(request, zone, mail_on)}"
    )


def _mail(request: RequestView, zone: ZoneInfo, mail_on: bool) -> str:
    if request.mail_state == "sent":
        return _MAIL["sent"]
    if not mail_on:
        return "не настроена (ONERPA_SMTP_HOST)"
    text = _MAIL.get(request.mail_state, request.mail_state)
    if request.mail_state == "failed" and request.mail_next_at is not None:
        text += (
            f", попыток {request.mail_attempts}, следующая в "
            f"{request.mail_next_at.astimezone(zone):%H:%M}: {request.mail_error}"
        )
    return text


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


@click.command("requests")
@click.option("--json", "json_output", is_flag=True, help="Вывести JSON (ключи: docs/requests.md).")
@click.option("--all", "show_all", is_flag=True, help="И закрытые обращения, сначала новые.")
def requests_command(json_output: bool, show_all: bool) -> None:
    """Показать открытые обращения (перезвоны, затем сообщения) и их сроки."""
    settings = startup.load_settings()
    engine = startup.open_database(settings)
    now = datetime.now(UTC)
    found = requests.all_requests(engine) if show_all else requests.open_requests(engine)
    folder = settings.recordings_path
    if json_output:
        click.echo(
            json.dumps([as_json(r, now, folder) for r in found], ensure_ascii=False, indent=2)
        )
        return
    if not found:
        click.echo("Открытых обращений нет." if not show_all else "Обращений нет.")
        return
    zone, mail_on = settings.calendar.zone, bool(settings.smtp_host)
    for request in found:
        click.echo(as_line(request, now, folder, zone, mail_on))


@click.command("mail-requests")
def mail_requests_command() -> None:
    """Отправить письма по обращениям сейчас (сервер FastAGI делает это каждые 30 с)."""
    settings = startup.load_settings()
    engine = startup.open_database(settings)
    loop = mail.MailLoop(engine, settings)
    if mail.SmtpConfig.from_settings(settings) is None:
        loop.run_once()  # still imports the dialplan's own recordings
        click.echo(
            "Почта не настроена (ONERPA_SMTP_HOST): письма не отправляются, обращения хранятся."
        )
        return
    report = loop.run_once()
    click.echo(f"Отправлено писем: {len(report.sent)}; не отправлено: {len(report.failed)}.")
    if report.failed:
        click.echo(
            "Неотправленные будут отправлены позже: `onerpa-support requests` покажет ошибку."
        )


@click.command("purge-recordings")
def purge_recordings_command() -> None:
    """Удалить записи старше ONERPA_RECORDING_RETENTION_DAYS (персональные данные)."""
    settings = startup.load_settings()
    engine = startup.open_database(settings)
    days = settings.recording_retention_days
    report = requests.purge_recordings(
        engine, settings.recordings_path, days, datetime.now(UTC), author="cli"
    )
    click.echo(
        f"Срок хранения записей: {days} дн. Удалены записи обращений: {len(report.requests)}"
        f" (файлов: {report.files}); файлов без обращения: {report.unlinked_files}."
    )


COMMANDS = [requests_command, mail_requests_command, purge_recordings_command]
